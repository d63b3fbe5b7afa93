"""A private OpenSSH sshd on 127.0.0.1 for tests and benchmarks (see TEST-FACTS.md).

    server = OpenSshServer.start(tmp_dir)      # host key, user key, config, free port
    ... connect to 127.0.0.1:server.port as server.user with server.user_key ...
    server.stop()

Everything lives in `tmp_dir`: the ed25519 host key, a client key authorised
through a private AuthorizedKeysFile (a new one, or the `client_key` given), a
known_hosts file that trusts the host key, the config and the pid file. Nothing
of the machine's own ssh set-up is read or changed. MaxStartups is raised so
that parallel connects are not throttled by the test server (the client's retry
is tested separately); `options` replace or add sshd_config keywords.
"""
from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
REPO = Path(__file__).resolve().parents[2]
# The "remote" interpreter of the tests: the project's venv (it has numpy), else this one.
REMOTE_PYTHON = str(REPO / ".venv" / "bin" / "python") \
    if (REPO / ".venv" / "bin" / "python").exists() else sys.executable


def sshd_missing_reason() -> str | None:
    """Why an OpenSSH server cannot be started here, or None when it can."""
    if not os.path.exists(SSHD):
        return f"{SSHD} not installed (apt-get install openssh-server; .ci/run does)"
    if os.geteuid() != 0:
        return "sshd needs root here (privilege separation); run the tests as root"
    for tool in ("ssh-keygen",):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            return f"{tool} not installed (openssh-client)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, comment: str = "gpubench-test") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class OpenSshServer:
    dir: Path
    port: int
    user: str
    host_key: Path          # private; .pub beside it
    user_key: Path          # private client key authorised on this server
    known_hosts: Path       # trusts host_key for [127.0.0.1]:port
    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, directory: Path, max_startups: str = "200:30:400", *,
              client_key: Path | None = None, options: dict[str, str] | None = None,
              own_session: bool = True) -> "OpenSshServer":
        """`own_session=False` keeps sshd in this process's session, and so in its scheduling
        autogroup (fleet_scale.py weighs the sshd hosts' remote side against the app)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        host_key = keygen(directory / "host_ed25519", "gpubench-test-host")
        user_key = client_key or keygen(directory / "user_ed25519", "gpubench-test-user")
        authorized = directory / "authorized_keys"
        authorized.write_text(Path(f"{user_key}.pub").read_text())
        port = free_port()
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {(directory / 'host_ed25519.pub').read_text()}")
        config = {"Port": str(port), "ListenAddress": "127.0.0.1", "HostKey": str(host_key),
                  "AuthorizedKeysFile": str(authorized), "StrictModes": "no", "UsePAM": "no",
                  "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no",
                  "PubkeyAuthentication": "yes", "PermitRootLogin": "prohibit-password",
                  "PidFile": str(directory / "sshd.pid"), "MaxStartups": max_startups,
                  "MaxSessions": "64", "Subsystem": "sftp internal-sftp", "LogLevel": "VERBOSE",
                  "PrintMotd": "no", "ClientAliveInterval": "0", **(options or {})}
        config_file = directory / "sshd_config"
        config_file.write_text("".join(f"{key} {value}\n" for key, value in config.items()))
        log = directory / "sshd.log"
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config_file)],
                                stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
                                start_new_session=own_session)
        server = cls(directory, port, getpass.getuser(), host_key, user_key, known_hosts, proc, log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {proc.returncode}: {log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within 10 s")

    def session_processes(self) -> list[int]:
        """PIDs of the per-connection sshd processes (descendants of the listener named sshd)."""
        children: dict[int, list[int]] = {}
        names: dict[int, str] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1: stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry))
            names[int(entry)] = name
        out, todo = [], list(children.get(self.proc.pid, []))
        while todo:
            pid = todo.pop()
            if names.get(pid) == "sshd":
                out.append(pid)
                todo.extend(children.get(pid, []))
        return out

    def drop_connections(self) -> int:
        """Kill every sshd process serving a connection (not the listener): a network drop."""
        pids = self.session_processes()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        for pid in self.session_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
