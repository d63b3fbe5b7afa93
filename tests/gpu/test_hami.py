"""HAMi-core, the real GPU proxy of scenario 3: built by tests/support/hami.py, judged by gpubench.

On the GPU machine, first `python -m tests.support.hami` (vendor-cache/ holds the tarball), then
`pytest -m gpu tests/gpu/test_hami.py`. They skip without CuPy or a GPU (tests/conftest.py)
and without the installed library. The build helper's own checks, which need neither, are in
tests/scenarios/test_hami_build.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.config import load_config
from scenarios.layers import proxy_notes, verify
from scenarios.registry import layer_env
from tests.support import hami
from tests.support.engine_run import REPO, EngineRun, engine_env

GIB = 1 << 30


@pytest.fixture
def hami_env(tmp_path) -> dict:
    """LD_PRELOAD of the installed library, with a limits cache file of this test's own (HAMi
    reads the limits only when it creates the file)."""
    if not hami.LIBRARY.is_file():
        pytest.skip(f"HAMi-core is not installed at {hami.LIBRARY}: run `python -m tests.support.hami`")
    return {"LD_PRELOAD": str(hami.LIBRARY),
            "CUDA_DEVICE_MEMORY_SHARED_CACHE": str(tmp_path / "hami.cache")}


def hello(env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "engine", "--backend", "cupy", "--list-devices"],
                          capture_output=True, text=True, env=engine_env(env), cwd=REPO,
                          timeout=120)
    run = EngineRun(proc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run.hello


@pytest.mark.gpu
def test_hello_under_hami_shows_the_lookups_reaching_libvgpu(hami_env, tmp_path):
    scenario = load_config(REPO / "config.toml").scenarios["bare-metal-proxy"]
    env, preload = layer_env(scenario)
    assert preload == str(hami.LIBRARY)
    got = hello({**env, **hami_env})
    facts = got["host"]["preload"]
    print(f"hami-core {hami.installed_commit()}: {json.dumps(facts)}")   # evidence for the note
    assert facts["mapped"] == [str(hami.LIBRARY)]
    assert facts["resolves"]["cuLaunchKernel"] == {"dlsym": str(hami.LIBRARY),
                                                   "getproc": str(hami.LIBRARY)}
    assert verify(scenario, got) == []
    print("notes:", proxy_notes(scenario, got))
    # the same engine without the proxy reaches the driver itself
    bare = hello({})["host"]["preload"]
    assert Path(bare["resolves"]["cuLaunchKernel"]["dlsym"]).name.startswith("libcuda.so")
    assert verify(scenario, {"host": {"preload": {**bare, "mapped": [str(hami.LIBRARY)],
                                                  "ld_preload": [str(hami.LIBRARY)]}}})[0] \
        .startswith("proxy not intercepting: cuLaunchKernel resolves to libcuda.so")


ALLOCATE = """
import json, cupy
free, total = cupy.cuda.runtime.memGetInfo()
out = {"total": total}
small = cupy.empty(64 << 20, dtype=cupy.uint8)      # under the limit (HAMi counts the context too)
try:
    big = cupy.empty(2 << 30, dtype=cupy.uint8)
    out["big"] = "allocated"
except Exception as exc:
    out["big"] = type(exc).__name__
print(json.dumps(out))
"""


@pytest.mark.gpu
def test_a_1g_memory_limit_refuses_a_2gib_cupy_allocation(hami_env):
    proc = subprocess.run([sys.executable, "-c", ALLOCATE], capture_output=True, text=True,
                          env=engine_env({**hami_env, "CUDA_DEVICE_MEMORY_LIMIT": "1g"}),
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["big"] == "OutOfMemoryError", got
    assert got["total"] <= GIB, got                      # HOOK_MEMINFO: the limit is the size
