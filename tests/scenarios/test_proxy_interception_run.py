"""`gpubench run` of proxy scenarios judged by interception, on the CPU backend: the real engine
resolves the fake driver (tests/support/fake_cuda.py, found by soname through LD_LIBRARY_PATH)
with gpubench's interposer, which wraps dlsym and cuGetProcAddress, or the probe library of
tests/data/preload_probe.c, which is loaded and wraps nothing."""
from __future__ import annotations

from tests.support.cli_env import run, use_config
from tests.support.fake_cuda import NO_DRIVER, fake_driver, interposer_lib  # noqa: F401 (fixtures)

PROXIES = """
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip"]
backend = "numpy-cpu"
duration_s = 0.1
warmup_s = 0.0
repeats = 1
[scenarios.bare-metal]
title = "1. Baseline (Bare Metal)"
launcher = "local"
[scenarios.interposer]
title = "3. Proxy that intercepts"
launcher = "local"
target = "proxy"
baseline = "bare-metal"
[scenarios.interposer.proxy]
preload = "{interposer}"
[scenarios.probe]
title = "3. Proxy that is only loaded"
launcher = "local"
target = "proxy"
baseline = "bare-metal"
[scenarios.probe.proxy]
preload = "{probe}"
"""


def test_a_loaded_proxy_that_intercepts_nothing_makes_the_run_invalid(
        tmp_path, monkeypatch, capsys, fake_driver, interposer_lib, preload_lib):
    store = use_config(tmp_path, monkeypatch, PROXIES.format(interposer=interposer_lib,
                                                             probe=preload_lib))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_driver))
    code, _, err = run(capsys, "run", "interposer", "probe", "--trials", "1", "--seed", "1")
    assert code == 0, err
    driver = fake_driver / "libcuda.so.1"
    probe_line = next(ln for ln in err.splitlines() if " probe trial 1: " in ln)
    assert probe_line.endswith(
        f"[INVALID: proxy not intercepting: cuLaunchKernel resolves to libcuda.so.1 ({driver} by "
        f"dlsym and cuGetProcAddress; none of 19 driver lookups reaches {preload_lib})]")
    interposer_line = next(ln for ln in err.splitlines() if " interposer trial 1: " in ln)
    assert "INVALID" not in interposer_line
    docs = {r["scenario"]: store.load(r["id"]) for r in store.list_runs().runs}
    assert docs["probe"]["validity"]["status"] == "INVALID"
    assert any(r.startswith("layer: proxy not intercepting: cuLaunchKernel")
               for r in docs["probe"]["validity"]["reasons"])
    assert not any("proxy" in r for r in docs["interposer"]["validity"]["reasons"])


@NO_DRIVER
def test_without_a_driver_the_run_says_interception_was_not_proven(
        tmp_path, monkeypatch, capsys, interposer_lib, preload_lib):
    """No libcuda to resolve against: the mapped proxy stands (no layer reason), and the
    document says in its notes what could not be proven, per session and once for the run."""
    store = use_config(tmp_path, monkeypatch, PROXIES.format(interposer=interposer_lib,
                                                             probe=preload_lib))
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    code, _, err = run(capsys, "run", "interposer", "--trials", "2", "--seed", "1")
    assert code == 0, err
    doc = store.load(store.list_runs().runs[0]["id"])
    # (whether its short windows count depends on the machine's load: not asserted)
    assert not any(r.startswith("layer:") for r in doc["validity"]["reasons"]), doc["validity"]
    notes = [n for n in doc["validity"]["notes"] if n.startswith("layer: ")]
    assert len(notes) == 1 and notes[0].startswith("layer: proxy interception not proven: ")
    assert notes[0].endswith(f"only that {interposer_lib} is mapped in the engine process was checked")
    assert all(s["layer_notes"] == [notes[0].removeprefix("layer: ")] for s in doc["sessions"])
