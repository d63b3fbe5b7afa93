"""A check run: the chosen checks one after another against one proxy, and its result
document (scenario `check-<scenario>`) in the store."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from engine.redact import redact_env
from gpubench.selftest.engine_session import detect_backend
from results.check_verdicts import NOT_APPLICABLE, check_scenario_name
from results.document import SessionRecord, archive_lines, build_document
from results.schema import INVALID, VALID
from results.store import Store

from .compute import check_compute
from .contention import check_init, check_interference
from .enforcement import check_memory
from .matrix import check_matrix
from .matrix_settings import MatrixSettings
from .proxy import Proxy
from .settings import CHECKS, CheckError, Settings


def gpu_available(settings: Settings) -> bool:
    if settings.backend == "numpy-cpu":
        return False
    return detect_backend(settings.python) == "cupy"


def run_checks(checks: list[str], proxy: Proxy, settings: Settings,
               progress: Callable[[str], None] | None = None,
               matrix: MatrixSettings | None = None) -> dict:
    progress = progress or (lambda m: print(m, file=sys.stderr, flush=True))
    gpu = settings.backend == "cupy" or (settings.backend == "auto" and gpu_available(settings))
    if settings.backend == "auto":
        settings.backend = "cupy" if gpu else "numpy-cpu"
    t0 = time.monotonic()
    results, sessions = [], []
    for name in checks:
        progress(f"check: {name} ({proxy.name})")
        if name == "memory":
            results.append(check_memory(proxy, settings, gpu))
        elif name == "compute":
            results.append(check_compute(proxy, settings, gpu))
        elif name == "interference":
            r, s = check_interference(proxy, settings)
            results.append(r)
            sessions += s
        elif name == "matrix":
            r, s = check_matrix(proxy, settings, matrix or MatrixSettings(), gpu, progress)
            results.append(r)
            sessions += s
        elif name == "init":
            r, s = check_init(proxy, settings)
            results.append(r)
            sessions += s
        else:
            raise CheckError(f"unknown check {name!r}; choose from {', '.join(CHECKS)}")
        progress(f"check: {name}: {results[-1]['verdict']} ({time.monotonic() - t0:.0f} s)")
    return {"proxy": {"name": proxy.name, "preload": proxy.preload, "env": redact_env(proxy.env),
                      "limits": vars(proxy.limits)},
            "backend": settings.backend, "libcuda": settings.libcuda,
            "checks": results, "elapsed_s": round(time.monotonic() - t0, 1),
            "_sessions": sessions}


def checks_document(summary: dict, scenario_name: str, *, run_id: str | None = None,
                    created: str | None = None) -> tuple[dict, list]:
    """The result document of a check run (scenario `check-<scenario_name>`) and its session
    records: verdicts under `checks`, `checks_summary` and `checks_proxy`."""
    recs = [SessionRecord(lines=s["lines"], outcome=s["outcome"], message=s["message"], trial=i)
            for i, s in enumerate(summary.get("_sessions") or [])]
    scenario = {"name": check_scenario_name(scenario_name),
                "title": f"isolation checks: {scenario_name}",
                "launcher": "local", "host": "local", "target": "none",
                "details": {"proxy": summary["proxy"]}}
    doc = build_document(recs, scenario, label="check", run_id=run_id, created=created,
                         notes="gpubench check: isolation verdicts under 'checks'")
    public = {k: v for k, v in summary.items() if not k.startswith("_")}
    doc["checks"] = public["checks"]
    doc["checks_summary"] = {c["check"]: c["verdict"] for c in public["checks"]}
    doc["checks_proxy"] = public["proxy"]
    if not recs:   # probes only: validity is the checks' own
        unusable = [c for c in public["checks"] if c["verdict"] == NOT_APPLICABLE
                    and any("error" in r or "timed out" in r for r in c.get("reasons", []))]
        doc["validity"] = {"status": INVALID if unusable else VALID,
                           "reasons": [f"{c['check']}: {c['reasons'][0]}" for c in unusable],
                           "notes": ["enforcement probes only (no engine sessions)"],
                           "invalid_trials": 0, "trials": 0}
    return doc, recs


def save_checks(summary: dict, data_dir: Path, scenario_name: str) -> str:
    doc, recs = checks_document(summary, scenario_name)
    Store(data_dir).save(doc, raw_lines=archive_lines(recs) or None)
    return doc["id"]
