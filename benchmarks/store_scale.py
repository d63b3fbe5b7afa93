"""Store scale: `list` and a 10-candidate `compare` with 1,000 stored runs.

    .venv/bin/python benchmarks/store_scale.py [--runs 1000] [--dir DIR] [--keep]

Generates realistic documents (the default plan: roundtrip, launch sync/async, h2d and
d2h at 4 KiB / 1 MiB / 256 MiB pinned and pageable = 15 variants; 10 sessions x 3
repeats = 450 trials each, telemetry, CV ~4 % noise), saves them through the store
(atomic writes, index), then times:

  read-all      json-loading every document file (what a store without an index does)
  list cold     Store.list_runs() with the index removed (parses everything, rebuilds it)
  list warm     Store.list_runs() from the index
  compare x10   `gpubench compare BASE C1..C10 --format json` in process, bootstrap cache cold
  CLI list / CLI compare   the same through the console script: interpreter start included

and prints each time with its ratio to read-all. Target: list and compare
each under 1 s on a 2-core machine.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results import inference  # noqa: E402
from results.document import SessionRecord, build_document  # noqa: E402
from results.store import Store  # noqa: E402

VARIANTS = [("roundtrip", "pinned-64KiB", 18600.0, 51.0, 9.2, 65536, "pinned"),
            ("launch", "sync", 77400.0, 11.6, None, 0, None),
            ("launch", "async", 182000.0, 5.5, None, 0, None)]
for _kind in ("h2d", "d2h"):
    for _mem, _bw in (("pinned", 54.0), ("pageable", 10.0)):
        for _size, _name in ((4096, "4KiB"), (1 << 20, "1MiB"), (256 << 20, "256MiB")):
            _eff = _bw * min(1.0, _size / (8 << 20)) ** 0.3
            VARIANTS.append((_kind, f"{_mem}-{_name}", _eff * 1e9 / _size, 1e6 * _size / (_eff * 1e9),
                             _eff, _size, _mem))


def _line(kind, t, **fields):
    return {"v": 1, "type": kind, "t": round(t, 4), "backend": "cupy", **fields}


def session(rng, scale, host, driver):
    lines = [_line("hello", 0.0, engine_version="0.1.0",
                   device={"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1", "index": 0,
                           "driver": driver, "cuda_driver": 13000, "cuda_runtime": 13000,
                           "compute_capability": "9.0", "memory_total_mib": 81559,
                           "pcie": {"gen_current": 5, "gen_max": 5, "width_current": 16,
                                    "width_max": 16}, "mig_mode": 0, "power_limit_w": 700.0,
                           "clocks_max": {"sm_mhz": 1980, "mem_mhz": 2619},
                           "virtualization_mode": 1},
                   host={"hostname": host, "os": "Linux", "kernel": "6.1", "python": "3.12.3",
                         "numpy": "2.5.0", "cupy": "14.2.0", "nvml": "13.580", "pid": 1,
                         "cpu_model": "Xeon", "hypervisor": {"detected": True,
                                                             "evidence": ["cpuinfo"],
                                                             "vendor": None},
                         "preload": {"ld_preload": [], "mapped": []}, "env": {}},
                   plan={"workloads": ["roundtrip", "launch", "h2d", "d2h"], "repeats": 3})]
    t = 0.3
    for wl, variant, ops, lat, gbps, size, mem in VARIANTS:
        for rep in range(3):
            f = scale * float(np.exp(rng.normal(0, 0.04)))
            lines.append(_line("telemetry", t, readings={
                "gpu_util_pct": 97, "sm_clock_mhz": 1980, "power_w": 300 + 20 * f,
                "temperature_c": 55, "memory_used_mib": 2200, "pcie_tx_kbps": 1.2e6,
                "throttle_reasons": 0, "throttle_names": []}))
            t += 1.0
            m = lat / f
            lines.append(_line("result", t, workload=wl, variant=variant, repeat=rep,
                               ops=int(ops * f), duration_s=1.0, ops_per_s=ops * f,
                               latency_us={"mean": m, "p50": m * 0.97, "p90": m * 1.3,
                                           "p99": m * 2.8, "p999": m * 4, "min": m * 0.7,
                                           "max": m * 9, "stdev": m * 0.3, "cv": 0.3},
                               valid=True, validity_reasons=[], interrupted=False,
                               params={"size_bytes": size, "memory": mem},
                               **({"gbps": gbps * f} if gbps else {})))
    lines.append(_line("done", t, status="ok", exit_code=0, counts={}))
    return lines


SCENARIOS = [("bare-metal", None), ("k8s-pod", 1.0), ("bare-metal-proxy", 5.0),
             ("k8s-proxy", 5.0), ("k8s-hypervisor", 10.0)]


def populate(store: Store, runs: int) -> list[str]:
    ids = []
    for i in range(runs):
        rng = np.random.default_rng(i)
        name, target = SCENARIOS[i % len(SCENARIOS)]
        scale = 1.0 - 0.01 * (i % len(SCENARIOS))
        recs = [SessionRecord(session(rng, scale, f"gpu-node-{i % 7}", "580.159.04"), trial=k)
                for k in range(10)]
        doc = build_document(recs, {"name": name, "title": name, "launcher": "local",
                                    "target_pct": target, "baseline": "bare-metal"},
                             label=f"batch-{i // 100}", created=f"2026-11-{1 + i % 28:02d}T"
                             f"{i % 24:02d}:{i % 60:02d}:00Z",
                             run_id=f"2026110{i % 9}-000000-{name}-{i:06x}")
        store.save(doc)
        ids.append(doc["id"])
    return ids


def timed(fn, repeat=3):
    """Median wall seconds and median CPU seconds (this process plus children: on a
    shared 2-core machine wall time includes waiting for a core, CPU time does not)."""
    walls, cpus = [], []
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
                    + (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime))
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--dir", help="data directory to (re)use; default a temp dir")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    data = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="gpubench-scale-"))
    store = Store(data)
    existing = len(list(data.glob("*.json"))) - (1 if (data / "index.json").exists() else 0) \
        if data.exists() else 0
    t0 = time.perf_counter()
    if existing < args.runs:
        populate(store, args.runs)
    gen_s = time.perf_counter() - t0
    files = sorted(p for p in data.glob("*.json") if p.name != "index.json")
    total_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"{len(files)} documents, {total_mb:.0f} MB, in {data} (generated in {gen_s:.1f} s)")

    def read_all():
        for p in files:
            json.loads(p.read_bytes())

    read_s = timed(read_all)
    n_listed = len(store.list_runs().runs)

    def cold_list():
        (data / "index.json").unlink(missing_ok=True)
        store.list_runs()

    cold_s = timed(cold_list, repeat=1)
    warm_s = timed(lambda: store.list_runs(), repeat=5)

    listing = store.list_runs().runs
    base = next(r["id"] for r in listing if r["scenario"] == "bare-metal")
    cands = [r["id"] for r in listing if r["scenario"] != "bare-metal"][:10]
    from gpubench import cli

    def compare():
        inference._cached_indices.cache_clear()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(["--data-dir", str(data), "compare", base, *cands, "--format",
                             "json"])
        assert code in (0, 1), code

    cmp_s = timed(compare)
    script = Path(sys.executable).parent / "gpubench"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gpubench.cli"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cli_run(*argv):
        out = subprocess.run([*cmd, "--data-dir", str(data), *argv], capture_output=True,
                             env=env, cwd=ROOT)
        assert out.returncode in (0, 1), out.stderr.decode()

    cli_list_s = timed(lambda: cli_run("list"))
    cli_cmp_s = timed(lambda: cli_run("compare", base, *cands, "--format", "json"))
    cli_nop_s = timed(lambda: cli_run("--version"))

    print(f"{'measurement':<36}{'wall s':>8}{'cpu s':>8}{'wall vs read-all':>18}")
    rows = [("read-all (json.loads every file)", read_s),
            (f"list, cold index ({n_listed} runs)", cold_s),
            ("list, warm index", warm_s),
            ("compare 1 base x 10 candidates", cmp_s),
            ("CLI `gpubench list`", cli_list_s),
            ("CLI `gpubench compare` x10", cli_cmp_s),
            ("CLI `gpubench --version` (startup)", cli_nop_s)]
    for name, (wall, cpu) in rows:
        print(f"{name:<36}{wall:>8.3f}{cpu:>8.3f}{wall / read_s[0]:>17.3f}x")
    load = os.getloadavg()[0]
    ok = all(t[0] < 1.0 for t in (warm_s, cmp_s, cli_list_s, cli_cmp_s))
    ok_cpu = all(t[1] < 1.0 for t in (warm_s, cmp_s, cli_list_s, cli_cmp_s))
    print(f"load average {load:.1f} on {os.cpu_count()} cores")
    print(f"target: list and 10-candidate compare each < 1 s: wall {'met' if ok else 'NOT met'}, "
          f"cpu {'met' if ok_cpu else 'NOT met'}")
    if not args.keep and not args.dir:
        shutil.rmtree(data, ignore_errors=True)
    return 0 if ok_cpu else 1


if __name__ == "__main__":
    sys.exit(main())
