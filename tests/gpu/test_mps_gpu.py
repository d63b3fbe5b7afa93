"""MPS as a layer on a real GPU with NVIDIA's own control daemon. Skipped without CuPy and a GPU
(tests/conftest.py) or without nvidia-cuda-mps-control on PATH; `make test-gpu` runs it.

GPU-FACTS.md (H200, driver 580): under CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25 an 8192 fp16 GEMM
fell from 676 to 232 TFLOP/s (0.34 of bare). The bound here is 0.6: a limit that is enforced
at all clears it on any card, one that is ignored (~1.0) never does.
"""
from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import pytest

from scenarios.base import LaunchRequest
from scenarios.config import ScenarioConfig
from scenarios.events import Hello, Result, SessionEnded
from scenarios.layers import verify
from scenarios.local import LocalLauncher
from scenarios.mps import MpsLayer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    shutil.which("nvidia-cuda-mps-control") is None,
    reason="nvidia-cuda-mps-control not on PATH (the driver's MPS is not installed here)")]

GEMM = ("--backend", "cupy", "--workloads", "gemm", "--gemm-size", "8192", "--duration", "0.5",
        "--warmup", "0.2", "--repeats", "3", "--telemetry-interval", "0")


async def fp16_tflops(launcher) -> tuple[dict, float]:
    """The session's hello and the median fp16 TFLOP/s of its GEMM results."""
    session = await launcher.start(LaunchRequest(engine_args=GEMM))
    events = [ev async for ev in session.events()]
    ended = events[-1]
    assert isinstance(ended, SessionEnded) and ended.outcome == "completed", \
        (ended, list(session.stderr_tail))
    hello = next(ev for ev in events if isinstance(ev, Hello)).data
    tflops = [ev.data["tflops"] for ev in events if isinstance(ev, Result)
              and ev.data["workload"] == "gemm" and ev.data["variant"].startswith("fp16")]
    assert tflops, "no fp16 GEMM result"
    return hello, statistics.median(tflops)


async def test_a_gemm_under_25_percent_of_the_threads_is_slower_and_hello_says_mps(monkeypatch):
    # the daemon's sockets live in its pipe folder: a short /tmp path stays under the 108-byte
    # limit of a socket's name whatever TMPDIR the test run has
    monkeypatch.setenv("TMPDIR", "/tmp")
    layer = MpsLayer(thread_percentage=25)
    scenario = ScenarioConfig(name="mps-25", title="MPS 25 %", launcher="local", mps=layer)
    bare_hello, bare = await fp16_tflops(LocalLauncher())
    assert verify(scenario, bare_hello) != []        # the bare engine is not judged under MPS

    launcher = LocalLauncher(mps=layer)
    try:
        hello, limited = await fp16_tflops(launcher)
        folder = Path(hello["host"]["mps"]["pipe_directory"]).parent
    finally:
        await launcher.close()
    facts = hello["host"]["mps"]
    assert verify(scenario, hello) == [], facts
    assert facts["servers"] and facts["active_thread_percentage"] == "25"
    assert limited < 0.6 * bare, f"fp16 GEMM {limited:.0f} TFLOP/s under MPS 25 %, {bare:.0f} bare"
    assert not folder.exists() and launcher.mps.notes == []
