"""Engine parts without a subprocess: NVML wrapper, facts, timing, plan, validity, failures."""
from __future__ import annotations

import io
import json
import signal
import time

import numpy as np
import pytest

from engine import facts, lifecycle, plan as plan_mod, telemetry
from engine.backend import NumpyBackend
from engine.cpu_delay import CpuDelay
from engine.devices import format_uuid
from engine.plan import UsageError, Variant, build_variants, format_size, parse_args, parse_size
from engine.protocol import Emitter, parse_line
from engine.measure import Runner, StopFlag
from engine.timing import LatencyRecorder, latency_stats
from engine.workloads import launch

DESIGN_READINGS = {"gpu_util_pct", "mem_util_pct", "sm_clock_mhz", "mem_clock_mhz", "power_w",
                   "power_limit_w", "temperature_c", "memory_used_mib", "memory_total_mib",
                   "pcie_tx_kbps", "pcie_rx_kbps", "pcie_gen", "pcie_width", "pcie_gen_max",
                   "pcie_width_max", "throttle_reasons", "throttle_names", "mig_mode",
                   "ecc_volatile", "nvlink"}


# ---------------------------------------------------------------- NVML wrapper
class FakeNVMLError(Exception):
    pass


class FakeNVMLNotSupported(FakeNVMLError):
    pass


class FakePynvml:
    """Supports a few calls; everything else raises NotSupported or is missing."""
    NVMLError = FakeNVMLError

    def __init__(self, init_fails: bool = False, throttle: int = 0x1):
        self.init_fails = init_fails
        self.throttle = throttle
        self.calls: list[str] = []

    def nvmlInit(self):
        if self.init_fails:
            raise FakeNVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return b"580.0"

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return "handle"

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 41

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return {1: 1980, 2: 2619}[kind]

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self.throttle

    def nvmlDeviceGetPowerUsage(self, handle):
        self.calls.append("power")
        raise FakeNVMLNotSupported("Not Supported")

    def nvmlDeviceGetPcieThroughput(self, handle, counter):
        raise FakeNVMLError("Unknown Error")


def test_nvml_wrapper_returns_none_for_unsupported_and_logs_each_function_once():
    logged: list[str] = []
    nv = telemetry.NVML(module=FakePynvml(), log=logged.append)
    assert nv.available
    assert nv.query("nvmlDeviceGetTemperature", "h", 0) == 41
    assert nv.query("nvmlDeviceGetPowerUsage", "h") is None
    assert nv.query("nvmlDeviceGetPowerUsage", "h") is None
    assert nv.query("nvmlDeviceGetMigMode", "h") is None  # not even defined
    assert nv.version() == "580.0"  # bytes decoded
    assert len([m for m in logged if "nvmlDeviceGetPowerUsage" in m]) == 1
    assert len([m for m in logged if "nvmlDeviceGetMigMode" in m]) == 1


def test_nvml_wrapper_without_a_driver_never_raises():
    nv = telemetry.NVML(module=FakePynvml(init_fails=True), log=lambda m: None)
    assert not nv.available and "Driver Not Loaded" in nv.error
    assert nv.query("nvmlDeviceGetTemperature", "h", 0) is None
    assert nv.handle_for_uuid("GPU-x") is None


def test_readings_have_exactly_the_design_keys_with_none_where_unsupported():
    nv = telemetry.NVML(module=FakePynvml(throttle=0x1 | 0x8), log=lambda m: None)
    r = telemetry.read_telemetry(nv, "handle")
    assert set(r) == DESIGN_READINGS
    assert r["power_w"] is None and r["pcie_tx_kbps"] is None and r["mig_mode"] is None
    assert r["sm_clock_mhz"] == 1980 and r["temperature_c"] == 41
    assert r["throttle_reasons"] == 9 and r["throttle_names"] == ["gpu_idle", "hw_slowdown"]


