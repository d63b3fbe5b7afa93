"""File writing the result store and exports share: atomic writes, one-line OS errors, and
output file names made safe (a name derived from data never leaves its folder)."""
from __future__ import annotations

import errno
import fcntl
import os
import re
from pathlib import Path

from .schema import DocumentError, RunNotFound

SAFE_NAME_MAX = 120


def why(exc: OSError) -> str:
    """An OSError as the few words a user needs."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or str(exc)


def read_stored(path: Path, subject: str) -> bytes:
    """A stored file's bytes; RunNotFound when it went meanwhile (another process deleted or
    saved it), DocumentError (one line starting with `subject`) when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RunNotFound(f"{subject} disappeared") from None
    except OSError as exc:
        raise DocumentError(f"{subject} cannot be read: {why(exc)}") from None


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """The hidden temporary file a save of `path` writes first (`.<name>.tmp-<pid>`)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def safe_file_name(text: str, suffix: str = "") -> str:
    """`text` as a plain file name: only letters, digits, '.', '_' and '-' (anything else,
    path separators, NUL and newlines included, becomes '_'), no leading dot, at most
    SAFE_NAME_MAX characters before `suffix`."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).lstrip(".")[:SAFE_NAME_MAX]
    return (name or "unnamed") + suffix


def path_in(folder: Path, name: str) -> Path:
    """`folder / name` for a name made by safe_file_name; refuses anything that would not be
    a file directly inside `folder` (the last guard before writing)."""
    path = folder / name
    if not name or name in (".", "..") or path.parent != folder or Path(name).name != name:
        raise ValueError(f"not a plain file name: {name!r}")
    return path


def held_by_writer(path: Path) -> bool:
    """True while some process holds an exclusive flock on `path` (a journal's writer holds
    one for as long as it lives; the kernel drops it when the process dies, kill -9 too)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False
