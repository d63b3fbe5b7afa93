"""The HAMi-core build helper (tests/support/hami.py) where there is no GPU: the commit, the flags,
the check that a build kept its hooks. Building and running it is tests/gpu/test_hami.py's."""
from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from tests.support import hami
from tests.support.fake_cuda import fake_driver, interposer_lib  # noqa: F401 (fixtures)


def test_the_commit_comes_from_the_tarball_name():
    assert hami.commit_of(Path("hami-core-8f3a89c.tar.gz")) == "8f3a89c"
    with pytest.raises(hami.HamiError, match="does not carry a commit"):
        hami.commit_of(Path("hami-core-latest.tar.gz"))


def test_a_missing_tarball_is_one_line(tmp_path):
    with pytest.raises(hami.HamiError, match=re.escape(f"no HAMi-core tarball at {tmp_path}/x.tar.gz")):
        hami.find_tarball(tmp_path / "x.tar.gz")


def test_the_build_flags_are_the_ones_the_source_knows():
    """Each -D option the helper passes names a switch of HAMi-core's CMake configuration (a
    misspelt one would be ignored by CMake and the build would lack its hook)."""
    try:
        tarball = hami.find_tarball()
    except hami.HamiError as exc:
        pytest.skip(str(exc))
    with tarfile.open(tarball) as tar:
        config = tar.extractfile("hami-core/src/static_config.h.in").read().decode()
    switches = {f.split("=")[0][2:] for f in hami.CMAKE_FLAGS if not f.startswith("-DCMAKE_")}
    assert switches == {"DLSYM_HOOK_ENABLE", "MULTIPROCESS_LIMIT_ENABLE", "HOOK_MEMINFO_ENABLE",
                        "HOOK_NVML_ENABLE"}
    for switch in switches:
        assert f"#cmakedefine {switch}" in config


def test_a_library_without_the_hook_symbols_is_caught(fake_driver, interposer_lib):
    if hami.missing_hooks(interposer_lib) is None:
        pytest.skip("no nm")
    assert hami.missing_hooks(interposer_lib) == []              # exports dlsym and the cu* hooks
    assert hami.missing_hooks(fake_driver / "libcuda.so.1") == ["dlsym"]   # a driver, no proxy
