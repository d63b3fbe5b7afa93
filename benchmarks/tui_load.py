"""TUI under load: one plan whose trial streams N sessions at S samples/s into the running app.

    .venv/bin/python benchmarks/tui_load.py                  # 256 sessions × 20 samples/s, 10 s
    .venv/bin/python benchmarks/tui_load.py --parse          # samples as JSON lines through the parser
    .venv/bin/python benchmarks/tui_load.py --hosts 64 --seconds 5

The load takes the route of a plan run (`r`): the app's action_run_plan builds a
gpubench.runner.PlanRunner for one scenario with gpu_select = "all" on a simulated host with
N GPUs, so one trial starts N sessions at once; the runner hands each to the app's pump
(tui/plan_feed.py → tui/sessions.py), which takes every session's events into the board while
the runner records them; the dashboard applies the board at 10 Hz (N GPU rows and the trial's
all-GPU row). Each session is a Session (scenarios.base) whose lines one shared timer delivers
when due (Feeder), as the SSH channel's callbacks deliver a real host's. Every sample is taken
in (the count is checked). Printed:

  * the app process's CPU time as % of one core over the window (producers
    included: in the real app the session readers run in this process too);
  * key-press-to-next-frame latency p50/p99: a cursor key is sent through the
    driver (as a terminal would) every 250 ms and timed until the frame after
    its effect (call_after_refresh); pilot.press would wait for idle instead;
  * samples taken in per second and grid rows re-rendered per second.

Targets: CPU <= 35 % of one core, key latency p50 <= 50 ms, p99 <= 100 ms, on a 2-core
machine at 256 sessions × 20 samples/s. Other load on the machine inflates latency far more
than CPU time, so the load average is printed beside the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events  # noqa: E402

from scenarios.base import LaunchRequest, Launcher, Session  # noqa: E402
from scenarios.config import load_config  # noqa: E402
from scenarios.events import Sample, Telemetry  # noqa: E402
from scenarios.replay import hello_line, sample_line, telemetry_line  # noqa: E402
from tui.app import GpubenchApp  # noqa: E402
from tui.live import AggregateState  # noqa: E402

CONFIG = """
[store]
data_dir = "{data}"
[defaults]
trials = 1
[scenarios.load]
title = "TUI load"
launcher = "local"
host = "local"
gpu_select = "all"
"""


class Feeder:
    """Delivers every simulated session's due lines from one timer, the way the SSH channel's
    data_received callbacks deliver a real host's (scenarios/ssh/session.py): no task wakes up per
    sample. A heap of (next due time, session)."""

    TICK_S = 0.005

    def __init__(self) -> None:
        self._due: list[tuple[float, int, "SimSession"]] = []
        self._handle: asyncio.TimerHandle | None = None

    def add(self, session: "SimSession", first_due: float) -> None:
        heapq.heappush(self._due, (first_due, session.index, session))
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._fire)

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._due
        while due and due[0][0] <= now:
            when, index, session = heapq.heappop(due)
            if session.stopped:
                continue
            session.emit()
            heapq.heappush(due, (when + session.period, index, session))
        self._handle = loop.call_later(self.TICK_S, self._fire) if due else None


class SimSession(Session):
    """Streams samples at a fixed rate until cancelled (typed events, or text lines)."""

    def __init__(self, index: int, rate: float, parse: bool, feeder: Feeder):
        super().__init__(LaunchRequest(label=f"sim-{index}"), f"sim-{index}")
        self.index, self.parse, self.feeder = index, parse, feeder
        self.period = 1.0 / rate
        self.sent = 0
        self._stop = asyncio.Event()
        rng = random.Random(index)
        self._hello = hello_line(0.0, "cupy", f"node-{index:03d}")
        self._lines = [sample_line(0.0, "cupy", "roundtrip", "pinned-64KiB",
                                   7000 * rng.uniform(0.95, 1.05), 140.0, rng, 9.2)
                       for _ in range(8)]
        self._tel = telemetry_line(0.0, "cupy")
        self._events = [json.loads(x) for x in self._lines]
        self._tel_data = json.loads(self._tel)

    async def _run(self) -> int | None:
        self._line(self._hello)
        start = asyncio.get_running_loop().time()
        self.feeder.add(self, start + self.period + (self.index % 50) * self.period / 50)  # spread phases
        await self._stop.wait()
        return 0

    def emit(self) -> None:
        n = self.sent
        t = (n + 1) * self.period
        k = n % len(self._lines)
        if self.parse:
            self._line(self._lines[k].replace('"t":0.0', f'"t":{t:.3f}', 1))
            if n % 10 == 0:
                self._line(self._tel.replace('"t":0.0', f'"t":{t:.3f}', 1))
        else:
            d = self._events[k]
            self._put(Sample(d["workload"], d["variant"], d["ops_per_s"], d["latency_us"],
                             d.get("gbps"), t, d))
            if n % 10 == 0:
                self._put(Telemetry(self._tel_data["readings"], t, self._tel_data))
        self.sent += 1

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def _terminate(self) -> None:
        self._stop.set()


class ListSession(Session):
    """The engine's --list-devices on the simulated host: a hello naming its GPUs."""

    def __init__(self, request: LaunchRequest, gpus: int):
        super().__init__(request, "sim-list")
        hello = json.loads(hello_line(0.0, "cupy", "sim-host"))
        hello["host"]["gpus"] = [{"index": i, "uuid": f"GPU-SIM-{i:04d}", "name": "sim"}
                                 for i in range(gpus)]
        self._hello = json.dumps(hello)

    async def _run(self) -> int | None:
        self._line(self._hello)
        return 0

    async def _terminate(self) -> None:
        pass