def test_telemetry_thread_emits_valid_lines_and_records_throttling():
    out = io.StringIO()
    em = Emitter("cupy", out=out)
    nv = telemetry.NVML(module=FakePynvml(throttle=0x1 | 0x40), log=lambda m: None)
    thread = telemetry.TelemetryThread(nv, "handle", em.emit, 0.05)
    t0 = time.perf_counter()
    thread.start()
    deadline = time.monotonic() + 60          # a wait for two readings, not a time bound
    while thread.readings < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop(timeout=60)
    t1 = time.perf_counter()
    lines = [parse_line(text) for text in out.getvalue().splitlines()]
    assert lines and all(line["type"] == "telemetry" for line in lines)
    assert set(lines[0]["readings"]) == DESIGN_READINGS
    assert thread.throttling_between(t0, t1) == ["hw_thermal_slowdown"]  # idle is not counted
    assert thread.throttling_between(t1 + 10, t1 + 20) == []
    # the clocks read during a window, for the clock-change rule (engine/window_checks.py)
    assert thread.clocks_between(t0, t1)["sm_mhz"] == [1980.0, 1980.0]
    assert thread.clocks_between(t1 + 10, t1 + 20) is None
    assert not thread.is_alive()


# ---------------------------------------------------------------- hypervisor and preload
def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_hypervisor_nothing_found_on_an_empty_root(tmp_path):
    hv = facts.detect_hypervisor(tmp_path, None, detect_virt=None)
    assert hv == {"detected": False, "evidence": [], "vendor": None}


def test_hypervisor_firecracker_guest_cpuinfo_flag_and_nvml_passthrough(tmp_path):
    _write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: AMD EPYC\n"
                                     "flags\t\t: fpu sse2 hypervisor avx\n")
    hv = facts.detect_hypervisor(tmp_path, nvml_virt_mode=1, detect_virt=None)
    assert hv["detected"] is True
    assert hv["evidence"] == ["cpuinfo flag hypervisor", "nvml virtualization_mode=passthrough"]
    assert facts.cpu_model(tmp_path) == "AMD EPYC"


def test_hypervisor_xen_sysfs_dmi_and_detect_virt(tmp_path):
    _write(tmp_path, "sys/hypervisor/type", "xen\n")
    _write(tmp_path, "sys/class/dmi/id/sys_vendor", "QEMU\n")
    _write(tmp_path, "proc/cpuinfo", "flags\t: fpu sse2\n")
    hv = facts.detect_hypervisor(tmp_path, nvml_virt_mode=0, detect_virt=lambda: "kvm")
    assert hv["detected"] and hv["vendor"] == "xen"
    assert "/sys/hypervisor/type=xen" in hv["evidence"]
    assert "dmi sys_vendor=QEMU" in hv["evidence"]
    assert "systemd-detect-virt=kvm" in hv["evidence"]
    assert not any("nvml" in e for e in hv["evidence"])  # mode 0 = none


def test_hypervisor_vendor_from_dmi_alone(tmp_path):
    _write(tmp_path, "sys/class/dmi/id/product_name", "VMware Virtual Platform\n")
    hv = facts.detect_hypervisor(tmp_path, None, detect_virt=lambda: "none")
    assert hv["detected"] and hv["vendor"] == "vmware"


def test_preload_reports_entries_and_only_those_really_mapped(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 123 /usr/local/vgpu/libvgpu.so\n"
        "7f01-7f02 r--p 00001000 08:01 123 /usr/local/vgpu/libvgpu.so\n"
        "7f02-7f03 r-xp 00000000 08:01 124 /usr/lib/libc.so.6\n"
        "7f03-7f04 rw-p 00000000 00:00 0 \n"
        "7ffd-7ffe rw-p 00000000 00:00 0 [stack]\n")
    got = facts.preload_facts({"LD_PRELOAD": "/usr/local/vgpu/libvgpu.so:/opt/missing.so"}, maps)
    assert got == {"ld_preload": ["/usr/local/vgpu/libvgpu.so", "/opt/missing.so"],
                   "mapped": ["/usr/local/vgpu/libvgpu.so"]}
    bare = facts.preload_facts({"LD_PRELOAD": "libvgpu.so"}, maps)
    assert bare["mapped"] == ["/usr/local/vgpu/libvgpu.so"]
    assert facts.preload_facts({}, maps) == {"ld_preload": [], "mapped": []}
    assert facts.preload_facts({"LD_PRELOAD": "x.so"}, tmp_path / "absent")["mapped"] == []


