"""The fake libcuda and the interposer, shared with tests/selftest (same C sources)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_selftest_conftest", Path(__file__).resolve().parent.parent / "selftest" / "conftest.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)

interposer_lib = _mod.interposer_lib
fake_driver = _mod.fake_driver
