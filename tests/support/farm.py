"""A farm of simulated GPU hosts for the fleet tests and benchmarks/fleet_scale.py.

Each simulated host is its own listening port on 127.0.0.1 (so the app connects to N
distinct "hosts" through its ordinary SSH launcher), served by a few worker processes
(farm_host.py). When the client runs `... python -m engine ARGS`, the host runs no engine:
it replays a protocol v1 stream at `rate` samples per second, a telemetry line every
`telemetry_every` samples, generated from the host's profile (fleet_stream.py) or from lines
recorded from the real engine (`recording`). Any other command (deployment, probes) reads
its stdin to the end and exits 0.

    farm = Farm(tmpdir, [HostProfile("sim-0000"), HostProfile("sim-0001", pcie=(3, 8, 5, 16), speed=0.6)])
    farm.start()                                  # keys, known_hosts, workers; returns when listening
    farm.ports["sim-0000"], farm.client_key, farm.known_hosts
    farm.stop()
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from scenarios.ssh.asyncssh_import import asyncssh   # quiet: this runs in the app's process
from scenarios.config import HostConfig
from scenarios.ssh.bundle import engine_bundle
from scenarios.ssh.deploy import CACHE_ROOT, MANIFEST_NAME
from tests.support.fleet_stream import HostProfile
from tests.support.sshd import REPO, free_port


def write_keys(folder: Path) -> dict[str, Path]:
    """Farm host key, client key, authorized_keys and a known_hosts that pins the farm key."""
    folder.mkdir(parents=True, exist_ok=True)
    host = asyncssh.generate_private_key("ssh-ed25519")
    client = asyncssh.generate_private_key("ssh-ed25519")
    paths = {"host_key": folder / "farm_host_ed25519", "client_key": folder / "client_ed25519",
             "authorized_keys": folder / "authorized_keys", "known_hosts": folder / "known_hosts"}
    host.write_private_key(str(paths["host_key"]))
    client.write_private_key(str(paths["client_key"]))
    os.chmod(paths["client_key"], 0o600)
    client.write_public_key(str(folder / "client_ed25519.pub"))
    paths["authorized_keys"].write_text(client.export_public_key().decode())
    host_pub = host.export_public_key().decode().strip()
    # Every farm port on 127.0.0.1 presents the farm key (asyncssh matches [host]:port patterns).
    paths["known_hosts"].write_text(f"[127.0.0.1]:* {host_pub}\n")
    paths["host_pub"] = folder / "farm_host_ed25519.pub"
    paths["host_pub"].write_text(host_pub + "\n")
    return paths


class Farm:
    """Simulated hosts served by `workers` processes (farm_host.py), one port each."""

    def __init__(self, folder: str | os.PathLike, profiles: Sequence[HostProfile], *,
                 workers: int | None = None, rate: float = 2.0, telemetry_every: int = 4,
                 recording: str | None = None, preseed: bool = False):
        self.folder = Path(folder)
        self.home = self.folder / "home"          # every simulated host's SFTP root (shared)
        self.preseed = preseed
        self.profiles = list(profiles)
        self.n_workers = workers or max(1, min(4, len(self.profiles) // 250 + 1))
        self.rate = rate
        self.telemetry_every = telemetry_every
        self.recording = recording
        self.procs: list[subprocess.Popen] = []
        self.ports: dict[str, int] = {}
        self.keys: dict[str, Path] = {}

    @property
    def client_key(self) -> Path:
        return self.keys["client_key"]

    @property
    def known_hosts(self) -> Path:
        return self.keys["known_hosts"]

    def start(self, timeout_s: float = 120.0) -> "Farm":
        self.keys = write_keys(self.folder)
        self.home.mkdir(parents=True, exist_ok=True)
        if self.preseed:
            preseed_engine(self.home)
        chunks = [self.profiles[i::self.n_workers] for i in range(self.n_workers)]
        for i, chunk in enumerate(chunks):
            if not chunk:
                continue
            spec = {"host_key": str(self.keys["host_key"]), "authorized_keys": str(self.keys["authorized_keys"]),
                    "rate": self.rate, "telemetry_every": self.telemetry_every, "seed": i,
                    "recording": self.recording, "sftp_root": str(self.home), "hosts": [asdict(p) for p in chunk]}
            path = self.folder / f"worker-{i}.json"
            path.write_text(json.dumps(spec))
            proc = subprocess.Popen([sys.executable, "-m", "tests.support.farm_host", "serve", str(path)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
                                    stderr=open(self.folder / f"worker-{i}.log", "w"), text=True)
            self.procs.append(proc)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            line = proc.stdout.readline()  # blocks until the worker listens on all its ports
            if not line or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"farm worker failed to start; see {self.folder}/worker-*.log")
            self.ports.update(json.loads(line)["ports"])
        return self

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def host_configs(self, names=None, labels: dict | None = None, extra_dead: Sequence[str] = (),
                     user: str = "sim") -> dict:
        """[hosts.X]-style HostConfigs that reach the farm through the product's SSH launcher.

        `extra_dead` adds hosts on ports where nothing listens (connection refused)."""
        labels = labels or {}
        ports = [(n, p) for n, p in self.ports.items() if names is None or n in names]
        ports += [(n, free_port()) for n in extra_dead]
        return {n: HostConfig(name=n, kind="ssh", address="127.0.0.1", port=p, user=user,
                              identity_file=str(self.client_key), known_hosts=str(self.known_hosts),
                              labels=tuple(labels.get(n, ())))
                for n, p in ports}

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def preseed_engine(home: Path) -> Path:
    """Put the current engine bundle in the hosts' cache, as a previous run would have."""
    bundle = engine_bundle()
    target = home / CACHE_ROOT / bundle.dir_name
    for rel, data in bundle.files:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
    (target / MANIFEST_NAME).write_bytes(bundle.manifest())
    return target


def interleaved(hosts: dict[str, HostConfig], n_last: int) -> list[HostConfig]:
    """The fleet's order with the `n_last` hosts (added last: the real-sshd ones) spread
    evenly among the others, as a real fleet's config mixes its hosts."""
    every = list(hosts.values())
    first, last = every[:len(every) - n_last], every[len(every) - n_last:]
    if not last:
        return first
    step = len(first) / len(last)
    order: list[HostConfig] = []
    for i, host in enumerate(last):
        order.append(host)
        order.extend(first[round(i * step):round((i + 1) * step)])
    return order
