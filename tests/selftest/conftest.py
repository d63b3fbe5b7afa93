"""The self-test's `harness` fixture: the fake CUDA driver's harness program run under the interposer."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.fake_cuda import fake_driver, interposer_lib  # noqa: F401 (fixtures)


class Harness:
    def __init__(self, folder: Path, lib: Path):
        self.folder, self.lib = folder, lib

    def run(self, *args, preload: bool = True, report: Path | None = None, timeout: float = 30,
            **env) -> dict:
        full = {k: v for k, v in os.environ.items()
                if not k.startswith("GPUBENCH_INTERPOSE") and k != "LD_PRELOAD"}
        full.update({k: str(v) for k, v in env.items()})
        if preload:
            full["LD_PRELOAD"] = str(self.lib)
        if report is not None:
            full["GPUBENCH_INTERPOSE_REPORT"] = str(report)
        proc = subprocess.run([str(self.folder / "harness"), *map(str, args)], env=full,
                              capture_output=True, text=True, timeout=timeout, cwd=self.folder)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def harness(fake_driver, interposer_lib) -> Harness:
    return Harness(fake_driver, interposer_lib)