class SimLauncher(Launcher):
    """A host with `gpus` simulated GPUs: lists them, then starts one streaming session per
    start (the plan's per-GPU trial starts one per GPU)."""

    def __init__(self, gpus: int, rate: float, parse: bool, feeder: Feeder):
        self.gpus, self.rate, self.parse, self.feeder = gpus, rate, parse, feeder
        self.sessions: list[SimSession] = []

    async def start(self, request: LaunchRequest) -> Session:
        if "--list-devices" in request.engine_args:
            s: Session = ListSession(request, self.gpus)
        else:
            s = SimSession(len(self.sessions), self.rate, self.parse, self.feeder)
            self.sessions.append(s)
        s._begin()
        return s


def session_rows(app: GpubenchApp) -> list:
    """The board's rows of sessions (not the trial's all-GPU row, which sums them)."""
    return [h for h in app.board.hosts.values() if not isinstance(h, AggregateState)]


async def run(hosts: int, rate: float, seconds: float, warmup: float, parse: bool,
              size: tuple[int, int], stage: str = "full") -> dict:
    tmp = tempfile.mkdtemp(prefix="gpubench-tui-load-")
    cfg_path = Path(tmp, "config.toml")
    cfg_path.write_text(CONFIG.format(data=f"{tmp}/data"))
    feeder = Feeder()
    launcher = SimLauncher(hosts, rate, parse, feeder)
    app = GpubenchApp(load_config(cfg_path), launcher_factory=lambda scenario: launcher, seed=1)
    sessions = launcher.sessions
    latencies: list[float] = []
    async with app.run_test(size=size) as pilot:
        app.switch_mode("dashboard")
        await pilot.pause()
        screen = app.screen
        if stage == "produce":         # sessions stream, nobody takes their events in
            for _ in range(hosts):
                await launcher.start(LaunchRequest())
        else:
            app.action_run_plan()      # what `r` does: the plan's sessions go to the pump
        if stage != "full":            # diagnostics: the app idles on the Hosts screen
            app.switch_mode("hosts")
            await pilot.pause()
        await asyncio.sleep(warmup)
        grid = screen.grid
        pending: list[float] = []
        orig = grid.watch_cursor

        def hooked(old: int, new: int) -> None:
            orig(old, new)
            if pending:
                t0 = pending.pop(0)
                app.call_after_refresh(lambda: latencies.append(time.perf_counter() - t0))

        grid.watch_cursor = hooked   # instance attribute: Textual looks watchers up by name
        driver = app._driver
        samples0 = sum(h.samples for h in session_rows(app))
        sent0 = sum(s.sent for s in sessions)
        rows0 = grid.rows_rendered
        prof = None
        if os.environ.get("TUI_LOAD_PROFILE"):
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        load0 = os.getloadavg()
        key_n = 0
        while time.perf_counter() - wall0 < seconds:
            await asyncio.sleep(0.25)
            pending.append(time.perf_counter())
            driver.process_message(events.Key("down" if key_n % 16 < 8 else "up", None))
            key_n += 1
        await asyncio.sleep(0.2)       # let the last key's frame land
        cpu1, wall1 = time.process_time(), time.perf_counter()
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.environ["TUI_LOAD_PROFILE"])
        samples1 = sum(h.samples for h in session_rows(app))
        sent1 = sum(s.sent for s in sessions)
        if stage == "produce":
            samples0, samples1 = sent0, sent1
        rows1 = grid.rows_rendered
        load1 = os.getloadavg()
        running = sum(1 for h in session_rows(app) if h.status == "running")
        for s in sessions:
            await s._terminate()
        while app.plan_running:        # the runner records and saves what the sessions sent
            await asyncio.sleep(0.1)
    wall = wall1 - wall0
    lat_ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return lat_ms[min(len(lat_ms) - 1, int(round(p / 100 * (len(lat_ms) - 1))))] if lat_ms else float("nan")

    return {
        "hosts": hosts, "rate_per_host": rate, "parse": parse, "seconds": round(wall, 2),
        "sessions_running": running,
        "cpu_pct_one_core": round((cpu1 - cpu0) / wall * 100, 1),
        "key_latency_ms_p50": round(pct(50), 1), "key_latency_ms_p99": round(pct(99), 1),
        "keys_timed": len(lat_ms), "keys_sent": key_n,
        "samples_sent_per_s": round((sent1 - sent0) / wall),
        "samples_taken_in_per_s": round((samples1 - samples0) / wall),
        "samples_expected_per_s": round(hosts * rate),
        "samples_lost": sent1 - samples1,   # sent but not yet in the board at the end
        "grid_rows_rendered_per_s": round((rows1 - rows0) / wall),
        "loadavg_1m_before_after": [round(load0[0], 2), round(load1[0], 2)],
        "cpus": os.cpu_count(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=256,
                    help="sessions of the plan's trial (simulated GPUs of one host)")
    ap.add_argument("--rate", type=float, default=20.0, help="samples per second per host")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--parse", action="store_true",
                    help="feed JSON text lines through the stream parser instead of typed events")
    ap.add_argument("--size", default="160x48", help="terminal size, COLSxROWS")
    ap.add_argument("--stage", choices=("full", "consume", "produce"), default="full",
                    help="diagnostics: 'produce' = simulated sessions only, 'consume' = the plan "
                         "runs but the app shows the Hosts screen, 'full' = dashboard")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()
    cols, rows = (int(x) for x in args.size.split("x"))
    r = asyncio.run(run(args.hosts, args.rate, args.seconds, args.warmup, args.parse, (cols, rows),
                        args.stage))
    if args.json:
        print(json.dumps(r))
        return 0
    ok_cpu = r["cpu_pct_one_core"] <= 35
    ok_p50 = r["key_latency_ms_p50"] <= 50
    ok_p99 = r["key_latency_ms_p99"] <= 100
    mode = "JSON lines through the parser" if r["parse"] else "typed events"
    if args.stage != "full":
        mode += f", stage {args.stage}"
    print(f"gpubench-tui load: a plan of {r['hosts']} sessions × {r['rate_per_host']:g} samples/s "
          f"({mode}), "
          f"{r['seconds']} s, terminal {args.size}, {r['cpus']} CPUs, "
          f"load avg {r['loadavg_1m_before_after'][0]} → {r['loadavg_1m_before_after'][1]}")
    print(f"  app CPU            {r['cpu_pct_one_core']:6.1f} % of one core   (target ≤ 35 %)  "
          f"{'OK' if ok_cpu else 'OVER'}")
    print(f"  key → next frame   p50 {r['key_latency_ms_p50']:.1f} ms  p99 {r['key_latency_ms_p99']:.1f} ms"
          f"   (targets ≤ 50 / ≤ 100 ms)  {'OK' if ok_p50 and ok_p99 else 'OVER'}"
          f"   [{r['keys_timed']} of {r['keys_sent']} keys timed]")
    print(f"  samples taken in   {r['samples_taken_in_per_s']:,}/s of {r['samples_expected_per_s']:,}/s "
          f"expected (sent {r['samples_sent_per_s']:,}/s; {r['samples_lost']} in flight at the end)")
    print(f"  grid rows redrawn  {r['grid_rows_rendered_per_s']:,}/s (only changed, visible rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
