"""What ends a fleet or one of its hosts: a fleet that cannot fit the open-files limit is refused
before it starts; a host's connect failure is retried only when it is transient (dropped during
the handshake, as sshd's MaxStartups throttling does), never when it was refused or rejected.
"""
from __future__ import annotations

from scenarios.descriptors import budget_problem


class FleetError(Exception):
    """The fleet as a whole cannot run (e.g. not enough file descriptors); one line for the user."""


def check_descriptor_budget(hosts: int, max_sessions: int | None = None) -> None:
    """Raise FleetError when this many concurrent sessions cannot get a descriptor each."""
    problem = budget_problem(min(hosts, max_sessions or hosts))
    if problem is not None:
        raise FleetError(problem)


_TRANSIENT_TEXT = ("connection lost", "connection reset", "reset by peer", "maxstartups",
                   "kex_exchange_identification", "timed out", "timeout", "broken pipe",
                   "temporarily unavailable")
_PERMANENT_TEXT = ("refused", "host key", "permission denied", "auth", "no route",
                   "name or service not known", "not known", "unreachable")


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: dropped during the handshake, not refused or rejected."""
    e: BaseException | None = exc
    texts = []
    depth = 0
    while e is not None and depth < 10:
        if isinstance(e, (ConnectionResetError, BrokenPipeError)):
            return True
        if isinstance(e, ConnectionRefusedError):
            return False
        texts.append(f"{type(e).__name__}: {e}".lower())
        e = e.__cause__ or e.__context__
        depth += 1
    joined = " | ".join(texts)
    if any(word in joined for word in _PERMANENT_TEXT):
        return False
    return any(word in joined for word in _TRANSIENT_TEXT)
