"""Fixtures for fleet tests: a farm of simulated SSH hosts (asyncssh servers in other
processes, see tests/support/farm.py) and host configs that reach them through the
product's SSH launcher, host keys checked against a known_hosts built from the farm's key."""
from __future__ import annotations

import pytest

from tests.support.farm import Farm
from tests.support.fleet_stream import HostProfile


FLEET_PROFILES = (
    [HostProfile(f"sim-{i:02d}") for i in range(16)]
    + [HostProfile("sim-gen3x8", pcie=(3, 8, 5, 16)),
       HostProfile("sim-hot", speed=0.8, throttle_mask=0x20, sm_clock_mhz=1400),
       HostProfile("sim-a100", gpu_model="NVIDIA A100-SXM4-80GB", speed=0.5),
       HostProfile("sim-hang", behavior="hang", behave_after_s=0.9)]
)


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("farm"), FLEET_PROFILES, workers=2, rate=8.0, telemetry_every=2)
    f.start()
    yield f
    f.stop()
