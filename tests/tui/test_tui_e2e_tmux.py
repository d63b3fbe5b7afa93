"""End to end: the installed `gpubench-tui` in a real terminal (tmux), driven by keys.

Starts the console script with a tmp config, runs a quick CPU test on the local host,
opens help, switches screens and quits; the screen is read with `tmux capture-pane`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tui_helpers import write_config

pytestmark = pytest.mark.e2e

TMUX = shutil.which("tmux")
SCRIPT = Path(sys.executable).with_name("gpubench-tui")


def _tmux(*args: str) -> str:
    return subprocess.run([TMUX, *args], capture_output=True, text=True, check=True,
                          timeout=10).stdout


@pytest.fixture
def tmux_session(tmp_path):
    if TMUX is None:
        pytest.skip("tmux is not installed")
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed at {SCRIPT} (pip install -e .)")
    config = write_config(tmp_path, trials=1)
    name = f"gpubench-e2e-{uuid.uuid4().hex[:8]}"
    # the size is tmux's: a COLUMNS/LINES left by the test runner (pytest-xdist's workers
    # set 80x24) would make Textual draw at that size inside the 160x48 window
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TMUX") and k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    subprocess.run([TMUX, "-L", name, "new-session", "-d", "-s", name, "-x", "160", "-y", "48",
                    f"{SCRIPT} --config {config.path}; echo EXIT=$?; sleep 30"],
                   check=True, env=env, timeout=10)
    yield name, config
    subprocess.run([TMUX, "-L", name, "kill-server"], capture_output=True, timeout=10)


def screen(name: str) -> str:
    return _tmux("-L", name, "capture-pane", "-p", "-t", name)


def keys(name: str, *ks: str) -> None:
    _tmux("-L", name, "send-keys", "-t", name, *ks)


def wait_screen(name: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(name)
        if text in shown:
            return shown
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not on screen after {timeout} s; screen:\n{shown}")


def test_installed_app_in_tmux(tmux_session):
    name, config = tmux_session
    wait_screen(name, "Scenarios (enabled ones form the run plan)")
    shown = wait_screen(name, "3. With GPU Proxy (No Hypervisor)")
    assert "bare-metal" in shown and "gpu-node-1" in shown
    keys(name, "t")                                    # quick test on local: the real CPU engine
    shown = wait_screen(name, "CPU (numpy-cpu) — not a GPU figure", timeout=60)
    wait_screen(name, "completed", timeout=60)
    keys(name, "?")
    wait_screen(name, "gpubench-tui key map")
    keys(name, "q")                                    # closes help (Esc works too, slower)
    deadline = time.monotonic() + 10
    while "gpubench-tui key map" in screen(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    keys(name, "3")
    wait_screen(name, "No saved runs yet")           # a quick test saves nothing
    keys(name, "C-q")
    shown = wait_screen(name, "EXIT=0")
