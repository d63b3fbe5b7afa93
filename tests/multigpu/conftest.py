"""Fixtures of the multi-GPU tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def fake_gpus(monkeypatch):
    """GPUBENCH_FAKE_DEVICES=n for engines this process starts (the local launcher inherits it)."""
    def set_count(n: int) -> None:
        monkeypatch.setenv("GPUBENCH_FAKE_DEVICES", str(n))
    return set_count
