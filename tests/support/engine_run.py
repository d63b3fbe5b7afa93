"""Helpers for the engine's tests: run `python -m engine` as a subprocess and parse its stream."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.protocol import validate_line

REPO = Path(__file__).resolve().parents[2]


class EngineRun:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.stdout = proc.stdout
        self.lines = [validate_line(json.loads(text)) for text in proc.stdout.splitlines() if text.strip()]

    def of(self, msg_type: str) -> list[dict]:
        return [line for line in self.lines if line["type"] == msg_type]

    @property
    def hello(self) -> dict:
        return self.of("hello")[0]

    @property
    def done(self) -> dict:
        return self.lines[-1]


def engine_env(extra: dict | None = None, pythonpath: Path = REPO) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUBENCH_CPU_DELAY")}
    env["PYTHONPATH"] = str(pythonpath)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env
