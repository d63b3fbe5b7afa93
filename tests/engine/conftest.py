"""Fixtures for the engine's tests (helpers live in tests/support/engine_run.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.engine_run import REPO, EngineRun, engine_env


@pytest.fixture
def run_engine():
    def run(*args: str, env: dict | None = None, cwd: Path | None = None,
            pythonpath: Path = REPO, timeout: float = 120) -> EngineRun:
        proc = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                              text=True, env=engine_env(env, pythonpath), cwd=cwd or pythonpath,
                              timeout=timeout)
        return EngineRun(proc)
    return run
