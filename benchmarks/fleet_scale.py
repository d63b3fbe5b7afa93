"""Fleet scale: thousands of SSH hosts held by one app process, through the product's path.

    .venv/bin/python benchmarks/fleet_scale.py                 # 2,000 simulated hosts at 2 samples/s + 20 via sshd
    .venv/bin/python benchmarks/fleet_scale.py --stretch       # 4,000 hosts at 1 sample/s
    .venv/bin/python benchmarks/fleet_scale.py --hosts 200 --window 5     # a quick look

The simulated hosts are asyncssh servers on 127.0.0.1 in worker processes (tests/support/farm.py),
one port each, replaying lines recorded from the real engine (`python -m engine --backend
numpy-cpu`, or synthetic protocol v1 lines when the engine cannot run) at `--rate` samples
per second per host, each sample stamped with its send time. `--sshd-hosts` more hosts go
through a real OpenSSH sshd started here with a private config; their remote "python" is the
replay script behind the product's real check, SFTP deployment and supervisor. The app side
is this process: one SshLauncher per host driven by scenarios/fleet_run FleetRun — the code
`gpubench fleet` runs. Host keys are verified against a known_hosts built from the keys
generated for this run.

Printed: app CPU (% of one core) and CPU per sample over a steady window, RSS growth for the
connections (total and per host), sample delivery delay p50/p99 (send stamp → the fleet
listener), time to connect all, and the machine's load over the same window. Pass/fail is
gated on CPU per sample (stable under other load), against the budget that the target
(≤ 50 % of one core at hosts × rate) implies; the other targets are printed with their
status but do not gate, since other load on 2 cores inflates p99 and connect time.
`--pin` (auto with 2+ CPUs) puts the app on the first CPU and the farm's workers on the others,
so the farm does not preempt the app; the sshd and its session processes (the sshd hosts' remote
side, which a real fleet runs on the hosts) run at nice 10, their sessions' autogroups at 19, on
any CPU: they take only time nobody else wants. Their remote "python" is a bare venv of this
interpreter with numpy linked in (tests/support/sshd_hosts.py host_python), as on a GPU host, not this machine's
dev venv (whose editable-install finder costs ~25 ms a start). They are spread evenly through
the fleet's order, as a real config mixes its hosts. Delivery delay is printed for all samples
and per host group.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.protocol import ProtocolError, parse_line  # noqa: E402
from scenarios import aio  # noqa: E402
from scenarios.base import LaunchRequest  # noqa: E402
from scenarios.descriptors import raise_nofile_limit  # noqa: E402
from scenarios.events import CANCELLED, COMPLETED, Sample  # noqa: E402
from scenarios.fleet_run.close import close_launchers  # noqa: E402
from scenarios.fleet_run.failures import FleetError, check_descriptor_budget  # noqa: E402
from scenarios.fleet_run.hosts import RUNNING, FleetTarget  # noqa: E402
from scenarios.fleet_run.run import FleetRun  # noqa: E402
from scenarios.ssh.launcher import SshLauncher  # noqa: E402
from tests.support.farm import Farm, interleaved  # noqa: E402
from tests.support.fleet_stream import HostProfile  # noqa: E402
from tests.support.sshd import OpenSshServer  # noqa: E402
from tests.support.sshd_hosts import FLEET_SSHD_OPTIONS, host_python, sshd_host_configs  # noqa: E402

CPU_TARGET_PCT = 50.0
RSS_TARGET_MB = 100.0
P99_TARGET_MS = 5.0
CONNECT_TARGET_S = 10.0
SSHD_NICE = 10          # with --pin: the real sshd and its sessions (remote-side processes)
# ... and each sshd session's autogroup: each is a group of its own with the weight of its
# nice, so 20 sessions at 10 (20 x 110) would outweigh the farm workers' one group at 0 (1024).
SSHD_SESSION_NICE = 19


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) over all CPUs."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def gc_summary(collections: list[tuple[int, float]]) -> dict[int, tuple[int, float, float]]:
    """{generation: (collections, total ms, longest ms)} of (generation, seconds) pairs."""
    out = {}
    for gen in (0, 1, 2):
        took = [d for g, d in collections if g == gen]
        out[gen] = (len(took), 1000 * sum(took), 1000 * max(took, default=0.0))
    return out


def record_engine(folder: Path) -> Path | None:
    """Lines from the real engine on the CPU backend, if it runs here."""
    cmd = [sys.executable, "-m", "engine", "--backend", "numpy-cpu", "--workloads", "roundtrip",
           "--duration", "0.1", "--repeats", "1"]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = []
    for text in out.splitlines():
        try:
            lines.append(parse_line(text))
        except ProtocolError:
            return None
    if not any(line["type"] == "sample" for line in lines):
        return None
    path = folder / "recording.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def measure(args, targets: list[FleetTarget], engine_args: tuple[str, ...], farm_pids: list[int],
                  rss_base: float) -> dict:
    n = len(targets)
    fleet = FleetRun(targets, LaunchRequest(engine_args=engine_args, label="fleet-scale"),
                     max_connects=args.max_connects, max_sessions=n + 16,
                     inactivity_timeout_s=args.timeout, start_timeout_s=120,
                     keepalive_s=args.keepalive)
    delays: list[float] = []
    group_delays: dict[str, list[float]] = {}      # by host group (sim-, sshd-)
    group_of = {t.name: t.name.split("-")[0] for t in targets}
    state = {"collect": False, "samples": 0, "lines": 0}
    running = {"n": 0, "last": None}

    def on_event(host: str, event) -> None:
        state["lines"] += 1
        if type(event) is Sample:
            state["samples"] += 1
            if state["collect"]:
                sent = event.data.get("sent")
                if sent is not None:
                    delay = time.monotonic() - sent
                    delays.append(delay)
                    group_delays.setdefault(group_of.get(host, "?"), []).append(delay)

    def on_status(status) -> None:
        if status.state == RUNNING:
            running["n"] += 1
            running["last"] = time.monotonic()

    fleet.add_listener(on_event)
    fleet.add_status_listener(on_status)
    gc_log: list[tuple[float, int, float]] = []      # (start, generation, seconds) of every collection
    gc_began = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            gc_began[0] = now
        else:
            gc_log.append((time.monotonic(), info["generation"], now - gc_began[0]))
    gc.callbacks.append(on_gc)
    prof = cProfile.Profile() if args.profile else None
    t_start = time.monotonic()
    if prof is not None:
        prof.enable()
    cpu_start, farm_start = cpu_s(), sum(proc_cpu_s(p) for p in farm_pids)
    run_task = asyncio.create_task(fleet.run())
    # wait until every host is running or has ended
    while True:
        await asyncio.sleep(0.1)
        counts = fleet.counts()
        pending = sum(counts.get(k, 0) for k in ("pending", "queued", "connecting"))
        if pending == 0 or run_task.done():
            break
        if not args.quiet and int((time.monotonic() - t_start) * 10) % 20 == 0:
            print(f"  [{time.monotonic() - t_start:4.1f}s] {counts}", file=sys.stderr)
    if prof is not None:
        prof.disable()
        prof.dump_stats(str(Path(args.profile) / "app-connect.prof"))
    t_all = (running["last"] or time.monotonic()) - t_start
    t_prepared = (fleet.prepared_at - t_start) if fleet.prepared_at is not None else None
    groups: dict[str, list[float]] = {}
    for st in fleet.statuses.values():
        if st.running_since is not None:
            groups.setdefault(st.name.split("-")[0], []).append(st.running_since - fleet.started_at)
    connect_groups = {g: (len(v), percentile(v, 0.5), max(v)) for g, v in groups.items()}
    rss_connected = rss_mb()
    connect_cpu = cpu_s() - cpu_start
    farm_connect_cpu = sum(proc_cpu_s(p) for p in farm_pids) - farm_start
    counts_connected = fleet.counts()
    await asyncio.sleep(args.settle)
    rss_settled = rss_mb()
    # what of that is the archived stream (Session.raw_lines, kept for the result store)
    archive_mb = sum(sys.getsizeof(text) + 8 for session in list(fleet.sessions.values())
                     for text in session.raw_lines) / 2**20
    lines_kept = sum(len(session.raw_lines) for session in list(fleet.sessions.values()))
    # steady window
    state["collect"] = True
    c0, w0, s0, l0 = cpu_s(), time.monotonic(), state["samples"], state["lines"]
    m0 = machine_busy()
    f0 = sum(proc_cpu_s(p) for p in farm_pids)
    la0 = os.getloadavg()
    steady_prof = cProfile.Profile() if args.profile else None
    if steady_prof is not None:
        steady_prof.enable()
    await asyncio.sleep(args.window)
    if steady_prof is not None:
        steady_prof.disable()
        steady_prof.dump_stats(str(Path(args.profile) / "app-steady.prof"))
    c1, w1, s1, l1 = cpu_s(), time.monotonic(), state["samples"], state["lines"]
    m1 = machine_busy()
    f1 = sum(proc_cpu_s(p) for p in farm_pids)
    la1 = os.getloadavg()
    state["collect"] = False
    gc.callbacks.remove(on_gc)
    rss_window = rss_mb()
    # Stop every host the way the product does (SIGINT to the remote engine via a kill channel).
    t_cancel = time.monotonic()
    await fleet.cancel()
    result = await run_task
    cancel_s = time.monotonic() - t_cancel
    t_end = time.monotonic() - t_start
    streamed = sum(1 for st in result.statuses.values() if st.hello is not None and st.samples > 0)
    ncpu = os.cpu_count() or 1
    wall = w1 - w0
    cpu = c1 - c0
    samples = s1 - s0
    lines = l1 - l0
    return {
        "hosts": n, "connect_all_s": t_all, "prepared_all_s": t_prepared, "cancel_s": cancel_s, "streamed": streamed,
        "connect_cpu_ms_per_host": 1000 * connect_cpu / n, "farm_connect_cpu_ms_per_host": 1000 * farm_connect_cpu / n, "connect_groups": connect_groups, "running_at_connect": counts_connected.get(RUNNING, 0),
        "counts_connected": counts_connected, "final_counts": result.counts(), "total_s": t_end,
        "failures": {k: f"{v.state}: {v.message}" for k, v in result.statuses.items()
                     if v.state not in (COMPLETED, CANCELLED) or not v.samples},
        "rss_base_mb": rss_base, "rss_connected_mb": rss_connected, "rss_settled_mb": rss_settled,
        "rss_window_mb": rss_window, "archive_mb": archive_mb, "lines_kept": lines_kept,
        "wall_s": wall, "cpu_s": cpu, "cpu_pct": 100 * cpu / wall, "samples": samples, "lines": lines,
        "samples_per_s": samples / wall, "lines_per_s": lines / wall,
        "cpu_us_per_sample": 1e6 * cpu / max(1, samples), "cpu_us_per_line": 1e6 * cpu / max(1, lines),
        "delay_p50_ms": 1000 * percentile(delays, 0.5), "delay_p99_ms": 1000 * percentile(delays, 0.99),
        "delays": len(delays),
        "group_delays": {g: (len(v), 1000 * percentile(v, 0.5), 1000 * percentile(v, 0.99))
                         for g, v in sorted(group_delays.items())},
        "machine_busy_pct_of_all": 100 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]), "ncpu": ncpu,
        "farm_cpu_pct": 100 * (f1 - f0) / wall, "loadavg": (la0[0], la1[0]),
        "gc_window": gc_summary([(g, d) for t, g, d in gc_log if w0 <= t <= w1]),
        "gc_connect": gc_summary([(g, d) for t, g, d in gc_log if t < w0]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=2000, help="simulated hosts (default 2000)")
    ap.add_argument("--rate", type=float, default=2.0, help="samples per second per host (default 2)")
    ap.add_argument("--stretch", action="store_true", help="4,000 hosts at 1 sample/s")
    ap.add_argument("--sshd-hosts", type=int, default=20, help="hosts through a real OpenSSH sshd (default 20)")
    ap.add_argument("--workers", type=int, default=2, help="farm server processes (default 2)")
    ap.add_argument("--telemetry-every", type=int, default=10,
                    help="a telemetry line every N samples on synthetic streams (default 10)")
    ap.add_argument("--window", type=float, default=15.0, help="steady measuring window, s (default 15)")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after all connected before measuring")
    ap.add_argument("--max-connects", type=int, default=64,
                    help="SSH handshakes in flight (FleetRun max_connects; default 64)")
    ap.add_argument("--keepalive", type=float, default=60.0,
                    help="SSH keepalive interval of the fleet's connections, s (default 60; 0: none)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-host inactivity timeout")
    ap.add_argument("--no-record", action="store_true", help="synthetic lines, not a recording of the engine")
    ap.add_argument("--cold", action="store_true", help="hosts start without the engine cached (upload storm)")
    ap.add_argument("--ciphers", help="an ssh config `Ciphers` line for every host, e.g. "
                                      "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com (what a user "
                                      "would put in ~/.ssh/config); default: the launcher's own choice")
    ap.add_argument("--pin", choices=("auto", "on", "off"), default="auto",
                    help="keep the farm's workers off the app's core: app on the first allowed CPU, "
                         "workers on the others, sshd and its sessions niced on any (auto: when there are 2+)")
    ap.add_argument("--profile", metavar="DIR",
                    help="cProfile the app until every host runs (DIR/app-connect.prof), over the steady "
                         "window (DIR/app-steady.prof) and each farm "
                         "worker for its life (DIR/farm-N.prof)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.stretch:
        args.hosts, args.rate = 4000, 1.0
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if args.pin == "on" and len(allowed) < 2:
        print(f"fleet_scale: --pin on needs 2 or more CPUs (this process may use {len(allowed) or 'unknown'})",
              file=sys.stderr)
        return 2
    pin = args.pin == "on" or (args.pin == "auto" and len(allowed) >= 2)
    app_cpus, farm_cpus = ({allowed[0]}, set(allowed[1:])) if pin else (set(allowed), set(allowed))
    args.cores = (f"app on CPU {_cpus(app_cpus)}, farm workers on CPU {_cpus(farm_cpus)}; sshd and its "
                  f"sessions (nice {SSHD_NICE}, session autogroups {SSHD_SESSION_NICE}) on any CPU; other "
                  f"processes of the machine are not pinned"
                  if pin else "not pinned: app and farm share every CPU")
    if pin:
        os.sched_setaffinity(0, app_cpus)

    soft, hard = raise_nofile_limit()
    total_hosts = args.hosts + args.sshd_hosts
    try:
        check_descriptor_budget(total_hosts)
    except FleetError as exc:
        print(f"fleet_scale: {exc}", file=sys.stderr)
        return 2
    if args.profile:
        try:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"fleet_scale: --profile {args.profile}: {exc.strerror}", file=sys.stderr)
            return 2
        os.environ["GPUBENCH_SIM_PROFILE"] = str(Path(args.profile).resolve())
    folder = Path(tempfile.mkdtemp(prefix="fleet-scale-"))
    recording = None if args.no_record else record_engine(folder)
    print(f"open-files limit {soft} (hard {hard}); event loop {aio.loop_name()}; stream: "
          f"{'recorded from the real engine (numpy-cpu)' if recording else 'synthetic protocol v1'}")
    profiles = [HostProfile(f"sim-{i:05d}") for i in range(args.hosts)]
    farm = Farm(folder, profiles, workers=args.workers, rate=args.rate, telemetry_every=args.telemetry_every,
                recording=str(recording) if recording else None, preseed=not args.cold)
    sshd = None
    t = time.monotonic()
    farm.start(timeout_s=300)
    if pin:
        for pid in farm.pids():
            os.sched_setaffinity(pid, farm_cpus)
    print(f"farm: {args.hosts} hosts on {len(farm.procs)} worker processes, listening in {time.monotonic() - t:.1f} s")
    try:
        hosts = farm.host_configs()
        if args.sshd_hosts:
            sshd = OpenSshServer.start(folder / "sshd", client_key=farm.client_key, options=FLEET_SSHD_OPTIONS,
                                       own_session=False)
            if pin:     # its session processes inherit both
                # These hosts' remote side (sshd's sessions, the check, the supervisor, the
                # emulated engine: ~50 ms of CPU each at start) would run on the hosts in a
                # real fleet: here it runs at the lowest priority on any CPU, so it takes only
                # time that neither the app nor the farm wants (on the farm's core alone it
                # waited for the simulated hosts' servers, ~1 s at the end of connect-all).
                # sshd's sessions are sessions of their own: with sched autogroup only the
                # session's nice counts, which their "python" (emulator_python nice=) sets.
                os.sched_setaffinity(sshd.proc.pid, set(allowed))
                os.setpriority(os.PRIO_PROCESS, sshd.proc.pid, SSHD_NICE)
            remote_python = host_python(folder)
            hosts.update(sshd_host_configs(
                sshd, [f"sshd-{i:02d}" for i in range(args.sshd_hosts)], folder, python=remote_python,
                rate=args.rate, telemetry_every=args.telemetry_every,
                nice=SSHD_SESSION_NICE if pin else None))
            print(f"sshd: OpenSSH on 127.0.0.1:{sshd.port} for {args.sshd_hosts} hosts; their python: {remote_python}")
        duration = 3600        # hosts stream until the benchmark stops them (fleet.cancel())
        engine_args = ("--workloads", "roundtrip", "--duration", f"{duration:.0f}", "--repeats", "1")
        rss_base = rss_mb()
        ssh_config: list[str] = []
        if args.ciphers:
            cfg = folder / "ssh_config"
            cfg.write_text(f"Ciphers {args.ciphers}\n")
            ssh_config = [str(cfg)]
            print(f"ssh config for every host: Ciphers {args.ciphers}")
        targets = [FleetTarget.for_host(h, SshLauncher(h, ssh_config=ssh_config))
                   for h in interleaved(hosts, args.sshd_hosts)]

        async def go():
            try:
                return await measure(args, targets, engine_args, farm.pids(), rss_base)
            finally:
                await close_launchers((t.launcher for t in targets), timeout_s=10)

        r = aio.run(go())            # the event loop `gpubench fleet` runs on
    finally:
        farm.stop()
        if sshd is not None:
            sshd.stop()
    report(args, r)
    budget_us = 1e6 * (CPU_TARGET_PCT / 100) / (total_hosts * args.rate)
    ended_ok = sum(r["final_counts"].get(k, 0) for k in (COMPLETED, CANCELLED))
    ok = r["cpu_us_per_sample"] <= budget_us and r["streamed"] == total_hosts and ended_ok == total_hosts
    print(f"\nGATE (CPU per sample <= {budget_us:.0f} us, i.e. <= {CPU_TARGET_PCT:.0f}% of one core at "
          f"{total_hosts} hosts x {args.rate:g}/s; every host streamed and was stopped cleanly): "
          f"{'PASS' if ok else 'FAIL'}")
    if ok:     # keys, recording, sshd config, worker logs: kept only to look into a failure
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"(keys, sshd config and worker logs kept in {folder})")
    return 0 if ok else 1


def report(args, r: dict) -> None:
    n = r["hosts"]
    growth = r["rss_settled_mb"] - r["rss_base_mb"]
    nominal = n * args.rate
    extrapolated = r["cpu_us_per_sample"] * nominal / 1e4
    rows = [
        ("hosts (simulated + sshd)", f"{n} ({args.hosts} + {args.sshd_hosts})", ""),
        ("time to connect all", f"{r['connect_all_s']:.1f} s", _ok(r["connect_all_s"] <= CONNECT_TARGET_S, f"<= {CONNECT_TARGET_S:g} s")),
        ("  all connected and prepared by", "-" if r["prepared_all_s"] is None else
         f"{r['prepared_all_s']:.1f} s (SSH handshakes; then each host checks and starts its engine in one command)", ""),
        *((f"  {g} hosts running by", f"p50 {p50:.1f} s, last {last:.1f} s ({k} hosts)", "")
          for g, (k, p50, last) in sorted(r["connect_groups"].items())),
        ("CPU per host start (app / farm)", f"{r['connect_cpu_ms_per_host']:.1f} ms / "
                                           f"{r['farm_connect_cpu_ms_per_host']:.1f} ms", ""),
        ("running at that point", f"{r['running_at_connect']} / {n}", ""),
        ("app CPU, steady window", f"{r['cpu_pct']:.1f} % of one core over {r['wall_s']:.1f} s",
         _ok(r["cpu_pct"] <= CPU_TARGET_PCT, f"<= {CPU_TARGET_PCT:g} %")),
        ("samples / lines received", f"{r['samples_per_s']:.0f}/s / {r['lines_per_s']:.0f}/s (nominal samples {nominal:.0f}/s)", ""),
        ("CPU per sample / per line", f"{r['cpu_us_per_sample']:.0f} us / {r['cpu_us_per_line']:.0f} us", ""),
        ("app CPU at nominal rate", f"{extrapolated:.1f} % of one core", _ok(extrapolated <= CPU_TARGET_PCT, f"<= {CPU_TARGET_PCT:g} %")),
        ("RSS growth, all connected", f"{r['rss_connected_mb'] - r['rss_base_mb']:.1f} MB", ""),
        ("RSS growth, connected + settled", f"{growth:.1f} MB total, {1024 * growth / n:.0f} KB per host",
         _ok(growth <= RSS_TARGET_MB, f"<= {RSS_TARGET_MB:g} MB")),
        ("  of which archived stream", f"{r['archive_mb']:.1f} MB ({r['lines_kept']} lines kept for the store); "
                                       f"the rest {growth - r['archive_mb']:.1f} MB = "
                                       f"{1024 * (growth - r['archive_mb']) / n:.0f} KB per host", ""),
        ("RSS after the window", f"+{r['rss_window_mb'] - r['rss_settled_mb']:.1f} MB more (archived stream lines)", ""),
        ("delivery delay p50 / p99", f"{r['delay_p50_ms']:.2f} / {r['delay_p99_ms']:.2f} ms ({r['delays']} samples)",
         _ok(r["delay_p99_ms"] <= P99_TARGET_MS, f"p99 <= {P99_TARGET_MS:g} ms on a quiet machine")),
        *((f"  {g} hosts' samples", f"p50 {p50:.2f} / p99 {p99:.2f} ms ({k} samples)", "")
          for g, (k, p50, p99) in r["group_delays"].items()),
        ("collections in the window", "; ".join(f"gen {g}: {k} ({total:.1f} ms, longest {longest:.1f} ms)"
                                                 for g, (k, total, longest) in r["gc_window"].items()), ""),
        ("collections before it", "; ".join(f"gen {g}: {k} ({total:.0f} ms, longest {longest:.1f} ms)"
                                            for g, (k, total, longest) in r["gc_connect"].items()), ""),
        ("machine load, same window", f"{r['machine_busy_pct_of_all'] * r['ncpu']:.0f} % of one core busy in total "
                                      f"({r['ncpu']} cores); farm servers {r['farm_cpu_pct']:.0f} %; "
                                      f"others {max(0.0, r['machine_busy_pct_of_all'] * r['ncpu'] - r['cpu_pct'] - r['farm_cpu_pct']):.0f} %; "
                                      f"loadavg {r['loadavg'][0]:.2f} -> {r['loadavg'][1]:.2f}", ""),
        ("cores", args.cores, ""),
        ("hosts that streamed", f"{r['streamed']} / {n}", ""),
        ("stop all (fleet.cancel)", f"{r['cancel_s']:.1f} s", ""),
        ("outcomes", ", ".join(f"{v} {k}" for k, v in sorted(r["final_counts"].items())) + f" in {r['total_s']:.0f} s", ""),
    ]
    w = max(len(a) for a, _, _ in rows)
    print()
    for a, b, c in rows:
        print(f"{a.ljust(w)}  {b}" + (f"   [{c}]" if c else ""))
    if r["failures"]:
        print("\nhosts that did not complete (first 5):")
        for k, v in list(r["failures"].items())[:5]:
            print(f"  {k}: {v}")


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def _ok(good: bool, target: str) -> str:
    return f"{'ok' if good else 'MISSED'} {target}"


if __name__ == "__main__":
    sys.exit(main())
