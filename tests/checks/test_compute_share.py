"""The compute check over time, without a GPU: the probe drives a fake libcuda under
gpubench's interposer, whose launch-rate cap is a real dlsym-wrapping proxy. The series shows
the cap holding interval by interval; two tenants with their own caps are each held; with the
cap off the same check says NOT ENFORCED; an unhooked cuLaunchKernelEx is caught.

Only what load cannot change is asserted: a busy machine lowers a rate, never raises it past a
cap. The interposer's cap (GCRA, burst 1) grants at most cap x interval + 1 launches in an
interval, and the probe launches one at a time, each counted when its call returns: at most
one more than the grants of an interval returns in it."""
from __future__ import annotations

import re

import pytest

from gpubench.checks.compute import _verdict, check_compute, load_kernel, parse_tenant_limits
from gpubench.checks.compute_load import BLOCKS_PER_SM
from gpubench.checks.proxy import Limits, Proxy, interposer_proxy
from gpubench.checks.settings import CheckError, Settings
from results.check_verdicts import ENFORCED, NOT_APPLICABLE, NOT_ENFORCED, observed_configured
from results.share_series import chart_series, judge_series, series_text

CAP = 2000.0


@pytest.fixture
def settings(fake_driver, interposer_lib, monkeypatch):
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(interposer_lib.parent))
    return Settings(backend="numpy-cpu", libcuda=str(fake_driver / "libcuda.so.1"),
                    seconds=1.0, interval=0.2, tenant_limits="none")


def _held_every_interval(row: dict, cap: float) -> None:
    """Every interval of the limited series at or under the cap (two launches of slack at the
    interval's edges): a ceiling no load can push a rate through."""
    interval = row["interval_s"]
    assert len(row["rate"]) == len(row["share"]) == len(row["t"]) == round(1.0 / interval)
    for rate in row["rate"]:
        assert rate * interval <= cap * interval + 2, (row["label"], row["rate"])
    assert row["settle_s"] == 0 and row["overshoot_value"] <= 2 / interval
    assert row["within"] and row["unit"] == "launches/s" and row["limit"] == cap


def test_the_cap_holds_in_every_interval_on_every_load(settings):
    r = check_compute(interposer_proxy(Limits(launch_rate=CAP)), settings, gpu=False)
    assert r["verdict"] == ENFORCED, r["reasons"]
    rows = {p["label"]: p for p in r["paths"]}
    assert set(rows) == {"cuLaunchKernel", "cuLaunchKernelEx", "launch+sync"}
    assert rows["launch+sync"]["load"] == "sync"
    for row in rows.values():
        _held_every_interval(row, CAP)
        assert row["bare"]["launches_per_s"] > 10 * CAP
        assert row["share"] == [x / row["unlimited_rate"] for x in row["rate"]]
    assert r["interval_s"] == 0.2 and r["load"]["kernel"] == "empty"
    observed, configured = observed_configured(r)
    assert configured == "2,000 launches/s"
    assert re.search(r"^cuLaunchKernel steady [\d,]+/s, overshoot \+\d+/s, settle 0 s; ",
                     observed), observed


def test_two_tenants_are_each_held_by_their_own_cap(settings):
    settings.tenant_limits = "1000,3000"
    r = check_compute(interposer_proxy(Limits(launch_rate=CAP)), settings, gpu=False)
    assert r["verdict"] == ENFORCED, r["reasons"]
    tenants = {p["tenant"]: p for p in r["paths"] if p.get("tenant")}
    _held_every_interval(tenants["A"], 1000.0)
    _held_every_interval(tenants["B"], 3000.0)
    info = r["tenants"]
    assert info["limits"] == [1000.0, 3000.0] and info["configured_ratio"] == 3.0
    assert info["env_has_limit"] is True
    assert info["ratio"] == tenants["B"]["steady"] / tenants["A"]["steady"]
    assert "tenants ratio " in observed_configured(r)[0]
    assert f"tenants B/A steady ratio {info['ratio']:.2f}, configured 3.00" in " ".join(
        r["reasons"])
    xs, series = chart_series(r)
    assert {"tenant A", "tenant B", "cuLaunchKernel"} <= set(series)
    assert all(len(v) == len(xs) for v in series.values())


