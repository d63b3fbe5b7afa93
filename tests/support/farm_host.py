"""A farm of simulated GPU hosts: real asyncssh servers on 127.0.0.1, in other processes.

Each simulated host is its own listening port (so the app connects to N distinct
"hosts" through its ordinary SSH launcher), served by a few worker processes. When the
client runs `... python -m engine ARGS`, the host does not run an engine: it replays a
protocol v1 stream — a hello with that host's facts, samples at `rate` per second, a
telemetry line every `telemetry_every` samples, one result per workload × repeat and a
done — generated from the host's profile, or from lines recorded from the real engine
(`--record` in fleet_scale.py). Each sample carries `"sent": time.monotonic()` (an extra
field; readers ignore unknown fields) so the app can measure delivery delay. Any other
command (deployment, probes) reads its stdin to the end and exits 0.

Profiles plant the bad cases the fleet tests need: a PCIe link trained at Gen3 x8, a
throttling GPU, another GPU model, a host that hangs mid-stream, one whose connection drops.

    farm = Farm(tmpdir, [HostProfile("sim-0000"), HostProfile("sim-0001", pcie=(3, 8, 5, 16), speed=0.6)])
    farm.start()                                  # keys, known_hosts, workers; returns when listening
    farm.ports["sim-0000"], farm.client_key, farm.known_hosts
    farm.stop()

Run a worker by hand: `python benchmarks/fleet_sim.py serve SPEC.json`.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import asyncio

H100 = "NVIDIA H100 80GB HBM3"
# workload -> (variant, ops/s, p50 latency µs, GB/s or None) on a healthy H100 (GPU-FACTS.md)
SHAPES = {
    "roundtrip": ("pinned-64KiB", 18600.0, 51.0, 2.4),
    "launch": ("sync", 77400.0, 11.6, None),
    "h2d": ("pinned-1MiB", 33000.0, 29.0, 33.7),
    "d2h": ("pinned-1MiB", 29000.0, 33.0, 30.7),
    "alloc": ("1MiB", 10300.0, 96.5, None),
}
# How much a Gen3 x8 link (about 1/8 of Gen5 x16) slows each workload (copies suffer most).
PCIE_SENSITIVITY = {"roundtrip": 0.8, "h2d": 1.0, "d2h": 1.0, "launch": 0.05, "alloc": 0.05}


@dataclass
class HostProfile:
    name: str
    gpu_model: str = H100
    backend: str = "cupy"
    speed: float = 1.0                      # throughput multiplier (1.0 = healthy)
    pcie: tuple[int, int, int, int] = (5, 16, 5, 16)   # gen, width, gen_max, width_max
    sm_clock_mhz: int = 1980
    sm_clock_max_mhz: int = 1980
    throttle_mask: int = 0
    other_processes: int = 0
    noise: float = 0.015                    # relative noise of each result
    behavior: str = "normal"                # normal | hang | drop | fail
    behave_after_s: float = 1.0             # when hang/drop happens
    seed: int | None = None

    @property
    def rng_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:4], "little")


def _lat(p50: float) -> dict[str, float]:
    return {"mean": round(p50 * 1.05, 3), "p50": round(p50, 3), "p90": round(p50 * 1.2, 3),
            "p99": round(p50 * 1.8, 3), "p999": round(p50 * 3.0, 3), "min": round(p50 * 0.8, 3),
            "max": round(p50 * 5.0, 3)}


def throttle_names(mask: int) -> list[str]:
    bits = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
            0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
            0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
            0x100: "display_clock_setting"}
    return [n for b, n in bits.items() if mask & b]


def parse_plan(command: str) -> dict:
    """The engine arguments the client asked for (what matters to the replay)."""
    at = command.rfind("-m engine")     # a check-and-start command: the engine's argv is its tail
    args = (command[at:] if at >= 0 else command).split()
    plan = {"workloads": ["roundtrip"], "duration_s": 1.0, "repeats": 1, "warmup_s": 0.0}
    for i, a in enumerate(args[:-1]):
        nxt = args[i + 1]
        try:
            if a == "--workloads":
                plan["workloads"] = [w for w in nxt.split(",") if w]
            elif a == "--duration":
                plan["duration_s"] = float(nxt)
            elif a == "--repeats":
                plan["repeats"] = int(nxt)
            elif a == "--warmup":
                plan["warmup_s"] = float(nxt)
        except ValueError:
            pass
    return plan


class StreamBuilder:
    """Protocol v1 lines for one host profile (dicts; the caller stamps t and sends)."""

    def __init__(self, profile: HostProfile, plan: dict):
        self.p = profile
        self.plan = plan
        self.rng = random.Random(profile.rng_seed)
        self.counts = {"hello": 0, "sample": 0, "telemetry": 0, "result": 0}

    def _base(self, kind: str) -> dict:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return {"v": 1, "type": kind, "t": 0.0, "backend": self.p.backend}

    def speed(self, workload: str) -> float:
        gen, width, gmax, wmax = self.p.pcie
        link = (min(gen, gmax) * width) / max(1, gmax * wmax)
        sens = PCIE_SENSITIVITY.get(workload, 0.5)
        pcie_factor = 1.0 - sens * (1.0 - link) * 0.5
        return self.p.speed * pcie_factor

    def hello(self) -> dict:
        gen, width, gmax, wmax = self.p.pcie
        line = self._base("hello")
        line.update(engine_version="0.1.0-sim", plan=self.plan, device={
            "name": self.p.gpu_model, "uuid": f"GPU-sim-{self.p.rng_seed:08x}", "index": 0,
            "driver": "580.159.04", "cuda_driver": 13000, "cuda_runtime": 13000,
            "compute_capability": "9.0", "memory_total_mib": 81559,
            "pcie": {"gen_current": gen, "gen_max": gmax, "width_current": width, "width_max": wmax},
            "mig_mode": 0, "power_limit_w": 700.0,
            "clocks_max": {"sm_mhz": self.p.sm_clock_max_mhz, "mem_mhz": 2619},
            "virtualization_mode": None},
            host={"hostname": self.p.name, "os": "Linux", "kernel": "6.1.0-sim", "python": "3.11.7",
                  "numpy": "2.1.3", "cupy": "14.2.0", "nvml": "13.580", "cpu_model": "sim",
                  "pid": os.getpid(), "hypervisor": {"detected": False, "evidence": [], "vendor": None},
                  "preload": {"ld_preload": [], "mapped": []}, "env": {}})
        return line

    def sample(self, workload: str) -> dict:
        variant, ops, lat, gbps = SHAPES.get(workload, ("default", 1000.0, 1000.0, None))
        f = self.speed(workload) * (1 + self.rng.gauss(0, self.p.noise * 2))
        line = self._base("sample")
        line.update(workload=workload, variant=variant, interval_ops=max(1, int(ops * f * 0.5)),
                    ops_per_s=round(ops * f, 2), latency_us=_lat(lat / f))
        if gbps is not None:
            line["gbps"] = round(gbps * f, 3)
        return line

    def telemetry(self) -> dict:
        gen, width, gmax, wmax = self.p.pcie
        line = self._base("telemetry")
        line["readings"] = {
            "gpu_util_pct": 97, "mem_util_pct": 40, "sm_clock_mhz": self.p.sm_clock_mhz,
            "mem_clock_mhz": 2619, "power_w": 420.0, "power_limit_w": 700.0, "temperature_c": 55,
            "memory_used_mib": 2200, "memory_total_mib": 81559, "pcie_tx_kbps": 1_200_000,
            "pcie_rx_kbps": 900_000, "pcie_gen": gen, "pcie_width": width, "pcie_gen_max": gmax,
            "pcie_width_max": wmax, "throttle_reasons": self.p.throttle_mask,
            "throttle_names": throttle_names(self.p.throttle_mask), "mig_mode": 0, "ecc_volatile": 0,
            "other_processes": self.p.other_processes}
        return line

    def result(self, workload: str, repeat: int, interrupted: bool = False) -> dict:
        variant, ops, lat, gbps = SHAPES.get(workload, ("default", 1000.0, 1000.0, None))
        f = self.speed(workload) * (1 + self.rng.gauss(0, self.p.noise))
        dur = float(self.plan.get("duration_s", 1.0))
        reasons = ["interrupted"] if interrupted else []
        reasons += [f"throttled: {n}" for n in throttle_names(self.p.throttle_mask & 0xE8)]
        line = self._base("result")
        line.update(workload=workload, variant=variant, repeat=repeat, ops=int(ops * f * dur),
                    duration_s=dur, ops_per_s=round(ops * f, 2),
                    latency_us={**_lat(lat / f), "stdev": round(lat * 0.05, 3), "cv": 0.05},
                    valid=not reasons, validity_reasons=reasons, interrupted=interrupted,
                    params={"size_bytes": 65536, "memory": "pinned"})
        if gbps is not None:
            line["gbps"] = round(gbps * f, 3)
        return line

    def done(self, status: str = "ok", exit_code: int = 0) -> dict:
        line = self._base("done")
        line.update(status=status, exit_code=exit_code, counts=dict(self.counts))
        return line


def complete_stream(profile: HostProfile, plan: dict | None = None, samples_per_window: int = 2,
                    telemetry_every: int = 2) -> list[dict]:
    """A whole stream as dicts, for tests of results/fleet.py that need no network."""
    plan = plan or {"workloads": ["roundtrip"], "duration_s": 1.0, "repeats": 5, "warmup_s": 0.0}
    b = StreamBuilder(profile, plan)
    out = [b.hello()]
    n = 0
    for w in plan["workloads"]:
        for r in range(plan["repeats"]):
            for _ in range(samples_per_window):
                out.append(b.sample(w))
                n += 1
                if n % telemetry_every == 0:
                    out.append(b.telemetry())
            out.append(b.result(w, r))
    out.append(b.done())
    t = 0.0
    for line in out:
        line["t"] = round(t, 3)
        t += 0.25
    return out


# ---- recorded templates (lines from the real engine) --------------------------------------

class RecordedStream:
    """Lines recorded from `python -m engine`: replayed with t and sent restamped."""

    def __init__(self, lines: Sequence[dict]):
        self.hello = next(l for l in lines if l["type"] == "hello")
        self.samples = [l for l in lines if l["type"] == "sample"] or None
        self.telemetry = [l for l in lines if l["type"] == "telemetry"]
        self.results = [l for l in lines if l["type"] == "result"]
        self.done = next((l for l in lines if l["type"] == "done"), None)
        if not self.samples:
            raise ValueError("recording has no sample lines")


# ---- the SSH server side ---------------------------------------------------------------------
#
# What the product's SshLauncher does on a host, and how the farm answers:
#   `<python> -c <check script> [DIR]`    -> one `GPUBENCH_CHECK {...}` line (numpy, cupy, nvml ok;
#                                            DIR deployed or not)
#   `<python> -c <check script> DIR --start NEED_CUPY ARGV...`
#                                         -> that line on stderr with "started"; when DIR is
#                                            deployed, then the replay as for the engine below
#   sftp subsystem (engine deployment)    -> a real asyncssh SFTP server chrooted in the farm folder
#   `cd ... && exec <python> gpubench_supervise.py -- env ... <python> -m engine ARGS`
#                                         -> `GPUBENCH_PID <n>` on stderr, then the replayed stream
#   `kill -s INT -- -<n> ...`             -> interrupts that replay (partial result, done interrupted)
#   anything else                         -> reads stdin to EOF, exits 0

CHECK_REPLY = ("GPUBENCH_CHECK " + json.dumps({
    "python": "3.11.7", "executable": "/usr/bin/python3",
    "packages": {"numpy": {"ok": True, "version": "2.1.3"},
                 "cupy": {"ok": True, "version": "cupy-cuda13x 14.2.0"},
                 "pynvml": {"ok": True, "version": "nvidia-ml-py 13.580.82"}},
    "driver": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  (sim)"}) + "\n")


try:  # the farm's own cost per line (it shares the app's 2 cores): orjson when it is there
    from orjson import dumps as _orjson_dumps

    def _dumps(obj) -> str:
        return _orjson_dumps(obj).decode()
except ImportError:  # pragma: no cover
    def _dumps(obj) -> str:
        return json.dumps(obj, separators=(",", ":"))


class Replay:
    """One simulated engine run on one channel."""

    def __init__(self, worker: "Worker", profile: HostProfile, process):
        self.w, self.p, self.proc = worker, profile, process
        self.interrupted = False
        self.task: asyncio.Task | None = None

    def write(self, line: dict, t0: float, stamp: bool = False) -> None:
        now = time.monotonic()
        line["t"] = round(now - t0, 4)
        if stamp:
            line["sent"] = now
        self.proc.stdout.write(_dumps(line) + "\n")

    def interrupt(self, sig: str) -> None:
        if self.p.behavior == "hang" or self.task is None or self.task.done():
            return                                   # a hung host ignores signals
        if sig == "INT" and not self.interrupted:
            self.interrupted = True
            self.task.cancel()
        elif sig in ("TERM", "KILL"):
            self.interrupted = False
            self.task.cancel()
            try:
                self.proc.exit(128 + (15 if sig == "TERM" else 9))
            except Exception:
                pass

    async def run(self) -> None:
        import asyncio
        pgid = self.w.register(self)
        self.proc.stderr.write(f"GPUBENCH_PID {pgid}\n")
        self.task = asyncio.current_task()
        b = StreamBuilder(self.p, parse_plan(self.proc.command or ""))
        t0 = time.monotonic()
        try:
            await self._replay(b, t0)
        except asyncio.CancelledError:
            if self.interrupted:          # SIGINT: the engine writes its partial result
                try:
                    self.write(b.done("interrupted", 130), t0)
                    self.proc.exit(130)
                except Exception:
                    pass
        except (BrokenPipeError, ConnectionError, OSError):
            pass
        except Exception as exc:  # a sim bug: say it on stderr, end the channel
            try:
                self.proc.stderr.write(f"sim error: {type(exc).__name__}: {exc}\n")
                self.proc.exit(1)
            except Exception:
                pass
        finally:
            self.w.unregister(pgid)

    async def _replay(self, b: StreamBuilder, t0: float) -> None:
        import asyncio
        rec = self.w.recorded
        plan = b.plan
        hello = b.hello()
        if rec:
            hello = {**rec.hello, "plan": plan, "host": {**rec.hello.get("host", {}), "hostname": self.p.name}}
        self.write(hello, t0)
        period = 1.0 / self.w.rate
        per_window = max(1, round(plan["duration_s"] * self.w.rate))
        await asyncio.sleep(self.w.rng.random() * period)   # random phase: hosts do not tick together
        next_at = time.monotonic()
        n = 0
        chan = self.proc.channel
        for w in plan["workloads"]:
            for r in range(plan["repeats"]):
                for _ in range(per_window):
                    next_at += period
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if chan.is_closing():
                        return
                    elapsed = time.monotonic() - t0
                    if self.p.behavior != "normal" and elapsed >= self.p.behave_after_s:
                        if self.p.behavior == "hang":
                            await chan.wait_closed()          # silent, channel open, until the client gives up
                            return
                        if self.p.behavior == "drop":
                            self.proc.get_extra_info("connection").abort()
                            return
                        if self.p.behavior == "fail":
                            self.write({"v": 1, "type": "error", "t": 0.0, "backend": self.p.backend,
                                        "code": "workload_failed", "message": "simulated failure",
                                        "fatal": True}, t0)
                            self.write(b.done("error", 1), t0)
                            self.proc.exit(1)
                            return
                    line = dict(rec.samples[n % len(rec.samples)]) if rec else b.sample(w)
                    self.write(line, t0, stamp=True)
                    n += 1
                    if self.w.telemetry_every and n % self.w.telemetry_every == 0:
                        if not rec:
                            self.write(b.telemetry(), t0)
                        elif rec.telemetry:   # a CPU-backend recording has none: send none
                            self.write(dict(rec.telemetry[n % len(rec.telemetry)]), t0)
                res = b.result(w, r)
                if rec and rec.results:
                    res = {**rec.results[0], "repeat": r}
                self.write(res, t0)
        self.write(b.done(), t0)
        self.proc.exit(0)


def _like_openssh_on_the_wire() -> None:
    """asyncssh puts an empty SSH_MSG_IGNORE before every packet it encrypts; OpenSSH's sshd
    does not. On a simulated host that doubles the packets the client must decrypt per line,
    so the farm (server side only) sends data the way a real sshd does."""
    from asyncssh import connection as conn_mod
    from asyncssh.constants import MSG_IGNORE
    from asyncssh.packet import String
    empty = String(b"")
    original = conn_mod.SSHConnection.send_packet
    if getattr(original, "_farm_patched", False):
        return

    def send_packet(self, pkttype, *args, handler=None):
        if pkttype == MSG_IGNORE and args == (empty,):
            return
        return original(self, pkttype, *args, handler=handler)
    send_packet._farm_patched = True
    conn_mod.SSHConnection.send_packet = send_packet


def _no_per_connection_config() -> None:
    """asyncssh's server builds its options again for each connection once the user name is
    known (for sshd_config Match blocks), in a worker thread: ~0.5 ms of the farm's CPU and a
    thread hop per connection. The farm reads no config, so they would equal the listener's:
    keep those (server side only; the client's work is unchanged)."""
    from asyncssh.connection import SSHServerConnection
    if getattr(SSHServerConnection.reload_config, "_farm_patched", False):
        return

    async def reload_config(self) -> None:
        return None
    reload_config._farm_patched = True
    SSHServerConnection.reload_config = reload_config


def _skip(*_args, **_kwargs) -> None:
    return None


def _server_classes():
    import asyncssh
    _like_openssh_on_the_wire()
    _no_per_connection_config()

    class HostServer(asyncssh.SSHServer):
        def connection_made(self, conn):
            # no log text formatted per packet (as the app's client does): farm CPU only
            if hasattr(conn, "log_received_packet"):
                conn.log_received_packet = conn.log_sent_packet = _skip

        def begin_auth(self, username):
            return True

    return HostServer


class Worker:
    """One server process: many listening ports, one simulated host each."""

    def __init__(self, spec: dict):
        import asyncssh
        self.spec = spec
        self.rate = float(spec.get("rate", 2.0))
        self.telemetry_every = int(spec.get("telemetry_every", 4))
        self.rng = random.Random(spec.get("seed", 1))
        self.host_key = asyncssh.read_private_key(spec["host_key"])
        self.authorized = asyncssh.read_authorized_keys(spec["authorized_keys"])
        self.recorded = None
        if spec.get("recording"):
            lines = [json.loads(l) for l in Path(spec["recording"]).read_text().splitlines() if l.strip()]
            self.recorded = RecordedStream(lines)
        self.profiles = [HostProfile(**{**h, "pcie": tuple(h["pcie"])}) for h in spec["hosts"]]
        self.replays: dict[int, Replay] = {}
        self._deployed: set[str] = set()
        self._replies: dict[tuple, str] = {}
        self._next_pgid = 10_000 * (1 + int(spec.get("seed", 0)))

    def register(self, replay: "Replay") -> int:
        self._next_pgid += 1
        self.replays[self._next_pgid] = replay
        return self._next_pgid

    def unregister(self, pgid: int) -> None:
        self.replays.pop(pgid, None)

    def check_reply(self, command: str) -> tuple[str, str | None, bool]:
        """The check script's answer (JSON), its mode (--start, --exec or None) and whether the
        bundle is there; like the real script, it says whether the engine bundle folder given
        after the script (ROOT NAME DIGEST, relative to the home, here the SFTP root) is there
        (a simulated farm trusts a MANIFEST: no digest), so the client skips SFTP on a cache
        hit, and in --start mode it starts the engine only when it is. Only the short tail
        after the quoted script is parsed (the script has no quote after its last marker)."""
        end = command.find("'", command.rfind("GPUBENCH_CHECK "))
        args = command[end + 1:].split(None, 4) if end >= 0 else []
        root = self.spec.get("sftp_root")
        if len(args) < 3 or not root:
            return self._reply(False, None, False), None, False
        rel = (args[0].strip("'") + "/" + args[1].strip("'")).lstrip("/")
        deployed = rel in self._deployed    # a bundle once there stays (the farm never removes one)
        if not deployed and (Path(root) / rel / "MANIFEST.json").is_file():
            self._deployed.add(rel)
            deployed = True
        mode = args[3] if len(args) > 3 else None
        return self._reply(True, "/" + rel if deployed else None, mode == "--start"), mode, deployed

    def _reply(self, asked: bool, deployed: str | None, start: bool) -> str:
        """The check's JSON, made once per distinct answer (every host of a farm gives the same)."""
        key = (asked, deployed, start)
        text = self._replies.get(key)
        if text is None:
            data = json.loads(CHECK_REPLY.split(" ", 1)[1])
            if asked:
                data["deployed"] = deployed
            if start:
                data["started"] = deployed is not None   # every package is there
            text = self._replies[key] = json.dumps(data)
        return text

    async def handle(self, profile: HostProfile, process) -> None:
        command = process.command or ""
        chan = process.channel
        if hasattr(chan, "log_sent_packet"):   # every streamed line is a packet on it
            chan.log_sent_packet = chan.log_received_packet = _skip
        if "GPUBENCH_CHECK" in command:
            reply, mode, deployed = self.check_reply(command)
            if mode is None:
                process.stdout.write("GPUBENCH_CHECK " + reply + "\n")
                process.exit(0)
                return
            if mode == "--start":
                process.stderr.write("GPUBENCH_CHECK " + reply + "\n")
            if not deployed:
                process.exit(0 if mode == "--start" else 126)
                return
        if "-m engine" in command:
            await Replay(self, profile, process).run()
            return
        m = re.match(r"kill -s (\w+) -- -(\d+)", command)
        if m:
            replay = self.replays.get(int(m.group(2)))
            if replay is not None:
                replay.interrupt(m.group(1))
            process.exit(0 if replay is not None else 1)
            return
        try:
            await process.stdin.read()
        except Exception:
            pass
        process.exit(0)

    async def serve(self) -> None:
        import asyncio
        import asyncssh
        HostServer = _server_classes()
        root = self.spec.get("sftp_root")
        ports = {}
        servers = []
        for p in self.profiles:
            server = await asyncssh.create_server(
                HostServer, "127.0.0.1", 0,
                server_host_keys=[self.host_key], authorized_client_keys=self.authorized,
                process_factory=lambda proc, p=p: self.handle(p, proc),
                sftp_factory=(lambda chan: asyncssh.SFTPServer(chan, chroot=root)) if root else None,
                encoding="utf-8", allow_scp=False, keepalive_interval=0, login_timeout=60,
                line_editor=False)
            servers.append(server)
            ports[p.name] = server.sockets[0].getsockname()[1]
        sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid(), "ports": ports}) + "\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # stdin closing (the parent died) also stops us
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 1) else None)
        await stop.wait()
        for s in servers:
            s.close()


