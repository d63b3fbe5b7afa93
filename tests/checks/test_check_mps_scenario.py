"""`gpubench check --scenario X` where X has an `[mps]` table: the probes run as clients of X's
own private MPS daemon, started before the first probe and stopped after the last, and the
limit judged is X's thread percentage. Without a GPU the control program is the stand-in
(tests/support/mps_standin.py) and the driver the fake one (tests/support/fake_cuda)."""
from __future__ import annotations

import json

from tests.scenarios.test_mps_launchers import (STANDIN_SERVERS, tmpdir_env,  # noqa: F401
                                                write_standin)         # (a fixture)
from tests.support.cli_env import BARE_METAL_CONFIG, run, use_config
from tests.support.own_lines import own_lines

pytestmark = STANDIN_SERVERS


def mps_config(control) -> str:
    return BARE_METAL_CONFIG + f"""
[scenarios.mps25]
launcher = "local"
baseline = "bare-metal"
[scenarios.mps25.mps]
thread_percentage = 25
control = "{control}"
"""


def check(capsys, fake_driver, out) -> tuple[int, str, str]:
    return run(capsys, "check", "--scenario", "mps25", "--checks", "compute",
               "--backend", "numpy-cpu", "--libcuda", str(fake_driver / "libcuda.so.1"),
               "--seconds", "0.4", "--tenant-limits", "none", "--json", str(out), "--no-save")


def test_the_probes_run_under_the_scenarios_daemon_which_is_stopped_after(
        tmp_path, tmpdir_env, fake_driver, monkeypatch, capsys):
    use_config(tmp_path, monkeypatch, mps_config(write_standin(tmp_path / "bin")))
    code, out, err = check(capsys, fake_driver, tmp_path / "summary.json")
    assert code == 0, err
    proxy = json.loads((tmp_path / "summary.json").read_text())["proxy"]
    assert proxy["name"] == "mps25"
    assert proxy["env"]["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert proxy["limits"]["compute_fraction"] == 0.25
    pipe = proxy["env"]["CUDA_MPS_PIPE_DIRECTORY"]
    assert pipe.startswith(str(tmpdir_env)) and proxy["env"]["CUDA_MPS_LOG_DIRECTORY"]
    assert list(tmpdir_env.iterdir()) == []        # the daemon was stopped, its folder removed


def test_a_daemon_that_cannot_start_is_one_line_and_no_probe_runs(
        tmp_path, tmpdir_env, fake_driver, monkeypatch, capsys):
    use_config(tmp_path, monkeypatch, mps_config(tmp_path / "no-such-control"))
    code, out, err = check(capsys, fake_driver, tmp_path / "summary.json")
    assert code == 2
    lines = own_lines(err)
    assert len(lines) == 1
    assert lines[0].startswith(f"gpubench check: local: MPS: {tmp_path / 'no-such-control'} "
                               "not found")
    assert not (tmp_path / "summary.json").exists()
