"""hello.host.preload.resolves: who answers each driver lookup, from the real engine.

The engine opens libcuda.so.1 by soname as CuPy does, so LD_LIBRARY_PATH points it at the
fake driver of tests/support/fake_cuda.py; gpubench's interposer is the real dlsym- and
cuGetProcAddress-wrapping proxy preloaded in front of it.
"""
from __future__ import annotations

import ctypes

import pytest

from engine.interception import ENTRY_POINTS, owner
from tests.support.fake_cuda import fake_driver, interposer_lib  # noqa: F401 (fixtures)

HELLO_ONLY = ("--backend", "numpy-cpu", "--list-devices")
# the entry points the fake driver has (it has no async copies)
IN_FAKE = ("cuLaunchKernel", "cuLaunchKernelEx", "cuMemAlloc_v2", "cuMemAllocAsync",
           "cuMemFree_v2", "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuMemGetInfo_v2",
           "cuGetProcAddress_v2")


def preload_of(run, **env) -> dict:
    got = run(*HELLO_ONLY, env=env)
    assert got.returncode == 0, got.stderr
    return got.hello["host"]["preload"]


def test_under_the_interposer_both_lookups_answer_with_the_interposer(
        run_engine, fake_driver, interposer_lib):
    facts = preload_of(run_engine, LD_LIBRARY_PATH=str(fake_driver), LD_PRELOAD=str(interposer_lib))
    assert facts["mapped"] == [str(interposer_lib)]
    assert facts["driver"] == str(fake_driver / "libcuda.so.1")
    assert facts["getproc"] == "cuGetProcAddress_v2" and facts["resolves_error"] is None
    for sym in IN_FAKE:
        assert facts["resolves"][sym] == {"dlsym": str(interposer_lib),
                                          "getproc": str(interposer_lib)}, sym
    assert facts["resolves"]["cuGetProcAddress"] == {"dlsym": str(interposer_lib)}
    # a name the driver lacks is not found by either door, and says so
    assert facts["resolves"]["cuMemcpyHtoDAsync_v2"] == {"dlsym": None, "getproc": None}
    assert list(facts["resolves"]) == [sym for sym, _ in ENTRY_POINTS]


def test_without_a_proxy_every_lookup_answers_with_the_driver(run_engine, fake_driver):
    facts = preload_of(run_engine, LD_LIBRARY_PATH=str(fake_driver))
    driver = str(fake_driver / "libcuda.so.1")
    assert facts["ld_preload"] == [] and facts["driver"] == driver
    for sym in IN_FAKE:
        assert facts["resolves"][sym] == {"dlsym": driver, "getproc": driver}, sym


def test_a_loaded_library_that_wraps_nothing_owns_nothing(run_engine, fake_driver, interposer_lib):
    """The interposer told to leave every listed entry point alone: mapped, bypassed."""
    unhook = ",".join(sym for sym, _ in ENTRY_POINTS)
    facts = preload_of(run_engine, LD_LIBRARY_PATH=str(fake_driver), LD_PRELOAD=str(interposer_lib),
                       GPUBENCH_INTERPOSE_UNHOOK=unhook)
    assert facts["mapped"] == [str(interposer_lib)]
    driver = str(fake_driver / "libcuda.so.1")
    assert {p for row in facts["resolves"].values() for p in row.values() if p} == {driver}


def test_a_driver_that_cannot_be_loaded_is_a_fact_not_a_failure(run_engine, tmp_path):
    """A libcuda.so.1 the loader rejects (here not an ELF file: the loader stops at it, so this
    holds on a machine with a real driver too): the hello goes out and says why."""
    (tmp_path / "libcuda.so.1").write_text("not a library\n")
    facts = preload_of(run_engine, LD_LIBRARY_PATH=str(tmp_path))
    assert facts["driver"] is None and facts["resolves"] == {}
    assert facts["resolves_error"].startswith("no driver library to resolve against: ")
    assert "libcuda.so.1" in facts["resolves_error"]


def test_without_a_driver_nothing_is_resolved(run_engine):
    try:
        ctypes.CDLL("libcuda.so.1")
        pytest.skip("this machine has a libcuda.so.1")
    except OSError:
        pass
    facts = preload_of(run_engine)
    assert facts["driver"] is None and facts["resolves"] == {}
    assert "libcuda.so.1" in facts["resolves_error"]


def test_owner_names_the_library_that_holds_an_address():
    libc = ctypes.CDLL("libc.so.6")
    assert owner(ctypes.cast(libc.getpid, ctypes.c_void_p).value).endswith("libc.so.6")
    assert owner(None) is None and owner(0) is None