def test_a_proxy_with_the_cap_off_is_not_enforced(settings):
    settings.tenant_limits = "auto"
    r = check_compute(interposer_proxy(Limits(launch_rate=CAP), caps_on=False), settings,
                      gpu=False)
    assert r["verdict"] == NOT_ENFORCED
    assert all(not p["within"] and p["settle_s"] is None for p in r["paths"]), r["reasons"]
    assert r["tenants"]["env_has_limit"] is False and r["tenants"]["limits"] == [CAP, 3 * CAP]
    assert ("tenants: the proxy's env carries no per-process limit variable, so both ran with "
            "its env as is") in r["reasons"]
    assert "OVER the limit" in r["reasons"][0]


def test_an_unhooked_cuLaunchKernelEx_is_caught(settings):
    """The failure users reported: a compute cap with no effect on the newer entry point."""
    r = check_compute(interposer_proxy(Limits(launch_rate=CAP), unhook="cuLaunchKernelEx"),
                      settings, gpu=False)
    assert r["verdict"] == NOT_ENFORCED
    rows = {p["label"]: p for p in r["paths"]}
    assert rows["cuLaunchKernel"]["within"] and not rows["cuLaunchKernelEx"]["within"]
    assert r["reasons"][0].startswith("cuLaunchKernelEx: ")


def test_no_compute_limit_is_not_applicable(settings):
    r = check_compute(interposer_proxy(Limits()), settings, gpu=False)
    assert r["verdict"] == NOT_APPLICABLE and "no compute limit" in r["reasons"][0]


def test_a_probe_that_cannot_load_a_driver_is_not_applicable(settings):
    settings.libcuda = "/nonexistent/libcuda.so.1"
    r = check_compute(interposer_proxy(Limits(launch_rate=CAP)), settings, gpu=False)
    assert r["verdict"] == NOT_APPLICABLE
    assert "cannot load the CUDA driver" in r["reasons"][0]


# ---- judging a series: pure figures -------------------------------------------------------

def test_a_limit_is_a_ceiling_judged_in_its_own_unit():
    """A rate cap in launches/s, a share as a share; under it is held, not escaped; the
    overshoot, settle time and steady share follow the series."""
    held = judge_series([100, 100, 100, 100], 0.5, 400_000.0, rate_cap=2000.0, tolerance=0.15)
    assert held["within"] and held["held_below"] and held["steady"] == 200.0
    over = judge_series([1200] * 4, 0.5, 400_000.0, rate_cap=2000.0, tolerance=0.15)
    assert not over["within"] and over["settle_s"] is None and over["overshoot_value"] == 400.0
    cap_above = judge_series([1000] * 4, 0.5, 2100.0, rate_cap=2000.0, tolerance=0.15)
    assert cap_above["judged"] is False and "nothing to enforce" in cap_above["note"]
    # an SM share: 100 % for a second, then down to the limit 0.5
    throttled = judge_series([100, 100, 50, 51, 50, 49, 50, 50], 0.5, 200.0, fraction=0.5,
                             tolerance=0.15)
    assert throttled["overshoot"] == 0.5 and throttled["settle_s"] == 1.0
    assert throttled["within"] and throttled["steady_share"] == pytest.approx(0.4975)
    assert not throttled["bursty"]
    late = judge_series([50] * 7 + [100], 0.5, 200.0, fraction=0.5, tolerance=0.15)
    assert late["settle_s"] is None and late["within"]      # steady holds, the end is over


def _row(label, within, **kw):
    return {"label": label, "within": within, "summary": f"{label}: ...", **kw}


# HAMi-core 8f3a89c at CUDA_DEVICE_SM_LIMIT=50 with the force policy, measured on an H100
# (driver 580.159.04): kernels completed per 0.25 s under its token bucket, 524/s unlimited.
# Full speed for seconds, then a stall: 0.75 of unlimited on average, where the median of the
# second half (1.00) would call it unthrottled.
HAMI_H100_COUNTS = [18, 55, 130, 131, 131, 131, 130, 131, 131, 131, 130, 131, 131, 44, 0, 8, 64,
                    111, 131, 130, 131, 131, 131, 130, 131, 131, 92, 0, 0, 43, 101, 131]


def test_a_limit_held_by_stalls_is_judged_on_what_the_load_got_and_says_bursts():
    row = judge_series(HAMI_H100_COUNTS, 0.25, 524.0, fraction=0.5, tolerance=0.15)
    later = [c / 0.25 / 524.0 for c in HAMI_H100_COUNTS[16:]]
    assert row["steady_share"] == pytest.approx(sum(later) / len(later))
    assert 0.7 < row["steady_share"] < 0.8 and not row["within"]
    assert row["bursty"] and row["swing"] == [0.0, pytest.approx(131 / 0.25 / 524.0)]
    assert series_text(row) == (
        f"steady {row['steady_share']:.3f} of unlimited (limit 0.500), overshoot +0.500, "
        "never settled under the ceiling, in bursts (0.00 to 1.00 per 0.25 s interval) "
        "— OVER the limit")


