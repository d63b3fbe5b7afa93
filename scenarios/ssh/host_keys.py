"""Host keys: one known_hosts file per host, checked by asyncssh; an unknown or changed key is
refused with one line naming the host, the key's fingerprint and how to trust it, unless
`trust_on_first_use = true` (unknown keys only: a changed key is always refused), which records
the key and says so.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from scenarios.config import HostConfig

from .asyncssh_import import asyncssh
from .lean import key_auth_first

# Shared by every launcher of this process (a fleet has thousands): parsed known_hosts files
# and loaded client keys, keyed by path and the file's mtime and size, so an edit (or a key
# recorded on first use) is seen at the next connect. Without them each host holds its own
# parsed copies (tens of KB) and re-reads the files twice per connect.
_SHARED_KNOWN_HOSTS: dict[str, tuple[tuple[int, int] | None, Any]] = {}


def file_stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def shared_known_hosts(path: Path) -> Any:
    """The parsed known_hosts file, one object per version of the file."""
    key = str(path)
    stamp = file_stamp(key)
    cached = _SHARED_KNOWN_HOSTS.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    known = asyncssh.read_known_hosts(key) if stamp is not None else asyncssh.import_known_hosts("")
    _SHARED_KNOWN_HOSTS[key] = (stamp, known)
    return known


def known_hosts_path(host: HostConfig, options: asyncssh.SSHClientConnectionOptions | None) -> Path:
    """The host's `known_hosts`, else the first UserKnownHostsFile of the ssh config the options
    were built from, else ~/.ssh/known_hosts."""
    if host.known_hosts:
        return Path(os.path.expanduser(host.known_hosts))
    configured = options.known_hosts if options is not None else None
    if isinstance(configured, (list, tuple)) and configured and isinstance(configured[0], str):
        return Path(os.path.expanduser(configured[0]))
    return Path.home() / ".ssh" / "known_hosts"


def format_known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    name = host if port == 22 else f"[{host}]:{port}"
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{name} {algorithm} {blob}\n"


class HostKeyJudge(asyncssh.SSHClient):
    """Called by asyncssh only for a host key that known_hosts does not trust."""

    def __init__(self, host: HostConfig, known_hosts_path: Path):
        self.host = host
        self.path = known_hosts_path
        self.seen: tuple[str, int, asyncssh.SSHKey, list[asyncssh.SSHKey]] | None = None
        self.recorded = False
        self.lost: Exception | None = None
        self.closed = False
        self.key_first = False      # see connection_made

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        if self.key_first:
            key_auth_first(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.closed = exc, True

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        known: list[asyncssh.SSHKey] = []
        if self.path.is_file():
            try:
                known = list(asyncssh.read_known_hosts(str(self.path)).match(host, addr, port)[0])
            except (OSError, ValueError):
                known = []
        self.seen = (host, port, key, known)
        if known or not self.host.trust_on_first_use:
            return False
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(format_known_hosts_line(host, port, key))
        self.recorded = True
        return True

    def trusted_note(self, name: str) -> str:
        """The note for a key recorded on first use."""
        assert self.seen is not None
        return (f"{name}: trusted new host key {self.seen[2].get_fingerprint()} on first use; "
                f"recorded in {self.path}")

    def refusal(self, name: str, exc: Exception) -> str:
        """One line for a key asyncssh did not accept: what was offered, what known_hosts has,
        and how to trust it."""
        kh_path = self.path
        if self.seen is None:  # e.g. no host key algorithm in common with known_hosts
            return (f"{name}: host key not trusted ({exc}); compare the server's key with "
                    f"{kh_path}")
        host, port, key, known = self.seen
        fp = key.get_fingerprint()
        entry = host if port == 22 else f"[{host}]:{port}"
        if known:
            old = ", ".join(k.get_fingerprint() for k in known)
            return (f"{name}: HOST KEY CHANGED: the server offers {key.get_algorithm()} {fp}, "
                    f"{kh_path} has {old}; refused (if the change is expected, remove the old "
                    f"entry with `ssh-keygen -R '{entry}' -f {kh_path}` and connect again)")
        scan = f"ssh-keyscan -p {port} {host}" if port != 22 else f"ssh-keyscan {host}"
        return (f"{name}: unknown host key {key.get_algorithm()} {fp}; refused. To trust it, "
                f"check the fingerprint and run `{scan} >> {kh_path}`, or set "
                f"trust_on_first_use = true under [hosts.{self.host.name}]")
