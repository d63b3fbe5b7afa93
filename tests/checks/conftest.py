"""The fake libcuda and the interposer, shared with tests/selftest (same C sources)."""
from __future__ import annotations

from tests.support.fake_cuda import fake_driver, interposer_lib  # noqa: F401 (fixtures)
