"""Scale on Kubernetes: N engine pods (default 100), one per node,
created, streamed and cleaned up through the real `kubernetes` client.

The API server is an *emulator* (kmock 0.8, patched in tests/support/k8s_emulator.py) running
in a child process: it has no scheduler, kubelet or GPU device plugin, so each pod's
phases and log (a recorded engine stream) are scripted. What this measures is the app
side: gpubench's API calls, one shared watch, N log streams and cleanup.

    .venv/bin/python benchmarks/k8s_pods.py [--pods 100] [--interval 0.05]

Prints the wall time of each stage and per pod, the app process's CPU (% of one core,
the emulator's CPU is in the other process) and checks that nothing is left behind.
Exit status 0 when every pod completed with its full stream and nothing was left.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURE = ROOT / "tests" / "k8s" / "fixtures" / "engine_stream.jsonl"


def _serve(conn, lines: list[str], interval: float) -> None:
    """Child process: run the emulator until the parent closes the pipe."""
    from tests.support.k8s_emulator import EmulatorThread, PodScript
    with EmulatorThread() as emu:
        emu.kubelet.default = PodScript(lines=lines, line_interval_s=interval)
        conn.send(emu.url)
        try:
            conn.recv()
        except EOFError:
            pass


async def bench(url: str, pods: int, lines: list[str]) -> int:
    from scenarios.config import ClusterConfig, ScenarioConfig
    from scenarios.base import LaunchRequest
    from scenarios.events import Hello
    from scenarios.k8s.api import make_api
    from scenarios.k8s.launcher import K8sLauncher
    from scenarios.k8s.nodes import run_on_nodes
    from scenarios.k8s.spec import MANAGED_SELECTOR

    cluster = ClusterConfig(name="emulated", api_url=url, namespace="gpubench",
                            image="registry.example/gpubench-engine:1", pod_timeout_s=60)
    scenario = ScenarioConfig(name="k8s-pod", title="k8s pod", launcher="k8s", cluster="emulated")
    request = LaunchRequest(engine_args=("--backend", "numpy-cpu", "--workloads", "roundtrip"))
    nodes = [f"gpu-node-{i:03d}" for i in range(pods)]

    t_import = time.perf_counter()
    launcher = K8sLauncher(cluster, scenario, pool_size=pods * 2 + 8)
    await launcher.connect()                    # imports the client (seconds, once per process)
    t_import = time.perf_counter() - t_import

    peak_threads = 0
    stop_sampling = False

    async def sample_threads():
        nonlocal peak_threads
        while not stop_sampling:
            peak_threads = max(peak_threads, threading.active_count())
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample_threads())
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    sessions = await run_on_nodes(cluster, scenario, request, nodes, launcher=launcher,
                                  concurrency=32)
    t_created = time.perf_counter() - t0
    first_hello: list[float] = []

    ended_at: list[float] = []

    async def drain(s):
        async for ev in s.events():
            if isinstance(ev, Hello):
                first_hello.append(time.perf_counter() - t0)
        ended_at.append(time.perf_counter() - t0)
        return s.ended

    ends = await asyncio.gather(*(drain(s) for s in sessions))
    t_done = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stop_sampling = True
    await sampler

    api = await asyncio.to_thread(make_api, cluster)
    left = (await asyncio.to_thread(api.list_pods, "gpubench", MANAGED_SELECTOR)
            + await asyncio.to_thread(api.list_configmaps, "gpubench", MANAGED_SELECTOR))
    await launcher.close()

    completed = sum(e.outcome == "completed" for e in ends)
    full = sum(s.raw_lines == lines for s in sessions)
    lines_total = sum(len(s.raw_lines) for s in sessions)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"k8s pods on the emulated API ({pods} pods, {len(lines)} engine lines each, "
          f"{os.cpu_count()} CPUs)")
    print(f"  client import + connect        {t_import:7.2f} s (once per process)")
    print(f"  create {pods} pods (+ConfigMap)   {t_created:7.2f} s  ({t_created / pods * 1000:.1f} ms per pod)")
    if first_hello:
        print(f"  first / last hello received    {min(first_hello):7.2f} / {max(first_hello):.2f} s")
    ended_at.sort()
    print(f"  sessions ended (first/median/last) {ended_at[0]:.2f} / {ended_at[len(ended_at) // 2]:.2f} / {ended_at[-1]:.2f} s")
    print(f"  all streamed, ended, deleted   {t_done:7.2f} s  ({t_done / pods * 1000:.1f} ms per pod)")
    print(f"  app CPU                        {cpu:7.2f} s  ({cpu / t_done * 100:.0f} % of one core, "
          f"{cpu / pods * 1000:.1f} ms per pod, {cpu / max(lines_total, 1) * 1e6:.0f} µs per line)")
    print(f"  peak threads {peak_threads}, max RSS {rss_mib:.0f} MiB")
    print(f"  completed {completed}/{pods}, full streams {full}/{pods}, lines {lines_total}, "
          f"left behind {len(left)}")
    ok = completed == pods and full == pods and not left
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.05,
                        help="seconds between a pod's log lines (default 0.05)")
    args = parser.parse_args()
    from tests.support.k8s_emulator import engine_stream_lines
    lines = engine_stream_lines(FIXTURE)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, lines, args.interval), daemon=True)
    proc.start()
    try:
        url = parent.recv()
        return asyncio.run(bench(url, args.pods, lines))
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
        child_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"  emulator process CPU {child_cpu.ru_utime + child_cpu.ru_stime:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