def test_env_facts_keep_cuda_and_gpubench_variables():
    env = facts.env_facts({"CUDA_VISIBLE_DEVICES": "0", "GPUBENCH_CPU_DELAY_NS": "5",
                           "HOME": "/root", "SECRET_TOKEN": "x"})
    assert env == {"CUDA_VISIBLE_DEVICES": "0", "GPUBENCH_CPU_DELAY_NS": "5"}


# ---------------------------------------------------------------- timing
def test_latency_stats_percentiles_and_empty_input():
    ns = np.arange(1, 1001, dtype=np.int64) * 1000  # 1..1000 µs
    s = latency_stats(ns, full=True)
    assert s["min"] == 1 and s["max"] == 1000 and abs(s["p50"] - 500.5) < 1e-6
    assert s["p90"] < s["p99"] < s["p999"] <= 1000
    assert abs(s["cv"] - s["stdev"] / s["mean"]) < 1e-3
    assert latency_stats(ns, scale=10)["max"] == 100
    empty = latency_stats(np.empty(0, np.int64), full=True)
    assert set(empty.values()) == {None}


def test_recorder_turns_timestamps_into_latencies_across_chunks():
    rec = LatencyRecorder(chunk_ops=4)
    mv, cap = rec.view()
    for k in range(4):
        mv[k] = 100 + 10 * (k + 1)
    last = rec.to_latencies(0, 4, 100)
    assert last == 140 and rec.current_slice(0, 4).tolist() == [10, 10, 10, 10]
    mv, cap = rec.next_chunk(4)
    mv[0] = 175
    rec.to_latencies(0, 1, last)
    rec.close(1)
    assert rec.all().tolist() == [10, 10, 10, 10, 35]


def test_cpu_delay_waits_at_least_the_time_asked():
    wait = CpuDelay(200_000).wait()
    t = time.perf_counter_ns()
    wait()
    assert time.perf_counter_ns() - t >= 200_000


def _stepping_clock(step: int, jumps: dict[int, int] | None = None):
    """A clock that advances `step` ns per read (plus `jumps[n]` at read n): a loop turn."""
    state = {"t": 1_000_000, "n": 0}

    def clock() -> int:
        state["n"] += 1
        state["t"] += step + (jumps or {}).get(state["n"], 0)
        return state["t"]
    return clock


def test_cpu_delay_reports_what_the_wait_spent_not_what_was_asked():
    """A wait stops at the first clock read past its deadline: 300 ns asked on a 70 ns loop
    turn is 350 ns spent (5 turns), and that, not 300, is what an op with the delay costs over
    one with delay 0 (whose wait makes the same first read and spends 0)."""
    delay = CpuDelay(300, clock=_stepping_clock(70))
    wait = delay.wait()
    for _ in range(4):
        wait()
    assert delay.summary() == {"delay_ns": 300, "base_ns": 0, "slot_ns": 0, "seed": 0, "calls": 4,
                               "delayed_calls": 4, "timed_calls": 4, "spent_ns_total": 4 * 350,
                               "off_calls": 0, "off_timed_calls": 0, "off_spent_ns_total": 0}
    zero = CpuDelay(0, clock=_stepping_clock(70))
    zero.wait()()
    assert zero.summary()["spent_ns_total"] == 0 and zero.summary()["timed_calls"] == 1


