"""The interposer, proven against a fake libcuda: every door (dlsym, cuGetProcAddress v1/v2,
PLT), counts, delays, the memory cap and the launch rate cap, each switched on and off."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from gpubench import interposer


def test_builds_once_and_caches_by_source_hash(interposer_lib, monkeypatch):
    assert interposer_lib.is_file() and interposer_lib.name.startswith("libgpubench-interpose-")
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(interposer_lib.parent))
    mtime = interposer_lib.stat().st_mtime_ns
    assert interposer.library_path() == interposer_lib          # cached: not rebuilt
    assert interposer_lib.stat().st_mtime_ns == mtime
    assert interposer.source_hash("cc") in interposer_lib.name
    nm = subprocess.run(["nm", "-D", "--defined-only", str(interposer_lib)],
                        capture_output=True, text=True)
    if nm.returncode == 0:
        for sym in ("dlsym", "cuGetProcAddress", "cuGetProcAddress_v2", "cuLaunchKernel",
                    "cuLaunchKernelEx", "cuMemAlloc_v2", "gpubench_interpose_write_report"):
            assert f" {sym}\n" in nm.stdout


def test_source_hash_covers_the_included_parts(tmp_path, monkeypatch):
    """interpose.c #includes its parts: each is included, and editing one changes the cache key."""
    parts = sorted(interposer.SOURCE.parent.glob(interposer.PARTS_GLOB))
    text = interposer.SOURCE.read_text()
    assert parts and all(f'#include "{p.name}"' in text for p in parts)
    copy = tmp_path / "interposer"
    shutil.copytree(interposer.SOURCE.parent, copy,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(interposer, "SOURCE", copy / "interpose.c")
    before = interposer.source_hash("cc")
    (copy / parts[0].name).write_text(parts[0].read_text() + "/* edited */\n")
    assert interposer.source_hash("cc") != before


def test_no_compiler_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(interposer.InterposerBuildError) as err:
        interposer.library_path()
    msg = str(err.value)
    assert "\n" not in msg and "no C compiler" in msg and "CC" in msg


def test_dlsym_hands_back_a_counting_wrapper(harness, tmp_path):
    report = tmp_path / "r.json"
    out = harness.run("dlsym-launch", 1000, report=report)
    assert out["wrapped"] is True and out["fake_launch"] == 1000 and out["rc"] == 0
    rep = interposer.read_report(report)
    assert rep["counts"]["cuLaunchKernel"] == 1000
    assert [s["via"] for s in rep["slots"] if s["kind"] == "cuLaunchKernel"] == ["dlsym"]
    assert rep["resolved"]["dlsym"]["cuLaunchKernel"] == 1


def test_without_preload_nothing_is_wrapped(harness):
    out = harness.run("dlsym-launch", 100, preload=False)
    assert out["wrapped"] is False and out["fake_launch"] == 100


def test_delay_is_added_per_call_and_off_when_unset(harness, tmp_path):
    n, delay = 2000, 20_000
    off = harness.run("dlsym-launch", n)
    on = harness.run("dlsym-launch", n, report=tmp_path / "r.json",
                     GPUBENCH_INTERPOSE_DELAY_NS=delay)
    assert off["min_ns"] < delay <= on["min_ns"]   # every delayed call waited; an undelayed one need not
    rep = interposer.read_report(tmp_path / "r.json")
    spent = rep["delay_ns_total"]["cuLaunchKernel"]
    assert spent >= n * delay                      # measured busy-wait (preemption counts, no upper bound)
    assert rep["categories"]["launch"] == {"calls": n, "delayed_calls": n, "delay_ns_total": spent,
                                           "off_waited_calls": 0, "off_wait_ns_total": 0}


def test_cuLaunchKernelEx_is_caught_too(harness, tmp_path):
    out = harness.run("dlsym-launchex", 500, report=tmp_path / "r.json",
                      GPUBENCH_INTERPOSE_LAUNCH_DELAY_NS=10_000)
    assert out["wrapped"] is True and out["fake_launch_ex"] == 500
    assert out["median_ns"] >= 10_000
    assert interposer.read_report(tmp_path / "r.json")["counts"]["cuLaunchKernelEx"] == 500


@pytest.mark.parametrize("mode,gpa_name", [("gpa2", "cuGetProcAddress_v2"),
                                           ("gpa1", "cuGetProcAddress")])
def test_cuGetProcAddress_lookups_are_wrapped(harness, tmp_path, mode, gpa_name):
    """The runtime's path: the lookup itself, what it returns, and the lookup of itself."""
    out = harness.run(mode, 300, report=tmp_path / "r.json",
                      GPUBENCH_INTERPOSE_LAUNCH_DELAY_NS=5_000)
    assert out["wrapped"] and out["wrapped_again"] and out["same"]
    assert out["status"] == 0                       # v2's 5th argument written through
    assert out["fake_launch"] == 300 and out["fake_htod"] == 300 and out["alloc_rc"] == 0
    rep = interposer.read_report(tmp_path / "r.json")
    assert rep["counts"]["cuLaunchKernel"] == 300
    assert rep["counts"]["cuMemcpyHtoD_v2"] == 300
    assert rep["counts"]["cuMemAlloc_v2"] == 1
    assert rep["counts"][gpa_name] == 5            # 4 lookups + 1 through the looked-up lookup
    # the category delay hit launches only
    assert rep["categories"]["launch"]["delay_ns_total"] >= 300 * 5_000
    assert rep["categories"]["h2d"]["delay_ns_total"] == 0
    assert rep["resolved"]["cuGetProcAddress"]["cuMemcpyHtoD"] == 1


def test_plain_symbols_interpose_for_linked_programs(harness, tmp_path):
    out = harness.run("plt", 400, report=tmp_path / "r.json", GPUBENCH_INTERPOSE_DELAY_NS=10_000)
    assert out["fake_launch"] == 400 and out["median_ns"] >= 10_000
    rep = interposer.read_report(tmp_path / "r.json")
    assert rep["counts"]["cuLaunchKernel"] == 400
    assert [s["via"] for s in rep["slots"] if s["kind"] == "cuLaunchKernel"] == ["plt"]


def test_rtld_next_keeps_the_callers_view(harness, tmp_path):
    """dlsym(RTLD_NEXT) from another library must resolve after *that* library."""
    plain = harness.run("rtld-next", preload=False)
    under = harness.run("rtld-next", report=tmp_path / "r.json")
    assert plain["next_who"] == under["next_who"] == "other_lib"
    assert under["next_launch_wrapped"] is True and under["fake_launch"] == 1
    assert interposer.read_report(tmp_path / "r.json")["counts"]["cuLaunchKernel"] == 1


def test_memory_cap_refuses_beyond_the_limit(harness, tmp_path):
    mib = 1 << 20
    on = harness.run("alloc", mib, 100 * mib, report=tmp_path / "r.json",
                     GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES="10M")
    assert on["allocated"] == 10 * mib and on["refused_rc"] == interposer.CUDA_ERROR_OUT_OF_MEMORY
    assert on["fake_alloc"] == 11                   # the refused one never reached the driver
    assert on["rc_after_free"] == 0                 # frees give the room back
    assert on["meminfo_total"] == 10 * mib and on["meminfo_free"] == 0
    rep = interposer.read_report(tmp_path / "r.json")
    assert rep["mem"]["refused"] == 1 and rep["mem"]["peak"] == 10 * mib
    off = harness.run("alloc", mib, 100 * mib)
    assert off["allocated"] == 100 * mib and off["refused_rc"] == 0
    assert off["meminfo_total"] == 1 << 40


@pytest.mark.parametrize("mode", ["dlsym-launch", "dlsym-launchex"])
def test_launch_rate_cap_limits_both_entry_points(harness, tmp_path, mode):
    """Never above the cap (a lower bound on time: load can only slow it further), and without
    the cap nothing is throttled (the interposer's own count, not a wall time)."""
    n, rate = 300, 3000.0
    on = harness.run(mode, n, report=tmp_path / "r.json", GPUBENCH_INTERPOSE_LAUNCH_RATE=rate)
    assert n / (on["total_ns"] / 1e9) <= 1.05 * rate
    rep = interposer.read_report(tmp_path / "r.json")
    assert rep["rate"]["throttled"] > 0 and rep["rate"]["limit"] == rate
    assert rep["rate"]["wait_ns_total"] > 0
    harness.run(mode, n, report=tmp_path / "off.json")
    assert interposer.read_report(tmp_path / "off.json")["rate"] == {
        "limit": 0, "throttled": 0, "wait_ns_total": 0}


def test_launch_burst_lets_a_burst_through(harness, tmp_path):
    """50 at 10/s would wait 4.9 s unbursted; with a burst of 50 none of them waits."""
    out = harness.run("dlsym-launch", 50, report=tmp_path / "r.json",
                      GPUBENCH_INTERPOSE_LAUNCH_RATE=10, GPUBENCH_INTERPOSE_LAUNCH_BURST=50)
    assert out["fake_launch"] == 50
    rep = interposer.read_report(tmp_path / "r.json")
    assert rep["launch_burst"] == 50 and rep["rate"]["throttled"] == 0


def test_report_path_takes_the_pid_and_only_cuda_processes_write(harness, interposer_lib,
                                                                tmp_path):
    harness.run("dlsym-launch", 10, report=tmp_path / "r-%p.json")
    written = list(tmp_path.glob("r-*.json"))
    assert len(written) == 1 and written[0].stem[2:].isdigit()
    # a process that never touches CUDA (a shell, a python) writes nothing, runs normally
    env = dict(os.environ, LD_PRELOAD=str(interposer_lib),
               GPUBENCH_INTERPOSE_REPORT=str(tmp_path / "py-%p.json"))
    proc = subprocess.run([sys.executable, "-c", "import ctypes, json; print(json.dumps(1+1))"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "2"
    assert not list(tmp_path.glob("py-*.json"))


def test_env_helper_and_mapping_detection():
    env = interposer.interposer_env(launch_delay_ns=1234.4, mem_limit_bytes=10, launch_rate=2.5,
                                    report="/tmp/x-%p.json")
    assert env == {"GPUBENCH_INTERPOSE_LAUNCH_DELAY_NS": "1234",
                   "GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES": "10",
                   "GPUBENCH_INTERPOSE_LAUNCH_RATE": "2.5",
                   "GPUBENCH_INTERPOSE_REPORT": "/tmp/x-%p.json"}
    assert interposer.is_mapped(["/x/libgpubench-interpose-0123.so"])
    assert not interposer.is_mapped(["/usr/lib/libvgpu.so"]) and not interposer.is_mapped(None)


def test_delay_accuracy_small_delays(harness, tmp_path):
    """The self-test injects sub-microsecond delays: no call is shorter than the delay, the
    spent total never undercounts, and the median call is not made many delays longer (what a
    loaded machine adds is unbounded, so only a gross error is caught here: the self-test
    checks the accuracy)."""
    base = harness.run("dlsym-launch", 5000)["median_ns"]
    for delay in (300, 1000):
        out = harness.run("dlsym-launch", 5000, report=tmp_path / f"r{delay}.json",
                          GPUBENCH_INTERPOSE_DELAY_NS=delay)
        assert out["min_ns"] >= delay
        assert out["median_ns"] - base < 10 * delay + 50_000
        rep = interposer.read_report(tmp_path / f"r{delay}.json")
        assert rep["delay_ns_total"]["cuLaunchKernel"] >= 5000 * delay


def test_sync_delay_comes_after_the_synchronise(harness, tmp_path):
    """GPUBENCH_INTERPOSE_SYNC_DELAY_NS: every cuStreamSynchronize returns D later; the
    general delay does not touch synchronises."""
    out = harness.run("sync", 300, report=tmp_path / "r.json",
                      GPUBENCH_INTERPOSE_SYNC_DELAY_NS=20_000)
    lat = sorted(c[1] for c in out["calls"])
    assert lat[0] >= 20_000 and lat[len(lat) // 2] < 35_000
    rep = interposer.read_report(tmp_path / "r.json")
    assert rep["counts"]["cuStreamSynchronize"] == 300
    assert rep["categories"]["sync"]["delayed_calls"] == 300
    general = harness.run("sync", 300, GPUBENCH_INTERPOSE_DELAY_NS=20_000)
    assert sorted(c[1] for c in general["calls"])[150] < 10_000


def test_slot_schedule_toggles_the_delay_as_python_predicts(harness, tmp_path):
    """The self-test's slots design: the delay is on exactly in the slots that
    engine/cpu_delay.py's slot_on() names, so samples can be sorted into on and off."""
    from engine.cpu_delay import slot_on
    slot_ns, seed, delay = 2_000_000, 12345, 20_000
    out = harness.run("sync", 4000, 10_000, report=tmp_path / "r.json",
                      GPUBENCH_INTERPOSE_SYNC_DELAY_NS=delay,
                      GPUBENCH_INTERPOSE_DELAY_SLOT_NS=slot_ns,
                      GPUBENCH_INTERPOSE_DELAY_SEED=seed)
    on_calls = off_calls = 0
    straddling = 0
    for start, lat in out["calls"]:
        k = start // slot_ns
        if (start + lat) // slot_ns != k:
            straddling += 1                             # decided in either slot
        elif slot_on(k, seed):
            assert lat >= delay                         # an on-slot call always waits
            on_calls += 1
        else:
            off_calls += 1                              # no upper bound: a busy machine preempts
    assert on_calls > 100 and off_calls > 100           # both states really occurred
    rep = interposer.read_report(tmp_path / "r.json")
    assert rep["delay_slot_ns"] == slot_ns and rep["delay_seed"] == seed
    # the interposer's own decisions are Python's: it delayed every on-slot call and no
    # off-slot one (each call is decided at a time inside its own [start, start + latency])
    delayed = rep["categories"]["sync"]["delayed_calls"]
    assert on_calls <= delayed <= on_calls + straddling
    assert rep["categories"]["sync"]["calls"] == 4000


def test_a_base_wait_is_paid_on_and_off_and_reported_apart(harness, tmp_path):
    """GPUBENCH_INTERPOSE_BASE_WAIT_NS: with slots, every delayed call waits the base first,
    off-slot ones too, and the report keeps the two apart, so that the delay's cost is what
    on-calls spent beyond off-calls. Only lower bounds: a busy machine only adds time."""
    from engine.cpu_delay import slot_on
    slot_ns, seed, delay, base = 2_000_000, 777, 20_000, 30_000
    out = harness.run("sync", 3000, 10_000, report=tmp_path / "r.json",
                      GPUBENCH_INTERPOSE_SYNC_DELAY_NS=delay,
                      GPUBENCH_INTERPOSE_DELAY_SLOT_NS=slot_ns,
                      GPUBENCH_INTERPOSE_DELAY_SEED=seed,
                      GPUBENCH_INTERPOSE_BASE_WAIT_NS=base)
    on_calls = off_calls = 0
    for start, lat in out["calls"]:
        k = start // slot_ns
        if (start + lat) // slot_ns != k:
            continue
        if slot_on(k, seed):
            assert lat >= base + delay
            on_calls += 1
        else:
            assert lat >= base                          # the off-slot call waited too
            off_calls += 1
    assert on_calls > 50 and off_calls > 50
    rep = interposer.read_report(tmp_path / "r.json")
    sync = rep["categories"]["sync"]
    assert rep["base_wait_ns"] == base
    assert sync["delayed_calls"] + sync["off_waited_calls"] == sync["calls"] == 3000
    assert sync["delay_ns_total"] >= sync["delayed_calls"] * (base + delay)
    assert sync["off_wait_ns_total"] >= sync["off_waited_calls"] * base
    # without a slot schedule there is no off-slot call, and no base: the delay alone
    out = harness.run("sync", 200, report=tmp_path / "r2.json",
                      GPUBENCH_INTERPOSE_SYNC_DELAY_NS=delay,
                      GPUBENCH_INTERPOSE_BASE_WAIT_NS=base)
    rep = interposer.read_report(tmp_path / "r2.json")["categories"]["sync"]
    assert rep["delayed_calls"] == 200 and rep["off_waited_calls"] == 0


def test_unhook_leaves_an_entry_point_alone(harness, tmp_path):
    """GPUBENCH_INTERPOSE_UNHOOK mimics a proxy that misses cuLaunchKernelEx."""
    out = harness.run("dlsym-launchex", 200, report=tmp_path / "r.json",
                      GPUBENCH_INTERPOSE_UNHOOK="cuLaunchKernelEx",
                      GPUBENCH_INTERPOSE_LAUNCH_RATE=100)
    assert out["wrapped"] is False and out["fake_launch_ex"] == 200
    rep = interposer.read_report(tmp_path / "r.json")   # 200 at 100/s would wait 2 s
    assert rep["rate"]["throttled"] == 0 and not rep["counts"].get("cuLaunchKernelEx")
    hooked = harness.run("dlsym-launch", 50, GPUBENCH_INTERPOSE_UNHOOK="cuLaunchKernelEx",
                         GPUBENCH_INTERPOSE_LAUNCH_RATE=100)
    assert hooked["wrapped"] is True and hooked["total_ns"] > 0.4e9
