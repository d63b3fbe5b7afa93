"""The interference matrix on a real GPU (CuPy): decode beside a GEMM under time-slicing and
under MPS. Skipped without a GPU (tests/conftest.py); the MPS layer needs
nvidia-cuda-mps-control on PATH and the right to start a daemon (root on the test machine),
else it must be listed NOT AVAILABLE with why, which is asserted instead.

Set GPUBENCH_GPU_LOG_DIR to keep the summary (matrix.json) as evidence.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from gpubench.checks.matrix import check_matrix
from gpubench.checks.matrix_settings import MatrixSettings
from gpubench.checks.settings import Settings
from results.matrix_table import matrix_lines

pytestmark = pytest.mark.gpu


def test_decode_beside_gemm_under_time_slicing_and_mps():
    settings = Settings(backend="cupy", gemm_n=8192)
    ms = MatrixSettings(victims=("decode",), aggressors=("gemm",), layers=("none", "mps"),
                        windows=5, window_s=0.5, thread_percentage=50)
    check, sessions = check_matrix(None, settings, ms, gpu=True, progress=print)
    log_dir = os.environ.get("GPUBENCH_GPU_LOG_DIR")
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        Path(log_dir, "matrix.json").write_text(json.dumps(check, indent=1, default=str))
    print("\n".join(matrix_lines(check)))
    layers = {lay["name"]: lay for lay in check["layers"]}
    none = layers["none"]
    assert none["status"] == "MEASURED", none.get("why")
    cell = none["cells"][0]
    assert cell["status"] == "MEASURED", cell
    for key in ("p50", "p99", "victim_share", "aggressor_share"):
        assert cell[key]["lo"] <= cell[key]["ratio"] <= cell[key]["hi"]
    assert 0.5 <= cell["jain"] <= 1.0
    # a GEMM beside it takes SMs from the decode: its step time cannot have got faster
    assert cell["p50"]["ratio"] > 1.0
    assert cell["nvml"]["status"] in ("AGREE", "DISAGREE", "NOT AVAILABLE")
    mps = layers["mps"]
    if shutil.which("nvidia-cuda-mps-control") is None:
        assert mps["status"] == "NOT AVAILABLE" and "not found" in mps["why"]
        return
    assert mps["status"] == "MEASURED", mps.get("why")
    assert mps["cells"][0]["status"] == "MEASURED", mps["cells"][0]
    # every session ran under the layer it was asked for (scenarios.layers.verify passed)
    assert all(s["outcome"] == "completed" for s in sessions)
