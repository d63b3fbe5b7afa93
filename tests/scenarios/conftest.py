"""Fixtures for the scenario tests: a real OpenSSH sshd on 127.0.0.1 (session-scoped)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.sshd import REPO, OpenSshServer, sshd_missing_reason


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(f"no OpenSSH server for the ssh tests: {reason}")
    server = OpenSshServer.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def engine_processes():
    """PIDs of processes whose working directory is under a given folder (the engine cache)."""
    def find(folder: str | os.PathLike) -> list[int]:
        folder = os.path.realpath(folder)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd == folder or cwd.startswith(folder + os.sep):
                found.append(int(entry))
        return found
    return find


def _build_probe(tmp_path_factory, folder: str, name: str) -> Path:
    """tests/data/preload_probe.c built with `cc -shared -fPIC` (skips without a compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build the test preload library")
    out = tmp_path_factory.mktemp(folder) / name
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out),
                    str(REPO / "tests" / "data" / "preload_probe.c")], check=True)
    return out


@pytest.fixture(scope="session")
def preload_lib(tmp_path_factory) -> Path:
    return _build_probe(tmp_path_factory, "preload", "libgpubench_probe.so")


@pytest.fixture(scope="session")
def other_preload_lib(tmp_path_factory) -> Path:
    """The same source under another name: a library that is not the configured one."""
    return _build_probe(tmp_path_factory, "preload-other", "libsomething_else.so")
