"""The memory limit on every allocation path against the real driver (and CuPy's cuBLAS):
under gpubench's interposer, which caps them all, and under HAMi-core where it is installed
(/usr/local/vgpu/libvgpu.so, see shared/vendor/README.md). Skipped without a GPU; the per-path
table is printed (`pytest -s`) as the evidence."""
from __future__ import annotations

import os

import pytest

from gpubench.checks.command import format_checks
from gpubench.checks.enforcement import check_memory
from gpubench.checks.memory_paths import SEVERITY
from gpubench.checks.memory_probe import CUBLAS_PATH, MEMORY_PATHS
from gpubench.checks.proxy import Limits, hami_proxy, interposer_proxy
from gpubench.checks.settings import HAMI_LIBRARY
from gpubench.checks.settings import Settings
from results.check_verdicts import ENFORCED, NOT_APPLICABLE, NOT_ENFORCED, NOT_SUPPORTED

pytestmark = pytest.mark.gpu

# HAMi-core counts the CUDA context (hundreds of MiB) against its limit: room to spare
LIMIT = 4 << 30
SETTINGS = dict(backend="cupy", mem_step=256 << 20)


def _judged(r: dict, proxy_name: str) -> dict:
    print("\n" + format_checks({"proxy": {"name": proxy_name}, "backend": "cupy",
                                "elapsed_s": 0.0, "checks": [r]}))
    paths = {p["path"]: p for p in r["paths"]}
    assert list(paths) == [*MEMORY_PATHS, CUBLAS_PATH]
    for p in paths.values():                      # every path probed and judged
        assert p["verdict"] != NOT_APPLICABLE, p["summary"]
    worst = min((p["verdict"] for p in paths.values()), key=SEVERITY.index)
    assert r["verdict"] == (NOT_APPLICABLE if worst == NOT_SUPPORTED else worst)
    return paths


def test_the_interposer_holds_the_limit_on_every_path(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(tmp_path))
    proxy = interposer_proxy(Limits(mem_bytes=LIMIT))
    paths = _judged(check_memory(proxy, Settings(**SETTINGS), gpu=True), proxy.name)
    assert paths["cuMemAlloc_v2"]["verdict"] == ENFORCED
    for p in paths.values():
        assert p["verdict"] != NOT_ENFORCED, p["summary"]
    if paths[CUBLAS_PATH]["verdict"] != NOT_SUPPORTED:   # cuBLAS took a workspace here
        assert paths[CUBLAS_PATH]["probe"]["fill_refused"], paths[CUBLAS_PATH]["summary"]


@pytest.mark.skipif(not os.path.isfile(HAMI_LIBRARY), reason=f"no HAMi-core at {HAMI_LIBRARY}")
def test_hami_core_path_by_path():
    """HAMi-core may fail a path honestly; the test asserts the check ran and judged them all,
    and that plain cuMemAlloc (the path HAMi documents) is refused at its limit."""
    proxy = hami_proxy(Limits(mem_bytes=LIMIT))
    paths = _judged(check_memory(proxy, Settings(**SETTINGS), gpu=True), proxy.name)
    assert paths["cuMemAlloc_v2"]["verdict"] == ENFORCED