def test_a_limit_only_the_synchronising_loop_escapes_says_so():
    got = _verdict([_row("cuLaunchKernel", True, load="saturate"),
                    _row("launch+sync", False, load="sync")])
    assert got["verdict"] == NOT_ENFORCED
    assert got["reasons"][:2] == ["only the launch-then-synchronise loop escapes the limit",
                                  "launch+sync: ..."]
    forced = _verdict([_row("cuLaunchKernel", False, load="saturate"),
                       _row("policy force", True, load="saturate", policy="force")])
    assert forced["reasons"][0] == "held only with GPU_CORE_UTILIZATION_POLICY=force"
    assert _verdict([_row("cuLaunchKernel", True)])["verdict"] == ENFORCED


def test_the_load_kernel_follows_the_limits_unit():
    """An SM share is judged on work (the spin kernel on a GPU), a launch-rate cap on launches
    (the empty kernel: a cap of 5,000/s has nothing to hold at a few hundred spin kernels/s)."""
    share, cap = Limits(compute_fraction=0.5), Limits(launch_rate=5000.0)
    assert load_kernel("auto", share, gpu=True) == "spin"
    assert load_kernel("auto", cap, gpu=True) == "empty"
    assert load_kernel("auto", share, gpu=False) == "empty"
    assert load_kernel("spin", cap, gpu=True) == "spin"
    with pytest.raises(CheckError, match="--kernel spin needs a GPU"):
        load_kernel("spin", share, gpu=False)
    unjudged = _verdict([_row("cuLaunchKernel", True, judged=False,
                              summary="cuLaunchKernel: nothing to enforce")])
    assert unjudged == {"verdict": NOT_APPLICABLE,
                        "reasons": ["cuLaunchKernel: nothing to enforce"]}


def test_tenant_limits_parse_in_the_limits_unit():
    assert parse_tenant_limits("auto", Limits(launch_rate=500.0)) == [500.0, 1500.0]
    assert parse_tenant_limits("auto", Limits(compute_fraction=0.5)) == [0.25, 0.75]
    assert parse_tenant_limits("30,60", Limits(compute_fraction=0.5)) == [0.3, 0.6]
    assert parse_tenant_limits("1000,3000", Limits(launch_rate=2000.0)) == [1000.0, 3000.0]
    assert parse_tenant_limits("none", Limits(launch_rate=1.0)) is None
    for bad in ("1", "x,y", "5,5", "-1,2"):
        with pytest.raises(CheckError):
            parse_tenant_limits(bad, Limits(launch_rate=1.0))


def test_a_hami_style_proxy_gets_the_force_policy_row_and_private_caches(settings):
    """HAMi's SM limit (CUDA_DEVICE_SM_LIMIT): a row again with GPU_CORE_UTILIZATION_POLICY=
    force, and each limited probe its own shared-region file. The fake driver has no SMs to
    limit: only what the probes were given is checked here (the GPU test checks the rest)."""
    from unittest import mock

    from gpubench.checks import compute
    seen, timeouts = [], []

    def probe(proxy, args, s, timeout=300):
        seen.append((dict(proxy.env) if proxy else None, args))
        timeouts.append(timeout)
        return {"probe": "launch", "interval_s": 0.2, "counts": [100] * 5,
                "launches_per_s": 500.0, "rc": 0}
    proxy = Proxy("hami", "/usr/local/vgpu/libvgpu.so", {"CUDA_DEVICE_SM_LIMIT": "50"},
                  Limits(compute_fraction=0.5))
    settings.tenant_limits = "auto"
    with mock.patch.object(compute, "run_probe", probe):
        r = check_compute(proxy, settings, gpu=False)
    labels = [p["label"] for p in r["paths"]]
    assert labels == ["cuLaunchKernel", "cuLaunchKernelEx", "launch+sync", "policy force",
                      "tenant A", "tenant B"]
    envs = [env for env, _ in seen if env is not None]
    assert [e.get("GPU_CORE_UTILIZATION_POLICY") for e in envs].count("force") == 1
    caches = [e["CUDA_DEVICE_MEMORY_SHARED_CACHE"] for e in envs]
    assert len(set(caches)) == len(caches)
    assert sorted(e["CUDA_DEVICE_SM_LIMIT"] for e in envs[-2:]) == ["25", "75"]
    # a launch that never returns costs a row after its seconds and some slack, not 300 s
    assert timeouts[:-2] == [settings.seconds + compute.PROBE_SLACK_S] * (len(timeouts) - 2)
    assert timeouts[-2:] == [settings.seconds + compute.TENANT_START_S +
                             compute.PROBE_SLACK_S] * 2
    # a lone process at the full rate under a 50 % limit: over, and the force row too
    assert r["verdict"] == NOT_ENFORCED


