"""Secrets in env: a real run on the CPU backend stores secret-looking variables (scenario env,
proxy env, the engine's hello host.env) as "<redacted>" in every file it saves, and keeps the
others (CUDA_*) as they are."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("hunter2-scenario", "nvapi-hunter3", "hunter4-proxy", "hunter5-camel")
CONFIG = """
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip"]
duration_s = 0.2
warmup_s = 0.0
repeats = 1
trials = 1
backend = "numpy-cpu"
[scenarios.leaky]
launcher = "local"
env = { API_KEY = "hunter2-scenario", NVIDIA_API_KEY = "nvapi-hunter3", CUDA_DEVICE_MAX_CONNECTIONS = "8", GPUBENCH_apiToken = "hunter5-camel" }
[scenarios.leaky.proxy]
env = { AWS_SECRET_ACCESS_KEY = "hunter4-proxy", CUDA_DEVICE_SM_LIMIT = "50" }
require_active = false
"""


def test_a_real_run_saves_no_secret_and_keeps_the_rest(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    env = dict(os.environ, GPUBENCH_CONFIG=str(tmp_path / "config.toml"), PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", "import sys; from gpubench.cli import main; "
                          "sys.exit(main())", "run", "leaky"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    run_id = run.stdout.split()[0]
    data = tmp_path / "data"
    doc = json.loads((data / f"{run_id}.json").read_text())
    raw = gzip.decompress((data / f"{run_id}.jsonl.gz").read_bytes()).decode()
    saved = b"".join(p.read_bytes() if p.suffix != ".gz" else gzip.decompress(p.read_bytes())
                     for p in data.rglob("*") if p.is_file())
    assert raw and all(s.encode() not in saved for s in SECRETS)

    details = doc["scenario"]["details"]
    assert details["env"] == {"API_KEY": "<redacted>", "NVIDIA_API_KEY": "<redacted>",
                              "CUDA_DEVICE_MAX_CONNECTIONS": "8",
                              "GPUBENCH_apiToken": "<redacted>"}
    assert details["proxy"]["env"] == {"AWS_SECRET_ACCESS_KEY": "<redacted>",
                                       "CUDA_DEVICE_SM_LIMIT": "50"}
    host_env = doc["hello"]["host"]["env"]   # what the engine saw: CUDA_*, GPUBENCH_*, NVIDIA_*
    assert host_env["NVIDIA_API_KEY"] == host_env["GPUBENCH_apiToken"] == "<redacted>"
    assert host_env["CUDA_DEVICE_MAX_CONNECTIONS"] == "8"
    assert host_env["CUDA_DEVICE_SM_LIMIT"] == "50"
    hello = json.loads(raw.splitlines()[0])
    assert hello["type"] == "hello" and hello["host"]["env"] == host_env
