"""Fixtures for the self-test and the isolation checks: the interposer built into a private
cache, and a fake CUDA driver with two helper libraries and a `harness` program (C sources in
csrc/, built with cc) once per session."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gpubench import interposer

CSRC = Path(__file__).resolve().parent / "csrc"


def driver_installed() -> bool:
    """A real libcuda loads here: the engine then resolves driver lookups against it, so a
    preloaded library that wraps nothing is shown to intercept nothing."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


NO_DRIVER = pytest.mark.skipif(driver_installed(), reason="a CUDA driver is installed: the "
                               "probe library is then judged as intercepting nothing")


def _cc() -> str:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    return cc


@pytest.fixture(scope="session")
def interposer_lib(tmp_path_factory) -> Path:
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
