"""Builds the interposer and a fake CUDA driver + harness (C, built with cc) once per session."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parent / "csrc"


def _cc() -> str:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    return cc


@pytest.fixture(scope="session")
def interposer_lib(tmp_path_factory) -> Path:
    from gpubench import interposer
    cache = tmp_path_factory.mktemp("interposer-cache")
    old = os.environ.get("GPUBENCH_CACHE_DIR")
    os.environ["GPUBENCH_CACHE_DIR"] = str(cache)
    try:
        return interposer.library_path()
    finally:
        if old is None:
            os.environ.pop("GPUBENCH_CACHE_DIR", None)
        else:
            os.environ["GPUBENCH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def fake_driver(tmp_path_factory) -> Path:
    """A folder with a fake libcuda.so.1, two helper libraries and the `harness` program."""
    cc = _cc()
    d = tmp_path_factory.mktemp("fakecuda")
    steps = [
        # -Bsymbolic: like the real driver, its own lookups return its own functions
        [cc, "-shared", "-fPIC", "-O2", "-Wl,-Bsymbolic", "-o", d / "libcuda.so.1",
         CSRC / "fake_cuda.c"],
        # no sibling calls: its dlsym(RTLD_NEXT) must really be called from inside it
        [cc, "-shared", "-fPIC", "-O2", "-fno-optimize-sibling-calls", "-o", d / "libgbproxy.so",
         CSRC / "proxy_lib.c", "-ldl"],
        [cc, "-shared", "-fPIC", "-O2", "-o", d / "libgbother.so", CSRC / "other_lib.c"],
        [cc, "-O2", "-o", d / "harness", CSRC / "harness.c", f"-L{d}", "-Wl,--no-as-needed",
         "-l:libgbproxy.so", "-l:libgbother.so", "-l:libcuda.so.1", f"-Wl,-rpath,{d}", "-ldl"],
    ]
    for cmd in steps:
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    return d


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
