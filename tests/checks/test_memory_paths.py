"""The memory limit on every allocation path, proven without a GPU: the real probe (one process
per path) drives the fake libcuda's simulated memory under gpubench's interposer. Paths the
interposer caps are ENFORCED, paths it is told to leave alone are NOT ENFORCED (a proxy failing
honestly), a path the driver lacks is NOT SUPPORTED, a refusal with another code is a WRONG
ERROR, and a probe answer that lies is rejected in one line. HAMi-core as the proxy: its
environment from the limits, and the CLI's `--proxy hami`."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from gpubench.checks.command import format_checks
from gpubench.checks.enforcement import check_memory
from gpubench.checks.memory_paths import judge_memory_path
from gpubench.checks.memory_probe import CUBLAS_PATH, GPA_PATH, MEMORY_PATHS
from gpubench.checks.proxy import Limits, hami_env, interposer_proxy, scenario_proxy
from gpubench.checks.settings import Settings
from results.check_verdicts import (ENFORCED, NOT_APPLICABLE, NOT_ENFORCED, NOT_SUPPORTED,
                                    WRONG_ERROR, check_rows)
from scenarios.config import load_config
from tests.support.cli_env import BARE_METAL_CONFIG, run, use_config

MIB = 1 << 20
LIMIT = 64 * MIB


@pytest.fixture
def settings(fake_driver, interposer_lib, monkeypatch):
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(interposer_lib.parent))
    return Settings(backend="numpy-cpu", libcuda=str(fake_driver / "libcuda.so.1"),
                    mem_step=8 * MIB)


def by_path(result: dict) -> dict:
    return {p["path"]: p for p in result["paths"]}


def test_every_path_the_interposer_caps_is_enforced(settings, monkeypatch):
    monkeypatch.setenv("FAKE_CUDA_NOT_SUPPORTED", "cuMemAllocManaged")
    r = check_memory(interposer_proxy(Limits(mem_bytes=LIMIT)), settings)
    paths = by_path(r)
    assert list(paths) == list(MEMORY_PATHS)
    assert paths.pop("cuMemAllocManaged")["verdict"] == NOT_SUPPORTED
    for name, p in paths.items():
        assert p["verdict"] == ENFORCED, p["summary"]
        assert p["probe"]["rc"] == 2 and LIMIT - 8 * MIB <= p["observed_bytes"] <= LIMIT
        assert p["probe"]["free_errors"] == 0
    assert r["verdict"] == ENFORCED and r["observed"] == "6 ENFORCED, 1 NOT SUPPORTED"


def test_paths_a_proxy_does_not_hook_are_not_enforced(settings):
    proxy = interposer_proxy(Limits(mem_bytes=LIMIT), unhook="cuMemAllocFromPoolAsync,cuMemCreate")
    r = check_memory(proxy, settings)
    verdicts = {k: p["verdict"] for k, p in by_path(r).items()}
    assert verdicts == {"cuMemAlloc_v2": ENFORCED, GPA_PATH: ENFORCED,
                        "cuMemAllocPitch_v2": ENFORCED,
                        "cuMemAllocManaged": ENFORCED, "cuMemAllocAsync": ENFORCED,
                        "cuMemAllocFromPoolAsync": NOT_ENFORCED, "cuMemCreate": NOT_ENFORCED}
    assert r["verdict"] == NOT_ENFORCED                    # the worst path's
    assert r["reasons"][0].startswith("cuMemAllocFromPoolAsync (cuMemPoolCreate pool): "
                                      "allocated 88 MiB")
    assert "without one refusal" in r["reasons"][0]
    text = format_checks({"proxy": {"name": proxy.name}, "backend": "numpy-cpu",
                          "elapsed_s": 1.0, "checks": [r]})
    assert "      cuMemCreate + cuMemMap (VMM)" in text and "NOT ENFORCED   88 MiB allocated, " \
        "never refused" in text


def test_a_proxy_that_wraps_dlsym_only_misses_the_runtimes_route(settings):
    """cudaMalloc reaches the driver through cuGetProcAddress: a proxy that leaves it alone
    caps an application's cuMemAlloc and not a framework's."""
    proxy = interposer_proxy(Limits(mem_bytes=LIMIT), unhook="cuGetProcAddress_v2")
    paths = by_path(check_memory(proxy, settings))
    assert paths["cuMemAlloc_v2"]["verdict"] == ENFORCED
    assert paths[GPA_PATH]["verdict"] == NOT_ENFORCED
    assert paths[GPA_PATH]["summary"].startswith("cuMemAlloc (cuGetProcAddress): allocated 88 MiB")


def test_caps_off_leave_every_path_open(settings):
    r = check_memory(interposer_proxy(Limits(mem_bytes=LIMIT), caps_on=False), settings)
    assert {p["verdict"] for p in r["paths"]} == {NOT_ENFORCED} and r["verdict"] == NOT_ENFORCED


def test_a_refusal_with_another_code_is_a_wrong_error(settings, monkeypatch):
    """The driver's own memory ends at the limit and says CUDA_ERROR_UNKNOWN, not out of
    memory: refused where it should be, with the wrong code, on every path."""
    monkeypatch.setenv("FAKE_CUDA_MEMORY_BYTES", str(LIMIT))
    monkeypatch.setenv("FAKE_CUDA_OOM_RC", "999")
    r = check_memory(interposer_proxy(Limits(mem_bytes=LIMIT), caps_on=False), settings)
    assert {p["verdict"] for p in r["paths"]} == {WRONG_ERROR} and r["verdict"] == WRONG_ERROR
    p = by_path(r)["cuMemAllocAsync"]
    assert p["summary"] == ("cuMemAllocAsync (default pool): refused with CUDA_ERROR_UNKNOWN (999) "
                            "instead of CUDA_ERROR_OUT_OF_MEMORY at 64 MiB of the configured "
                            "64 MiB (8 MiB steps)")


def _lying_python(tmp_path, line: str) -> str:
    """A `python` that answers the pitched path's probe with `line` and runs the real probe
    for the others."""
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\ncase \"$*\" in\n  *cuMemAllocPitch_v2*) echo '{line}' ;;\n"
                      f"  *) exec {sys.executable} \"$@\" ;;\nesac\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.parametrize("line, said", [
    ('{"probe": "memory", "supported": true, "allocated": -8388608, "allocations": 1, '
     '"refused": true, "rc": 2}', "negative figures (allocated -8388608"),
    ('{"probe": "memory", "supported": true, "allocated": 8388608, "allocations": 1, '
     '"refused": true, "rc": 0}', "refused and allocated at once"),
    ('{"probe": "memory", "allocated": 1e99', "unreadable line"),
])
def test_a_probe_line_that_lies_is_rejected_in_one_line(settings, tmp_path, line, said):
    settings.python = _lying_python(tmp_path, line)
    r = check_memory(interposer_proxy(Limits(mem_bytes=LIMIT)), settings)
    pitch = by_path(r)["cuMemAllocPitch_v2"]
    assert pitch["verdict"] == NOT_APPLICABLE and said in pitch["summary"]
    assert "\n" not in pitch["summary"] and pitch["summary"].startswith("cuMemAllocPitch_v2: ")
    assert by_path(r)["cuMemAlloc_v2"]["verdict"] == ENFORCED   # the others still judged
    assert r["verdict"] == NOT_APPLICABLE                        # and the check cannot pass
    assert r["reasons"][0] == pitch["summary"]


def test_a_driver_that_cannot_load_is_one_reason(settings):
    settings.libcuda = "/nonexistent/libcuda.so.1"
    r = check_memory(interposer_proxy(Limits(mem_bytes=LIMIT)), settings)
    assert r["verdict"] == NOT_APPLICABLE and len(r["reasons"]) == 1
    assert "cannot load the CUDA driver" in r["reasons"][0]


def test_judging_absent_paths_and_the_cublas_workspace():
    absent = judge_memory_path({"path": "cuMemCreate", "supported": False, "absent": "cuMemCreate",
                                "allocated": 0, "allocations": 0, "refused": False, "rc": None},
                               LIMIT)
    assert absent["verdict"] == NOT_SUPPORTED
    assert "no cuMemCreate in the driver" in absent["summary"]
    over = judge_memory_path({"path": "cuMemAlloc_v2", "supported": True, "allocated": 10 * LIMIT,
                              "allocations": 80, "refused": False, "rc": 0, "step": 8 * MIB,
                              "stop_at": LIMIT + 24 * MIB}, LIMIT)
    assert over["verdict"] == NOT_APPLICABLE and "more than the probe asks for" in over["summary"]
    base = {"path": CUBLAS_PATH, "supported": True, "allocations": 0, "rc": None}
    bare = {**base, "allocated": 0, "refused": False, "workspace_bytes": 32 * MIB}
    full = {**base, "allocated": LIMIT - MIB // 2, "fill_refused": True}
    cases = [({**full, "refused": False, "gemm_error": None}, bare, NOT_ENFORCED),
             ({**full, "refused": True, "gemm_error": "CUBLASError: CUBLAS_STATUS_ALLOC_FAILED"},
              bare, ENFORCED),
             ({**full, "refused": True, "gemm_error": "CUBLASError: CUBLAS_STATUS_INTERNAL_ERROR"},
              bare, WRONG_ERROR),
             ({**full, "refused": False, "gemm_error": None}, {**bare, "workspace_bytes": 0},
              NOT_SUPPORTED),
             ({**full, "fill_refused": False, "allocated": LIMIT + 24 * MIB, "refused": False},
              bare, NOT_ENFORCED)]
    for probe, measured, verdict in cases:
        assert judge_memory_path(probe, LIMIT, measured)["verdict"] == verdict, probe


def test_a_check_run_shows_one_row_per_path(settings):
    r = check_memory(interposer_proxy(Limits(mem_bytes=LIMIT), unhook="cuMemCreate"), settings)
    rows = check_rows({"id": "run-1", "scenario": {"name": "check-x"}, "checks": [r]}, "check run")
    assert [(x["check"], x["verdict"]) for x in rows] == [
        ("memory", NOT_ENFORCED), ("memory/cuMemAlloc_v2", ENFORCED),
        (f"memory/{GPA_PATH}", ENFORCED), ("memory/cuMemAllocPitch_v2", ENFORCED),
        ("memory/cuMemAllocManaged", ENFORCED),
        ("memory/cuMemAllocAsync", ENFORCED), ("memory/cuMemAllocFromPoolAsync", ENFORCED),
        ("memory/cuMemCreate", NOT_ENFORCED)]
    assert rows[7]["observed"] == "88 MiB allocated, never refused"
    assert rows[7]["configured"] == "64 MiB" and rows[1]["observed"] == "refused at 64 MiB"


# ---- HAMi-core as the proxy ----------------------------------------------------------------

def test_hami_env_from_the_limits():
    env = hami_env(Limits(mem_bytes=1 << 30, compute_fraction=0.5), "/opt/libvgpu.so", "force")
    assert env["CUDA_DEVICE_MEMORY_LIMIT"] == "1024m" and env["CUDA_DEVICE_SM_LIMIT"] == "50"
    assert env["GPU_CORE_UTILIZATION_POLICY"] == "force"
    assert env["CUDA_REDIRECT"] == "/opt/libvgpu.so"
    cache = env["CUDA_DEVICE_MEMORY_SHARED_CACHE"]
    assert os.path.isdir(os.path.dirname(cache)) and not os.path.exists(cache)
    odd = hami_env(Limits(mem_bytes=MIB + 1), "/opt/libvgpu.so")
    assert odd["CUDA_DEVICE_MEMORY_LIMIT"] == str(MIB + 1) and "CUDA_DEVICE_SM_LIMIT" not in odd
    assert "GPU_CORE_UTILIZATION_POLICY" not in odd


def test_cli_proxy_hami_without_the_library_is_one_line(capsys):
    code, out, err = run(capsys, "check", "--proxy", "hami", "--proxy-lib",
                         "/nonexistent/libvgpu.so", "--mem-limit", "1G", "--no-save")
    assert code == 2 and out == ""
    assert "gpubench check: no HAMi-core library at /nonexistent/libvgpu.so" in err


def test_cli_proxy_hami_preloads_it_with_the_limits_in_its_env(settings, tmp_path, monkeypatch,
                                                               capsys):
    """A stand-in library named libvgpu.so (our interposer, which ignores HAMi's variables):
    the probes run with it preloaded and HAMi's env set, and find the limit not enforced."""
    store = use_config(tmp_path, monkeypatch, BARE_METAL_CONFIG)
    lib = tmp_path / "libvgpu.so"
    os.symlink(interposer_proxy(Limits()).preload, lib)
    code, out, err = run(capsys, "check", "--proxy", "hami", "--proxy-lib", str(lib),
                         "--hami-policy", "force", "--checks", "memory", "--mem-limit", "32M",
                         "--mem-step", "4M", "--backend", "numpy-cpu", "--libcuda",
                         settings.libcuda)
    assert code == 0, err
    assert out.startswith("gpubench check: HAMi-core (policy force) on numpy-cpu")
    assert "  memory       NOT ENFORCED" in out
    doc = store.load(store.list_runs().runs[0]["id"])
    assert doc["checks_proxy"]["preload"] == str(lib)
    env = doc["checks_proxy"]["env"]
    assert env["CUDA_DEVICE_MEMORY_LIMIT"] == "32m"
    assert env["GPU_CORE_UTILIZATION_POLICY"] == "force"
    assert len(doc["checks"][0]["paths"]) == len(MEMORY_PATHS)


def test_a_hami_scenario_gets_the_overridden_limit_in_hami_env(tmp_path, monkeypatch):
    use_config(tmp_path, monkeypatch, BARE_METAL_CONFIG + """[scenarios.hami]
launcher = "local"
target = "proxy"
[scenarios.hami.proxy]
preload = "/usr/local/vgpu/libvgpu.so"
env = { CUDA_DEVICE_MEMORY_LIMIT = "2g", CUDA_DEVICE_SM_LIMIT = "30" }
""")
    proxy = scenario_proxy(load_config().scenarios["hami"], Limits(mem_bytes=1 << 30))
    assert proxy.limits.mem_bytes == 1 << 30 and proxy.limits.compute_fraction == 0.3
    assert proxy.env["CUDA_DEVICE_MEMORY_LIMIT"] == "1024m"
    assert proxy.env["CUDA_DEVICE_SM_LIMIT"] == "30"
    assert proxy.env["CUDA_REDIRECT"] == "/usr/local/vgpu/libvgpu.so"


def test_frees_that_fail_are_named():
    """A proxy that loses track of an allocation (HAMi-core's cuMemFreeAsync answers -1 for a
    pointer it did not hand out, and frees nothing) keeps memory: the path says so."""
    p = judge_memory_path({"path": "cuMemAllocFromPoolAsync", "supported": True,
                           "allocated": LIMIT, "allocations": 8, "refused": True, "rc": 2,
                           "step": 8 * MIB, "stop_at": LIMIT + 24 * MIB, "free_errors": 8,
                           "free_rc": -1}, LIMIT)
    assert p["verdict"] == ENFORCED
    assert p["summary"].endswith("; 8 of its frees failed with code -1 (not a CUDA error code)")