def test_cpu_delay_leaves_an_interrupted_wait_out_of_the_timing():
    """Read 3 comes 5 ms late (a preemption at the end of the wait): counted, not timed."""
    delay = CpuDelay(300, clock=_stepping_clock(70, {3: 5_000_000}))
    wait = delay.wait()
    wait()
    wait()
    got = delay.summary()
    assert (got["calls"], got["delayed_calls"], got["timed_calls"], got["spent_ns_total"]) == \
        (2, 2, 1, 350)


def test_cpu_delay_from_env_and_its_report(tmp_path):
    assert CpuDelay.from_env({}) is None                          # the ops stay bare
    assert CpuDelay.from_env({"GPUBENCH_CPU_DELAY_NS": "0"}) is None
    report = tmp_path / "r.json"
    zero = CpuDelay.from_env({"GPUBENCH_CPU_DELAY_REPORT": str(report)})
    assert zero is not None and zero.ns == 0                      # a baseline runs the wait too
    zero.wait()()
    zero.write_report()
    assert json.loads(report.read_text()) == zero.summary()
    assert zero.summary()["calls"] == zero.summary()["timed_calls"] == 1
    assert CpuDelay.from_env({"GPUBENCH_CPU_DELAY_NS": "2.5e3"}).ns == 2500
    slotted = CpuDelay.from_env({"GPUBENCH_CPU_DELAY_NS": "5", "GPUBENCH_CPU_DELAY_SLOT_NS": "100",
                                 "GPUBENCH_CPU_DELAY_SEED": "7"})
    assert (slotted.slot_ns, slotted.seed) == (100, 7)
    seed = 5270934750984532871                    # 63 bits, as the self-test draws them
    assert CpuDelay.from_env({"GPUBENCH_CPU_DELAY_SEED": str(seed),
                              "GPUBENCH_CPU_DELAY_REPORT": "x"}).seed == seed


