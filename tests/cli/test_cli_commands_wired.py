"""The CLI lists every subcommand other modules register, and turns launch failures into one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.own_lines import own_lines

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubench.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_help_lists_selftest_check_and_fleet(tmp_path):
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("selftest", "check", "fleet", "cleanup", "compare", "report"):
        assert f"    {command}" in proc.stdout


def test_cleanup_on_unreachable_cluster_is_one_line(tmp_path):
    (tmp_path / "config.toml").write_text(
        '[clusters.c]\napi_url = "http://127.0.0.1:1"\nnamespace = "x"\n')
    proc = run_cli("cleanup", cwd=tmp_path)
    assert proc.returncode != 0
    lines = own_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Kubernetes API" in lines[0] and "Traceback" not in proc.stderr
    assert "unexpected error" not in lines[0]