def _raise_nofile() -> None:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- the farm (runs in the test / benchmark process) ---------------------------------------

def write_keys(folder: Path) -> dict[str, Path]:
    """Farm host key, client key, authorized_keys and a known_hosts that pins the farm key."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from scenarios.asyncssh_import import asyncssh   # quiet: this runs in the user's process
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
    def __init__(self, folder: str | os.PathLike, profiles: Sequence[HostProfile], *,
                 workers: int | None = None, rate: float = 2.0, telemetry_every: int = 4,
                 recording: str | None = None, python: str | None = None, preseed: bool = False):
        self.folder = Path(folder)
        self.home = self.folder / "home"          # every simulated host's SFTP root (shared)
        self.preseed = preseed
        self.profiles = list(profiles)
        self.n_workers = workers or max(1, min(4, len(self.profiles) // 250 + 1))
        self.rate = rate
        self.telemetry_every = telemetry_every
        self.recording = recording
        self.python = python or sys.executable
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
            proc = subprocess.Popen([self.python, __file__, "serve", str(path)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=open(self.folder / f"worker-{i}.log", "w"),
                                    text=True)
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
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from scenarios.config import HostConfig
        labels = labels or {}
        ports = [(n, p) for n, p in self.ports.items() if names is None or n in names]
        ports += [(n, unused_port()) for n in extra_dead]
        return {n: HostConfig(name=n, kind="ssh", address="127.0.0.1", port=p, user=user,
                              identity_file=str(self.client_key), known_hosts=str(self.known_hosts),
                              labels=tuple(labels.get(n, ())))
                for n, p in ports}

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __enter__(self) -> "Farm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def preseed_engine(home: Path) -> Path:
    """Put the current engine bundle in the hosts' cache, as a previous run would have."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from scenarios.deploy import CACHE_ROOT, MANIFEST_NAME, engine_bundle
    bundle = engine_bundle()
    target = home / CACHE_ROOT / bundle.dir_name
    for rel, data in bundle.files:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
    (target / MANIFEST_NAME).write_bytes(bundle.manifest())
    return target


