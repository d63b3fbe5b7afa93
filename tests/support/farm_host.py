"""One farm worker process: many simulated GPU hosts, each a real asyncssh server on its own
port of 127.0.0.1. What the product's SshLauncher does on a host, and how the farm answers:

  `<python> -c <check script> [DIR]`    -> one `GPUBENCH_CHECK {...}` line (numpy, cupy, nvml ok;
                                           DIR deployed or not)
  `<python> -c <check script> DIR --start NEED_CUPY ARGV...`
                                        -> that line on stderr with "started"; when DIR is
                                           deployed, then the replay as for the engine below
  sftp subsystem (engine deployment)    -> a real asyncssh SFTP server chrooted in the farm folder
  `cd ... && exec <python> gpubench_supervise.py -- env ... <python> -m engine ARGS`
                                        -> `GPUBENCH_PID <n>` on stderr, then the replayed stream
  `kill -s INT -- -<n> ...`             -> interrupts that replay (partial result, done interrupted)
  anything else                         -> reads stdin to EOF, exits 0

Each replayed sample carries `"sent": time.monotonic()` (an extra field; readers ignore
unknown fields) so the app can measure delivery delay. Farm (farm.py) starts the workers:
`python -m tests.support.farm_host serve SPEC.json`, run from the repository root.
"""
from __future__ import annotations

import asyncio
import cProfile
import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path

import asyncssh
from asyncssh import connection as conn_mod
from asyncssh.constants import MSG_IGNORE
from asyncssh.packet import String

from scenarios.descriptors import raise_nofile_limit
from tests.support.fleet_stream import (HostProfile, RecordedStream, StreamBuilder, parse_plan,
                                         samples_per_window, steps)

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
        rec = self.w.recorded
        plan = b.plan
        hello = b.hello()
        if rec:
            hello = {**rec.hello, "plan": plan, "host": {**rec.hello.get("host", {}), "hostname": self.p.name}}
        self.write(hello, t0)
        period = 1.0 / self.w.rate
        await asyncio.sleep(self.w.rng.random() * period)   # random phase: hosts do not tick together
        start = time.monotonic()
        chan = self.proc.channel
        for kind, w, r, n in steps(plan, samples_per_window(plan, self.w.rate), self.w.telemetry_every):
            if kind == "telemetry":
                if not rec:
                    self.write(b.telemetry(), t0)
                elif rec.telemetry:   # a CPU-backend recording has none: send none
                    self.write(dict(rec.telemetry[n % len(rec.telemetry)]), t0)
                continue
            if kind == "result":
                res = b.result(w, r)
                if rec and rec.results:
                    res = {**rec.results[0], "repeat": r}
                self.write(res, t0)
                continue
            delay = start + (n + 1) * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if chan.is_closing() or await self._misbehaved(b, t0):
                return
            line = dict(rec.samples[n % len(rec.samples)]) if rec else b.sample(w)
            self.write(line, t0, stamp=True)
        self.write(b.done(), t0)
        self.proc.exit(0)

    async def _misbehaved(self, b: StreamBuilder, t0: float) -> bool:
        """Play the profile's misbehaviour once it is due; True when the stream ends with it."""
        if self.p.behavior == "normal" or time.monotonic() - t0 < self.p.behave_after_s:
            return False
        if self.p.behavior == "hang":
            await self.proc.channel.wait_closed()    # silent, channel open, until the client gives up
        elif self.p.behavior == "drop":
            self.proc.get_extra_info("connection").abort()
        elif self.p.behavior == "fail":
            self.write({"v": 1, "type": "error", "t": 0.0, "backend": self.p.backend,
                        "code": "workload_failed", "message": "simulated failure", "fatal": True}, t0)
            self.write(b.done("error", 1), t0)
            self.proc.exit(1)
        else:
            return False
        return True


def _like_openssh_on_the_wire() -> None:
    """asyncssh puts an empty SSH_MSG_IGNORE before every packet it encrypts; OpenSSH's sshd
    does not. On a simulated host that doubles the packets the client must decrypt per line,
    so the farm (server side only) sends data the way a real sshd does."""
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
    if getattr(conn_mod.SSHServerConnection.reload_config, "_farm_patched", False):
        return

    async def reload_config(self) -> None:
        return None
    reload_config._farm_patched = True
    conn_mod.SSHServerConnection.reload_config = reload_config


def _skip(*_args, **_kwargs) -> None:
    return None


class HostServer(asyncssh.SSHServer):
    def connection_made(self, conn):
        # no log text formatted per packet (as the app's client does): farm CPU only
        if hasattr(conn, "log_received_packet"):
            conn.log_received_packet = conn.log_sent_packet = _skip

    def begin_auth(self, username):
        return True


class Worker:
    """One server process: many listening ports, one simulated host each."""

    def __init__(self, spec: dict):
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
        _like_openssh_on_the_wire()
        _no_per_connection_config()
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


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "serve":
        print(__doc__)
        return 2
    raise_nofile_limit()
    spec = json.loads(Path(argv[1]).read_text())
    where = os.environ.get("GPUBENCH_SIM_PROFILE")     # fleet_scale.py --profile
    if not where:
        asyncio.run(Worker(spec).serve())
        return 0
    prof = cProfile.Profile()
    prof.enable()
    try:
        asyncio.run(Worker(spec).serve())
    finally:
        prof.disable()
        prof.dump_stats(os.path.join(where, f"farm-{spec.get('seed', 0)}.prof"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