# ---- the GPU load's code path, on a fake driver with streams and events ----------------------

# What the spin load needs beyond tests/support/csrc/fake_cuda.c: streams, events (stamped
# when recorded, as kernels "finish" at once) and the SM count (4). Only the probe's own logic
# is exercised.
STREAM_EXTRAS = r"""
#include <time.h>
typedef int CUresult;
static unsigned long long n_stream, n_event, n_record;
static double stamp[1024];
static double now_ms(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
CUresult cuStreamCreate(void **s, unsigned flags) { (void)flags; *s = (void *)(0x7000 + ++n_stream); return 0; }
CUresult cuEventCreate(void **e, unsigned flags) { (void)flags; *e = (void *)(0x8000 + ++n_event); return 0; }
CUresult cuEventRecord(void *e, void *s) { (void)s; n_record++; stamp[((unsigned long)e - 0x8000) % 1024] = now_ms(); return 0; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) {
    *ms = (float)(stamp[((unsigned long)b - 0x8000) % 1024] - stamp[((unsigned long)a - 0x8000) % 1024]);
    return 0;
}
CUresult cuCtxGetDevice(int *d) { *d = 0; return 0; }
CUresult cuDeviceGetAttribute(int *v, int attr, int dev) { (void)dev; *v = attr == 16 ? 4 : 0; return 0; }
unsigned long long fake_records(void) { return n_record; }
"""


@pytest.fixture(scope="module")
def stream_driver(tmp_path_factory):
    import shutil
    import subprocess

    from tests.support.fake_cuda import CSRC
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("fake-streams")
    (d / "extras.c").write_text(STREAM_EXTRAS)
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wl,-Bsymbolic", "-o", d / "libcuda.so.1",
                    CSRC / "fake_cuda.c", d / "extras.c"], check=True, capture_output=True)
    return d / "libcuda.so.1"


def test_the_spin_load_runs_on_streams_and_is_held_by_the_cap(settings, stream_driver):
    """check_compute as on a GPU (spin kernel, 4 streams kept 2 deep, calibrated in the first
    unlimited run and reused by the others) against the interposer's cap."""
    settings.libcuda = str(stream_driver)
    settings.streams = 4
    settings.kernel = "spin"              # a rate cap alone would launch the empty kernel
    r = check_compute(interposer_proxy(Limits(launch_rate=CAP)), settings, gpu=True)
    assert r["verdict"] == ENFORCED, r["reasons"]
    assert r["load"]["kernel"] == "spin" and r["load"]["blocks"] == 4 * BLOCKS_PER_SM
    assert r["load"]["streams"] == 4 and r["load"]["depth"] == 2 and r["load"]["iters"] > 0
    for row in r["paths"]:
        _held_every_interval(row, CAP)
        assert row["limited"]["iters"] == r["load"]["iters"]   # the same work as unlimited
        assert row["limited"]["kernel"] == "spin"
    sync = next(p for p in r["paths"] if p["load"] == "sync")
    assert sync["limited"]["streams"] == sync["limited"]["depth"] == 1   # one kernel at a time


def test_init_under_a_hami_style_proxy_gets_one_fresh_shared_region():
    """The N processes of an init step under HAMi share one region file, fresh for the run
    (a stale /tmp/cudevshr.cache keeps old limits and old processes)."""
    from unittest import mock

    from gpubench.checks import contention
    from tests.checks.fixed_checks import _init_engines
    seen = []

    async def engines(requests, python):
        seen.extend(requests)
        return await _init_engines(requests, python)
    proxy = Proxy("hami", "/usr/local/vgpu/libvgpu.so", {"CUDA_DEVICE_SM_LIMIT": "50"},
                  Limits(compute_fraction=0.5))
    with mock.patch.object(contention, "_run_engines", engines):
        r, _ = contention.check_init(proxy, Settings(backend="numpy-cpu"))
    assert r["verdict"] == "MEASURED"
    bare, under = seen
    assert "CUDA_DEVICE_MEMORY_SHARED_CACHE" not in bare.env
    assert under.env["CUDA_DEVICE_MEMORY_SHARED_CACHE"].endswith("/init.cache")
    assert under.env["CUDA_DEVICE_SM_LIMIT"] == "50" and under.preload == proxy.preload
