"""Helpers for the multi-GPU tests: GPUBENCH_FAKE_DEVICES makes the numpy-cpu engine report fake devices."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def engine_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUBENCH_")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_engine(*args: str, env: dict | None = None, timeout: float = 120):
    proc = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          env=engine_env(env), cwd=REPO, timeout=timeout)
    return proc, [json.loads(t) for t in proc.stdout.splitlines() if t.strip()]


