"""The process's file-descriptor budget: every held session keeps one descriptor open (an SSH
connection's socket), so a process running thousands lifts its open-files limit first and
refuses, in one plain line, a run that cannot fit. Running out mid-run shows up in misleading
ways (asyncssh's "Unknown local username": getpwuid cannot open /etc/passwd), which
is_descriptor_exhaustion() recognises.
"""
from __future__ import annotations

import errno
import os

try:  # not on Windows
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]

FD_PER_SESSION = 1           # one TCP connection per SSH host
FD_RESERVE = 64              # stdio, event loop, logs, store writes, sshd pipes


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard limit; return (soft, hard) afterwards."""
    if resource is None:  # pragma: no cover
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


def soft_limit() -> int | str:
    """The soft open-files limit, "?" where it cannot be read (for messages)."""
    if resource is None:  # pragma: no cover
        return "?"
    try:
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except OSError:
        return "?"


def open_descriptors() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def descriptors_needed(sessions: int) -> int:
    return sessions * FD_PER_SESSION + FD_RESERVE


def budget_problem(sessions: int) -> str | None:
    """Why `sessions` concurrent sessions cannot each get a descriptor (one line), or None."""
    if resource is None:  # pragma: no cover
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    in_use = open_descriptors() or 0
    need = descriptors_needed(sessions) + in_use
    if need <= soft:
        return None
    return (f"{sessions} concurrent host sessions need about {need} open files, but the limit is "
            f"{soft} (hard limit {hard}): raise it (e.g. `ulimit -n {max(need, 4096)}`, or "
            f"LimitNOFILE= for a service) or lower --max-sessions to about "
            f"{max(1, soft - in_use - FD_RESERVE)}")


def out_of_descriptors() -> bool:
    """True when this process cannot open one more file right now."""
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
    except OSError as exc:
        return exc.errno == errno.EMFILE
    os.close(fd)
    return False


def near_descriptor_limit(margin: int = 16) -> bool:
    if resource is None:  # pragma: no cover
        return False
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = open_descriptors()
    return n is not None and soft != resource.RLIM_INFINITY and n >= soft - margin


def is_descriptor_exhaustion(exc: BaseException) -> bool:
    """True when an error (or anything in its cause chain) comes from running out of files."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE):
            return True
        text = str(e)
        if "Too many open files" in text:
            return True
        if "Unknown local username" in text and near_descriptor_limit():
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def descriptor_message() -> str:
    return (f"out of file descriptors (open-files limit {soft_limit()}, {open_descriptors()} open): "
            f"raise `ulimit -n` or lower --max-sessions")
