"""A closed terminal (SIGHUP, and every later write failing with EIO) stops `gpubench run` the
way Ctrl-C does: the trial in flight keeps its partial result and what was measured is saved,
marked incomplete."""
from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from results.store import Store

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip"]
duration_s = 1.0
warmup_s = 0.0
repeats = 3
trials = 3
backend = "numpy-cpu"
[scenarios.bare-metal]
launcher = "local"
"""


def _take_terminal() -> None:  # in the child, after setsid(): the pty becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux pseudo-terminal")
def test_closing_the_terminal_saves_the_measured_trials_marked_incomplete(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    env = dict(os.environ, GPUBENCH_CONFIG=str(tmp_path / "config.toml"), PYTHONPATH=str(ROOT))
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gpubench.cli import main; sys.exit(main())",
         "run", "bare-metal"], cwd=tmp_path, env=env, stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=_take_terminal)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 90
        while b"[1/3] bare-metal trial 1: completed" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen.decode()
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        time.sleep(0.8)       # well into the second trial
    finally:
        os.close(master)      # the window closes: SIGHUP, and the terminal is gone
    assert proc.wait(timeout=90) == 130, seen.decode()
    store = Store(tmp_path / "data")
    runs = store.list_runs().runs
    assert len(runs) == 1, runs
    doc = store.load(runs[0]["id"])
    assert doc["complete"] is False and doc["group"]["executed"] == 2
    assert [s["outcome"] for s in doc["sessions"]] == ["completed", "cancelled"]
    assert sum(len(w["trials"]) for w in doc["workloads"]) >= 3
