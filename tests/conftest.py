"""Shared test set-up: GPU tests skip cleanly without a GPU (or fail loudly when required)."""
from __future__ import annotations

import os

import pytest


def _gpu_available() -> tuple[bool, str]:
    try:
        import cupy  # noqa: F401
    except Exception as exc:  # ImportError, or a CUDA library load failure
        return False, f"CuPy not importable ({type(exc).__name__})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no CUDA device ({exc})"
    return (count > 0), f"{count} CUDA device(s)"


def pytest_collection_modifyitems(config, items):
    if not any("gpu" in item.keywords for item in items):
        return
    ok, why = _gpu_available()
    if ok:
        return
    if os.environ.get("GPUBENCH_REQUIRE_GPU") == "1":
        raise pytest.UsageError(f"GPUBENCH_REQUIRE_GPU=1 but {why}")
    skip = pytest.mark.skip(reason=f"needs a GPU: {why} (run `make test-gpu` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
