"""Fixtures for the TUI tests (helpers live in tui_helpers.py)."""
from __future__ import annotations

import pytest

from tui_helpers import write_config


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path)