def unused_port() -> int:
    """A port nobody listens on (for a dead host)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- behind a real OpenSSH sshd: the "python" the launcher runs ---------------------------

def emulate(argv: list[str], rate: float = 2.0, telemetry_every: int = 4) -> int:
    """`fleet_sim.py emulate -m engine ARGS`: print a replayed stream on stdout, like the engine.

    Used as the remote interpreter of the hosts behind a real sshd (the sshd's command runs
    a small wrapper script that execs this), so those sessions cost the machine a sleeping
    Python process instead of an engine spinning on a CPU core."""
    import socket
    rate = float(os.environ.get("GPUBENCH_SIM_RATE", rate))
    telemetry_every = int(os.environ.get("GPUBENCH_SIM_TELEMETRY_EVERY", telemetry_every))
    if argv[:2] != ["-m", "engine"]:      # a probe or deployment step: the real interpreter runs it
        os.execv(sys.executable, [sys.executable, *argv])
    plan = parse_plan(" ".join(argv))
    b = StreamBuilder(HostProfile(os.environ.get("GPUBENCH_SIM_NAME") or socket.gethostname()), plan)
    stop = {"sig": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(sig=True))
    t0 = time.monotonic()

    def out(line: dict, stamp: bool = False) -> None:
        now = time.monotonic()
        line["t"] = round(now - t0, 4)
        if stamp:
            line["sent"] = now
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    try:
        out(b.hello())
        period = 1.0 / rate
        per_window = max(1, round(plan["duration_s"] * rate))
        next_at = time.monotonic()
        n = 0
        for w in plan["workloads"]:
            for r in range(plan["repeats"]):
                for _ in range(per_window):
                    next_at += period
                    while not stop["sig"] and time.monotonic() < next_at:
                        time.sleep(max(0.0, min(0.05, next_at - time.monotonic())))
                    if stop["sig"]:
                        out(b.result(w, r, interrupted=True))
                        out(b.done("interrupted", 130))
                        return 130
                    out(b.sample(w), stamp=True)
                    n += 1
                    if telemetry_every and n % telemetry_every == 0:
                        out(b.telemetry())
                out(b.result(w, r))
        out(b.done())
    except BrokenPipeError:
        return 141
    return 0


class PrivateSshd:
    """A real OpenSSH sshd on 127.0.0.1 with a private config (TEST-FACTS recipe).

    Its host key is generated into `folder`; `known_hosts` pins it for its port. The
    authorized keys file is the farm's, so the farm's client key logs in (as root here)."""

    def __init__(self, folder: str | os.PathLike, authorized_keys: Path, max_startups: str = "200:30:400"):
        self.folder = Path(folder)
        self.authorized_keys = authorized_keys
        self.max_startups = max_startups
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.known_hosts = self.folder / "sshd_known_hosts"

    def start(self, timeout_s: float = 10.0) -> "PrivateSshd":
        import shutil
        import socket
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            raise RuntimeError("no sshd (apt-get install -y openssh-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        key = self.folder / "sshd_host_ed25519"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        self.port = unused_port()
        config = self.folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {key}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\nStrictModes no\nUsePAM no\n"
            f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n"
            f"PidFile {self.folder / 'sshd.pid'}\nMaxStartups {self.max_startups}\nMaxSessions 100\n"
            f"AcceptEnv GPUBENCH_* CUDA_* LD_PRELOAD\nPermitUserEnvironment no\nLogLevel ERROR\n"
            # bash runs ~/.bashrc for a command from sshd when it is the top shell (SHLVL < 2):
            # this machine's root .bashrc (pyenv init: ~0.15 s of CPU) would then run for every
            # command at full weight on the farm's core (the session's new autogroup), where a
            # real host's would run on that host. Sessions start as if from a shell instead.
            f"SetEnv SHLVL=1\n"
            f"Subsystem sftp internal-sftp\n")
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.folder / "sshd.log", "w"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        pub = (key.with_suffix(".pub") if key.with_suffix(".pub").exists() else Path(str(key) + ".pub")).read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def host_python(folder: str | os.PathLike) -> str:
    """An interpreter like a GPU host's for the sshd hosts' remote side: this Python's base
    interpreter in a bare venv that sees numpy (linked from here) and nothing else. This
    machine's own venv also loads the project's editable-install finder at every start
    (~25 ms of CPU by itself, 40 ms in all against 17 here), which no GPU host has, and each
    sshd host starts Python for the check. Falls back to this interpreter if no venv can be made."""
    import glob
    import venv
    target = Path(folder) / "host-python"
    py = target / "bin" / "python"
    if py.exists():
        return str(py)
    try:
        import numpy
        venv.EnvBuilder(symlinks=True, with_pip=False).create(target)
        site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        where = Path(numpy.__file__).resolve().parent.parent
        for entry in glob.glob(str(where / "numpy")) + glob.glob(str(where / "numpy.libs")) + \
                glob.glob(str(where / "numpy-*.dist-info")):
            (site / Path(entry).name).symlink_to(entry)
    except (ImportError, OSError, subprocess.CalledProcessError):
        return sys.executable
    return str(py)


def emulator_python(folder: str | os.PathLike, python: str | None = None, name: str | None = None,
                    rate: float = 2.0, telemetry_every: int = 4, nice: int | None = None) -> Path:
    """A wrapper script to configure as the remote `python` of a host behind PrivateSshd.

    `nice`: the session's scheduling weight, as nice does, where Linux groups tasks by session
    (sched_autogroup_enabled): sshd starts each session in a session of its own, and there a
    process's own nice value counts only against the session's other processes, so the wrapper
    sets its session's (/proc/self/autogroup) too."""
    path = Path(folder) / (f"sim-python-{name}" if name else "sim-python")
    env = f"GPUBENCH_SIM_RATE={rate} GPUBENCH_SIM_TELEMETRY_EVERY={telemetry_every} "
    if name:
        env += f"GPUBENCH_SIM_NAME={name} "
    py = python or sys.executable
    # Only the engine is emulated (standard library only: no site packages to scan); the
    # check script and the supervisor run on the real interpreter directly (one Python start
    # each, as on a real host). One BLAS thread: a check on its own imports numpy, and these hosts'
    # processes share the app's machine.
    renice = (f"echo {int(nice)} > /proc/self/autogroup 2>/dev/null\n" if nice is not None else "")
    path.write_text(f"#!/bin/sh\n{renice}export {env}OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1\n"
                    f"if [ \"$1\" = -m ] && [ \"$2\" = engine ]; then\n"
                    f"  exec {py} -S {Path(__file__).resolve()} emulate \"$@\"\nfi\n"
                    f"exec {py} \"$@\"\n")
    path.chmod(0o755)
    return path


def main(argv: list[str]) -> int:
    if argv[:1] == ["emulate"]:
        return emulate(argv[1:])
    if len(argv) == 2 and argv[0] == "serve":
        _raise_nofile()
        spec = json.loads(Path(argv[1]).read_text())
        import asyncio
        where = os.environ.get("GPUBENCH_SIM_PROFILE")     # fleet_scale.py --profile
        if not where:
            asyncio.run(Worker(spec).serve())
            return 0
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        try:
            asyncio.run(Worker(spec).serve())
        finally:
            prof.disable()
            prof.dump_stats(os.path.join(where, f"farm-{spec.get('seed', 0)}.prof"))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
