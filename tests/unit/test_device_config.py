"""The GPU machine's config (tests/support/device/config.toml) loads, and holds the scenarios
its call scripts name: a script that fails on the device costs device time, not CI time."""
from __future__ import annotations

import re
from pathlib import Path

from scenarios.config import load_config

DEVICE = Path(__file__).resolve().parents[1] / "support" / "device"


def test_the_device_config_loads_with_every_scenario_its_scripts_name():
    config = load_config(DEVICE / "config.toml")
    hami = {"bare-metal-proxy", "bare-metal-proxy-mem", "bare-metal-proxy-sm50"}
    assert hami <= {n for n, s in config.scenarios.items() if s.enabled}
    assert config.scenarios["bare-metal-mps50"].mps.thread_percentage == 50
    assert config.scenarios["bare-metal-mps"].mps.thread_percentage is None
    named = set()
    for script in DEVICE.glob("*.sh"):
        named |= set(re.findall(r"--scenario ([a-z0-9-]+)", script.read_text()))
    assert named <= set(config.scenarios)
