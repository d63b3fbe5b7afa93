"""A deterministic interference-matrix check run for views (the TUI grid, its snapshot):
gpubench.checks' own run_checks, matrix layers and cell maths, with only the engine sessions
replaced by fixed windows, so every stored field is the real code's.

decode beside gemm is red (p99 ×1.8), beside launch yellow (×1.3), beside alloc green
(×1.02); roundtrip the same one band milder; MPS is NOT AVAILABLE (CPU backend)."""
from __future__ import annotations

from unittest import mock

from gpubench.checks import matrix
from gpubench.checks.matrix_settings import MatrixSettings
from gpubench.checks.proxy import Proxy
from gpubench.checks.settings import Settings
from gpubench.checks.suite import checks_document, run_checks

P99_FACTOR = {("decode", "gemm"): 1.8, ("decode", "launch"): 1.3, ("decode", "alloc"): 1.02,
              ("roundtrip", "gemm"): 1.3, ("roundtrip", "launch"): 1.05,
              ("roundtrip", "alloc"): 1.0}
SETTINGS = MatrixSettings(victims=("decode", "roundtrip"), aggressors=("gemm", "launch", "alloc"),
                          layers=("none", "mps"), windows=6, window_s=0.5)


def _windows(kind: str, n: int, t0: float, factor: float, share: float) -> list[dict]:
    return [{"variant": f"{kind}/fixed", "start": t0 + i * 0.5, "end": t0 + (i + 1) * 0.5,
             "ops_per_s": 1000.0 * share * (1 + 0.01 * (i % 3)), "valid": True,
             "p50_us": 100.0 * (1 + (factor - 1) / 3) * (1 + 0.01 * (i % 2)),
             "p99_us": 200.0 * factor * (1 + 0.02 * (i % 4))} for i in range(n)]


async def _fixed_engines(launcher, requests):
    roles = [r.label.split()[:2] for r in requests]  # "victim decode (again)", "aggressor gemm"
    out = []
    if len(requests) == 1:
        (role, kind), = roles
        n = SETTINGS.windows + (2 if role == "aggressor" else 0)
        out.append(_windows(kind, n, 0.0, 1.0, 1.0))
    else:
        (_, victim), (_, aggressor) = roles
        factor = P99_FACTOR[(victim, aggressor)]
        out.append(_windows(victim, SETTINGS.windows, 100.0, factor, 1 / factor))
        out.append(_windows(aggressor, SETTINGS.windows + 2, 99.5, 1.0, 0.7))
    return [{"windows": w, "hello": None, "outcome": "completed", "message": "",
             "lines": [], "stderr": []} for w in out]


def fixed_matrix_document(scenario: str = "two-services", *, run_id: str | None = None,
                          created: str | None = None) -> dict:
    with mock.patch.object(matrix, "run_together", _fixed_engines):
        summary = run_checks(["matrix"], Proxy("interposer", None), Settings(backend="numpy-cpu"),
                             progress=lambda message: None, matrix=SETTINGS)
    summary["elapsed_s"] = 12.0
    doc, _ = checks_document(summary, scenario, run_id=run_id, created=created)
    return doc
