"""What every SSH connection's options share across the hosts of one process: the cipher order,
the loaded client keys, and the login name asyncssh asks for on every connection.
"""
from __future__ import annotations

import errno
import os
from typing import Any

from .asyncssh_import import asyncssh
from .host_keys import file_stamp

try:  # not on Windows
    import pwd
except ImportError:  # pragma: no cover
    pwd = None  # type: ignore[assignment]

# Cipher order when ~/.ssh/config names none: AES-GCM first (AES-NI makes it ~27 % cheaper
# per sample than asyncssh's default chacha20-poly1305 at fleet scale), then asyncssh's own.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")

# Loaded client keys shared by every launcher of this process, keyed by path and the file's
# mtime and size (see host_keys._SHARED_KNOWN_HOSTS).
_SHARED_KEYS: dict[str, tuple[tuple[int, int] | None, Any]] = {}
_CIPHERS: list[str] | None = None


def shared_client_keys(path: str) -> Any:
    """The loaded key pair(s) of an identity file; the path itself when they cannot be loaded
    here (asyncssh then tries them itself and reports what fails)."""
    stamp = file_stamp(path)
    cached = _SHARED_KEYS.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        keys = list(asyncssh.load_keypairs([path]))
    except (asyncssh.Error, ValueError):
        return [path]
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            raise
        return [path]
    if not keys:
        return [path]
    _SHARED_KEYS[path] = (stamp, keys)
    return keys


def preferred_ciphers() -> list[str]:
    """PREFERRED_CIPHERS that this asyncssh has, then the rest of its default order."""
    global _CIPHERS
    if _CIPHERS is None:
        default = [a.decode() for a in asyncssh.encryption.get_default_encryption_algs()]
        _CIPHERS = [c for c in PREFERRED_CIPHERS if c in default] + \
            [c for c in default if c not in PREFERRED_CIPHERS]
    return _CIPHERS


def set_login_name() -> None:
    """asyncssh asks getpass.getuser() for every connection's options; with none of LOGNAME,
    USER, LNAME, USERNAME set (services, containers) each call reads the password database
    (~0.3 ms). Set LOGNAME once, as a login would, from the same database."""
    if pwd is None or any(os.environ.get(k) for k in ("LOGNAME", "USER", "LNAME", "USERNAME")):
        return
    try:
        os.environ["LOGNAME"] = pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, OSError):
        pass      # asyncssh reports an unknown local user itself
