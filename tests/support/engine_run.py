"""Run `python -m engine` as a subprocess and read its protocol v1 stream."""
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


def engine_env(extra: dict | None = None, pythonpath: Path = REPO, drop: str = "GPUBENCH_CPU_DELAY") -> dict:
    """This process's environment for an engine, less the variables whose names start with
    `drop` (the multi-GPU tests drop every GPUBENCH_ one: a fake device count set for the
    launcher must not reach an engine they start themselves)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = str(pythonpath)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_engine(*args: str, env: dict | None = None, timeout: float = 120, drop: str = "GPUBENCH_"):
    """(the finished process, its stdout lines as dicts) of `python -m engine ARGS`."""
    proc = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          env=engine_env(env, drop=drop), cwd=REPO, timeout=timeout)
    return proc, [json.loads(t) for t in proc.stdout.splitlines() if t.strip()]


def run_gpu_engine(args: list[str], log_name: str, timeout: float = 400) -> EngineRun:
    """The engine on the GPU (cupy) with these arguments; its stdout and stderr are kept as
    <log_name>.jsonl / .stderr under $GPUBENCH_GPU_LOG_DIR when set (the figures for a note)."""
    proc = subprocess.run([sys.executable, "-m", "engine", "--backend", "cupy", *args],
                          capture_output=True, text=True, env=engine_env(), cwd=REPO,
                          timeout=timeout)
    log_dir = os.environ.get("GPUBENCH_GPU_LOG_DIR")
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        Path(log_dir, f"{log_name}.jsonl").write_text(proc.stdout)
        Path(log_dir, f"{log_name}.stderr").write_text(proc.stderr)
    return EngineRun(proc)