def test_cpu_delay_slots_follow_the_interposers_schedule():
    """With a slot length, the wait is on exactly in the slots slot_on() names (the function
    the interposer's delay_on mirrors), and only on-slot calls count as delayed and spend."""
    from engine.cpu_delay import slot_on
    slot_ns, seed, turn = 10_000, 99, 10
    delay = CpuDelay(30, slot_ns=slot_ns, seed=seed, clock=_stepping_clock(turn))
    wait = delay.wait()
    for _ in range(5_000):
        wait()
    got = delay.summary()
    # each call reads the clock for its slot, once more to start the loop, then 3 more
    # turns if on; replay it in Python
    t, on_calls = 1_000_000, 0
    for _ in range(5_000):
        t += turn
        if slot_on(t // slot_ns, seed):
            on_calls += 1
            t += 3 * turn
        t += turn
    assert 0 < on_calls < 5_000
    assert got["calls"] == 5_000 and got["delayed_calls"] == got["timed_calls"] == on_calls
    assert got["spent_ns_total"] == 30 * on_calls
    assert got["off_calls"] == got["off_timed_calls"] == 5_000 - on_calls
    assert got["off_spent_ns_total"] == 0


def test_cpu_delay_base_wait_is_made_on_and_off_and_reported_apart():
    """GPUBENCH_CPU_DELAY_BASE_NS: every call waits the base first (100 ns: 10 turns of 10 ns),
    an on-slot call the delay too (130 ns: 13 turns); on and off calls are tallied apart, so
    what the delay cost is their difference (30 ns)."""
    slot_ns, seed = 10_000, 99
    delay = CpuDelay(30, slot_ns=slot_ns, seed=seed, base_ns=100, clock=_stepping_clock(10))
    wait = delay.wait()
    for _ in range(3_000):
        wait()
    got = delay.summary()
    assert got["base_ns"] == 100 and got["delayed_calls"] and got["off_calls"]
    assert got["spent_ns_total"] == 130 * got["timed_calls"]
    assert got["off_spent_ns_total"] == 100 * got["off_timed_calls"]
    assert CpuDelay.from_env({"GPUBENCH_CPU_DELAY_REPORT": "x",
                              "GPUBENCH_CPU_DELAY_BASE_NS": "2000"}).base_ns == 2000


# ---------------------------------------------------------------- plan
def test_sizes_parse_and_format():
    assert parse_size("4KiB") == 4096 and parse_size("256MiB") == 256 << 20
    assert parse_size("65536") == 65536 and parse_size("1M") == 1 << 20
    assert format_size(4096) == "4KiB" and format_size(256 << 20) == "256MiB"
    with pytest.raises(UsageError):
        parse_size("lots")


def test_variant_names_follow_design():
    p = parse_args(["--workloads", "roundtrip,launch,h2d,d2h,d2d,gemm,alloc,init,p2p"])
    names = [(v.workload, v.name) for v in build_variants(p, "cupy")]
    for expected in [("roundtrip", "pinned-64KiB"), ("launch", "sync"), ("launch", "async"),
                     ("h2d", "pinned-4KiB"), ("h2d", "pageable-256MiB"), ("d2h", "pinned-1MiB"),
                     ("d2d", "256MiB"), ("gemm", "fp32-8192"), ("gemm", "fp16-8192"),
                     ("alloc", "1MiB"), ("alloc", "1MiB-held"), ("init", "n1"), ("init", "n8"), ("init", "n32")]:
        assert expected in names
    cpu = [v for v in build_variants(p, "numpy-cpu") if v.workload == "gemm"]
    assert [v.name for v in cpu] == ["fp32-1024", f"fp16-{plan_mod.GEMM_FP16_MAX_CPU}"]


# ---------------------------------------------------------------- validity
class FakeTelemetry:
    def __init__(self, reasons):
        self.reasons = reasons

    def throttling_between(self, start, end):
        return list(self.reasons)


def test_validity_rules():
    # the CV rule is off unless --cv-limit asks for it: a wide spread is no reason by itself
    p = parse_args(["--min-window", "0.5"])
    shape = {"calls": 10}
    r = Runner(p, None, StopFlag(), FakeTelemetry(["hw_slowdown"]))
    reasons, _ = r.validity(0.4, 0.0, 0.4, interrupted=True, ops=10, shape=shape, cv=12.0)
    assert reasons == ["window 0.400 s < minimum 0.5 s", "throttled: hw_slowdown", "interrupted"]
    limited = Runner(parse_args(["--cv-limit", "10"]), None, StopFlag(), FakeTelemetry([]))
    assert limited.validity(1.0, 0.0, 1.0, False, 10, shape, cv=0.12)[0] == \
        ["cv 12.0% > limit 10%"]
    assert limited.validity(1.0, 0.0, 1.0, False, 10, shape, cv=0.5, check_window=False)[0] == []
    clean = Runner(p, None, StopFlag(), FakeTelemetry([]))
    assert clean.validity(1.0, 0.0, 1.0, interrupted=False, ops=10, shape=shape, cv=5.0)[0] == []


def test_measure_emits_samples_and_a_result_whose_latencies_add_up():
    out = io.StringIO()
    p = parse_args(["--duration", "0.3", "--min-window", "0", "--backend", "numpy-cpu"])
    runner = Runner(p, Emitter("numpy-cpu", out=out), StopFlag())
    runner.chunk_ops = 512  # force several chunk changes
    v = Variant("launch", "sync", {"launches_per_sync": 1})
    result = runner.measure(v, launch.prepare(NumpyBackend(delay_ns=0), v, p), 0)
    lines = [parse_line(t) for t in out.getvalue().splitlines()]
    samples = [line for line in lines if line["type"] == "sample"]
    assert len(samples) >= 2 and lines[-1]["type"] == "result"
    assert sum(s["interval_ops"] for s in samples) == result["ops"] > 512
    # the per-op latencies are disjoint pieces of the window (the boundary work between them,
    # and any preemption during it, is left out: how much depends on the machine's load)
    total_us = result["latency_us"]["mean"] * result["ops"]
    assert result["latency_us"]["min"] > 0
    assert total_us / 1e6 <= result["duration_s"] * (1 + 1e-3)


# ---------------------------------------------------------------- failures, in process
def _run_in_process(argv, capsys):
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = lifecycle.run_engine(argv, t0=time.monotonic())
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    lines = [parse_line(t) for t in capsys.readouterr().out.splitlines()]
    return code, lines


def test_oom_on_one_size_is_reported_and_the_rest_goes_on(monkeypatch, capsys):
    real = NumpyBackend.device_buffer

    def device_buffer(self, nbytes):
        if nbytes >= 1 << 20:
            raise MemoryError("fake: out of memory")
        return real(self, nbytes)
    monkeypatch.setattr(NumpyBackend, "device_buffer", device_buffer)
    code, lines = _run_in_process(["--backend", "numpy-cpu", "--workloads", "h2d", "--sizes",
                                   "4KiB,1MiB", "--memory", "pinned", "--duration", "0.02",
                                   "--warmup", "0", "--repeats", "1"], capsys)
    errors = [line for line in lines if line["type"] == "error"]
    assert [(e["code"], e["fatal"]) for e in errors] == [("oom", False)]
    assert "pinned-1MiB" in errors[0]["message"]
    assert [r["variant"] for r in lines if r["type"] == "result"] == ["pinned-4KiB"]
    assert code == 0 and lines[-1]["status"] == "ok"


def test_a_failing_workload_is_reported_and_the_run_ends_with_exit_1(monkeypatch, capsys):
    from engine import workloads

    def broken(backend, variant, plan):
        raise RuntimeError("kaputt")
    monkeypatch.setitem(workloads.PREPARE, "alloc", broken)
    code, lines = _run_in_process(["--backend", "numpy-cpu", "--workloads", "alloc,launch",
                                   "--duration", "0.02", "--warmup", "0", "--repeats", "1"],
                                  capsys)
    errors = [line for line in lines if line["type"] == "error"]
    assert errors[0]["code"] == "workload_failed" and "kaputt" in errors[0]["message"]
    assert {r["workload"] for r in lines if r["type"] == "result"} == {"launch"}
    assert code == 1 and lines[-1]["status"] == "error" and lines[-1]["exit_code"] == 1


def test_format_uuid_matches_nvml_spelling():
    raw = bytes(range(16))
    assert format_uuid(raw) == "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert format_uuid("GPU-abc") == "GPU-abc" and format_uuid(None) is None


def test_engine_overhead_quick_mode_prints_the_table_on_cpu(tmp_path):
    import subprocess
    import sys
    from tests.support.engine_run import REPO, engine_env
    out = tmp_path / "eo.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "engine_overhead.py"),
                           "--quick", "--backend", "numpy-cpu", "--rounds", "2",
                           "--trial-s", "0.05", "--json", str(out)],
                          capture_output=True, text=True, env=engine_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "CPU (numpy-cpu" in proc.stdout
    for what in ("launch sync ops/s: engine ÷ bare loop", "telemetry on ÷ off",
                 "256 MiB H2D GB/s", "256 MiB D2H GB/s", "roundtrip 64 KiB ops/s CV"):
        assert what in proc.stdout
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 8 and all(r["value"] >= 0 for r in data["rows"])
    assert "CV the engine adds beyond the bare loop's" in proc.stdout
    assert "python -m engine` roundtrip ops/s CV over 5 repeats (telemetry off)" in proc.stdout


