"""Planting a case of the hostile result corpus (tests/hostile/results/, one case a file, read
by tests/hostile/__init__.py) into a store.

Each file starts with `# expect: <substring of the one line>` lines (other `# ` lines are
comments); the rest is written into a store under the case's file name (the document inside
uses the file stem as its id unless the case is about the id)."""
from __future__ import annotations

from pathlib import Path

from tests.hostile import Case


def plant(data_dir: Path, case: Case) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / case.path.name
    path.write_bytes(case.body_bytes)
    return path
