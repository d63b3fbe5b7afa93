"""results/ stays pure: importing every module pulls in neither scenarios, gpubench, Textual,
asyncssh nor kubernetes (the import-linter contract, checked here through sys.modules)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["results.schema", "results.document", "results.store", "results.stats",
           "results.inference", "results.comparison", "results.format", "results.legacy",
           "results.report", "results.check_verdicts", "results.fleet_analysis",
           "results.fleet_table", "results.per_gpu"]


def test_results_modules_import_nothing_forbidden():
    code = ("import json, sys\n" + "".join(f"import {m}\n" for m in MODULES) +
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    loaded = json.loads(out.stdout)
    forbidden = ("scenarios", "gpubench", "textual", "asyncssh", "kubernetes", "tui", "rich")
    bad = [m for m in loaded if m.split(".")[0] in forbidden]
    assert bad == [] and "results.stats" in loaded