def test_launch_modes_pick_the_launch_variants():
    from engine.plan import build_variants, parse_args
    names = lambda argv: [v.name for v in build_variants(parse_args(argv), "numpy-cpu")]
    assert names(["--workloads", "launch"]) == ["sync", "async"]
    assert names(["--workloads", "launch", "--launch-modes", "sync"]) == ["sync"]
    assert names(["--workloads", "launch", "--launch-modes", "async,sync"]) == ["async", "sync"]


def _reanalysed_rows(tmp_path, roundtrip: dict) -> list[dict]:
    """benchmarks/engine_overhead.py --reanalyse on per-trial figures: its rows, as it writes them."""
    import subprocess
    import sys
    from tests.support.engine_run import REPO, engine_env
    figures, out = tmp_path / "figures.json", tmp_path / "rows.json"
    figures.write_text(json.dumps({"label": "test", "trial_s": 1.0, "roundtrip": dict(roundtrip, group_size=5)}))
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "engine_overhead.py"),
                           "--reanalyse", str(figures), "--json", str(out)],
                          capture_output=True, text=True, env=engine_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "roundtrip CV the engine adds beyond the bare loop's (quadrature)" in proc.stdout
    return json.loads(out.read_text())["rows"]


def test_overhead_cv_is_pooled_within_groups_and_the_added_cv_is_in_quadrature(tmp_path):
    # two groups far apart (drift between runs) with the same spread inside each; the trailing
    # partial group is dropped
    drift = [99.0, 101.0, 100.0, 99.0, 101.0, 199.0, 201.0, 200.0, 199.0, 201.0, 7.0]
    steady = [98.0, 102.0, 98.0, 102.0, 100.0] * 2
    cv_engine, cv_bare = np.sqrt(1.0) / 150.0, np.sqrt(4.0) / 100.0   # within-group variances 1 and 4
    rows = _reanalysed_rows(tmp_path, {"engine": drift, "engine_tel_off": drift, "bare": steady})
    assert abs(rows[0]["value"] - cv_engine) < 1e-12
    assert rows[1]["value"] == 0.0                  # less noise than the bare loop adds none
    rows = _reanalysed_rows(tmp_path, {"engine": steady, "engine_tel_off": steady, "bare": drift})
    assert abs(rows[1]["value"] - np.sqrt(cv_bare ** 2 - cv_engine ** 2)) < 1e-12
    rng = np.random.default_rng(3)
    bare = list(100 * (1 + 0.02 * rng.standard_normal(30)))
    noisy = list(100 * (1 + 0.05 * rng.standard_normal(30)))
    quiet = _reanalysed_rows(tmp_path, {"engine": bare, "engine_tel_off": bare, "bare": bare})
    loud = _reanalysed_rows(tmp_path, {"engine": noisy, "engine_tel_off": noisy, "bare": bare})
    assert quiet[1]["value"] == 0.0 and quiet[1]["verdict"] == "PASS"
    assert loud[1]["value"] > 0.03 and loud[1]["verdict"] == "FAIL"
    assert loud[0]["verdict"] == "FAIL" and loud[0]["ci"][0] > 0.01


def test_inline_loop_runs_the_calls_and_stops_at_the_boundary_or_a_full_chunk():
    from engine.inline import make_bare, make_hot, make_op
    seen: list[int] = []
    calls = [(seen.append, (1,)), (seen.append, (2,))]
    make_op(calls)()
    assert seen == [1, 2]
    make_bare(calls)(3)
    assert seen == [1, 2] * 4
    arr = np.zeros(5, dtype=np.int64)
    i, t1, full = make_hot(calls)(memoryview(arr), 0, time.perf_counter_ns() + 10**12)
    assert (i, full) == (5, True) and t1 > 0 and arr[-1] > 0  # chunk full after 5 + 1 ops
    assert len(seen) == 8 + 2 * 6
    i, t1, full = make_hot(calls)(memoryview(np.zeros(100, np.int64)), 0, 0)
    assert (i, full) == (1, False)  # boundary already passed: one op, then back
