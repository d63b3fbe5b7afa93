"""`gpubench check --checks matrix` end to end on the CPU backend: real engine processes, a
victim beside two aggressors, saved, then read back by `show` and `compare`. Only structure
and what load cannot change is asserted (cells present, CIs ordered, Jain in [1/n, 1], shares
positive), never that a figure passes a threshold: the 2-core CI machine is busy."""
from __future__ import annotations

import json
import math

import pytest

from gpubench.checks.matrix_plan import host_layers, role_args
from gpubench.checks.matrix_settings import MatrixSettings
from gpubench.checks.proxy import Proxy
from gpubench.checks.settings import Settings
from results.document import archive_lines
from results.store import Store
from tests.support.cli_env import BARE_METAL_CONFIG, run
from tests.support.synth import make_doc

CONFIG = BARE_METAL_CONFIG + """[scenarios.time-sliced]
title = "Two services on one GPU"
launcher = "local"
baseline = "bare-metal"
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUBENCH_CONFIG", str(tmp_path / "config.toml"))
    store = Store(tmp_path / "data")
    ids = {}
    for seed, name in enumerate(("bare-metal", "time-sliced")):
        doc, recs = make_doc(seed, scenario=name, target_pct=5.0, sessions=4)
        store.save(doc, archive_lines(recs))
        ids[name] = doc["id"]
    return store, ids, tmp_path


def _ordered(r: dict) -> bool:
    return r["lo"] <= r["ratio"] <= r["hi"] and all(math.isfinite(r[k]) for k in ("lo", "hi"))


def test_a_small_matrix_through_the_real_engine_saved_shown_and_compared(env, capsys):
    store, ids, tmp = env
    code, out, err = run(capsys, "check", "--scenario", "time-sliced", "--checks", "matrix",
                         "--backend", "numpy-cpu", "--victims", "decode",
                         "--aggressors", "gemm,launch", "--layers", "none,mps", "--victim-batch",
                         "2", "--windows", "4", "--window-s", "0.25", "--json", str(tmp / "s.json"))
    assert code == 0, err
    assert "  matrix       MEASURED" in out
    assert "MPS 50%: NOT AVAILABLE (the CPU backend" in out
    run_id = out.strip().splitlines()[-1].removeprefix("saved run ")
    doc = store.load(run_id)
    check = doc["checks"][0]
    assert doc["scenario"]["name"] == "check-time-sliced" and check["check"] == "matrix"
    assert check["decode_victim_batch"] == 2
    assert check["configured"].endswith("; decode victim batch 2")
    decode = [w for w in doc["workloads"] if w["workload"] == "decode"]
    assert decode and all(w["params"].get("batch") == 2 for w in decode), decode
    assert json.loads((tmp / "s.json").read_text())["checks"][0]["layers"] == check["layers"]

    none, mps = check["layers"]
    assert (mps["name"], mps["status"], mps["cells"]) == ("mps", "NOT AVAILABLE", [])
    assert none["status"] == "MEASURED"
    assert set(none["alone"]["victim"]) == {"decode"}
    assert set(none["alone"]["aggressor"]) == {"gemm", "launch"}
    assert [(c["victim"], c["aggressor"]) for c in none["cells"]] == \
        [("decode", "gemm"), ("decode", "launch")]
    for c in none["cells"]:
        assert c["status"] == "MEASURED", c
        for key in ("p50", "p99", "victim_share", "aggressor_share"):
            assert _ordered(c[key]), (key, c[key])
        assert c["victim_share"]["ratio"] > 0 and c["aggressor_share"]["ratio"] > 0
        assert 0.5 - 1e-9 <= c["jain"] <= 1.0 + 1e-9
        assert 1 <= c["windows"]["victim"] <= c["windows"]["victim_run"] == 4
        assert c["nvml"]["status"] == "NOT AVAILABLE" and "CPU backend" in c["nvml"]["why"]
    # the victim alone again after its pairs: the cells are against both of its processes
    st = none["alone_stability"]["decode"]
    assert _ordered(st) and isinstance(st["stable"], bool)
    # every engine session is archived like a run's: decode, gemm, launch alone, two pairs,
    # decode alone again
    assert len(doc["sessions"]) == 8

    code, out, _ = run(capsys, "show", run_id)
    assert code == 0
    grid = out.split("# interference matrix: the victim's p99")[1].splitlines()
    assert "MPS 50%: NOT AVAILABLE" in grid[0]
    assert grid[1] == "victim\tgemm · none (time-slicing)\tlaunch · none (time-slicing)"
    cells = grid[2].split("\t")
    assert cells[0] == "decode" and all(c.startswith("p99 ×") for c in cells[1:])
    assert "\nnone (time-slicing)\tdecode\tgemm\t" in out            # the cells' details

    code, out, _ = run(capsys, "compare", ids["bare-metal"], ids["time-sliced"])
    assert code in (0, 1)
    checks_part = out.split("# isolation checks\n")[1]
    row = next(ln.split("\t") for ln in checks_part.splitlines() if "\tmatrix\t" in ln)
    assert row[:4] == ["check run", run_id, "matrix", "MEASURED"]
    assert row[4].startswith("worst p99 ×")
    assert "# interference matrix: the victim's p99" in checks_part
    assert "(check run)" in checks_part and "\ndecode\tp99 ×" in checks_part
    _, md, _ = run(capsys, "compare", ids["bare-metal"], ids["time-sliced"], "--format", "md")
    assert "**interference matrix: the victim's p99" in md and "| decode | p99 ×" in md


def test_every_layer_the_host_lacks_is_listed_with_why(tmp_path):
    ms = MatrixSettings(layers=("none", "mps", "proxy", "hami"),
                        mps_control=str(tmp_path / "no-such-control"),
                        hami_library=str(tmp_path / "libvgpu.so"))
    proxy = Proxy("interposer", "/lib/libfake.so")
    cpu = {lay.name: lay.unavailable for lay in host_layers(ms, "numpy-cpu", proxy)}
    assert cpu["none"] is None
    assert "CPU backend" in cpu["mps"] and "CPU backend" in cpu["proxy"]
    assert cpu["hami"] == f"no HAMi-core library at {tmp_path / 'libvgpu.so'}"
    gpu = {lay.name: lay.unavailable for lay in host_layers(ms, "cupy", proxy)}
    assert gpu["mps"] == f"no MPS control program ({tmp_path / 'no-such-control'} not found)"
    assert gpu["proxy"] is None and gpu["none"] is None
    (tmp_path / "libvgpu.so").write_bytes(b"")
    hami = next(x for x in host_layers(ms, "cupy", proxy) if x.name == "hami")
    assert hami.unavailable is None and hami.env["CUDA_DEVICE_SM_LIMIT"] == "50"
    # HAMi intercepts only through its redirect; victim and aggressor share one private region
    assert hami.env["CUDA_REDIRECT"] == str(tmp_path / "libvgpu.so")
    assert hami.env["CUDA_DEVICE_MEMORY_SHARED_CACHE"].endswith("cudevshr.cache")
    assert hami.preload == str(tmp_path / "libvgpu.so")


def test_victim_and_aggressor_command_lines():
    s, ms = Settings(backend="cupy", gemm_n=8192), MatrixSettings(windows=5, window_s=0.5)
    v = role_args("decode", "victim", s, ms)
    a = role_args("gemm", "aggressor", s, ms)
    assert v.workloads == ("decode",) and v.decode_batches == ("64",) and v.repeats == 5
    assert a.workloads == ("gemm",) and a.gemm_size == 8192 and a.repeats == 7
    assert role_args("launch", "aggressor", s, ms).launch_modes == ("async",)
    assert role_args("d2d", "aggressor", s, ms).sizes == ("256MiB",)
    assert v.duration == 0.5 and v.stall_limit == 0
    one = role_args("decode", "victim", s, MatrixSettings(victim_batch=1))
    assert one.decode_batches == ("1",)
    assert role_args("decode", "aggressor", s, MatrixSettings(victim_batch=1)).decode_batches \
        == ("8",)


@pytest.mark.parametrize("flags, said", [
    (("--victims", "gemm"), "matrix: unknown victim gemm; choose from decode, roundtrip, launch"),
    (("--layers", "none,vgpu"), "matrix: unknown layer vgpu; choose from none, mps, proxy, hami"),
    (("--windows", "1"), "matrix: --windows must be at least 2 (got 1)"),
    (("--thread-percentage", "0"), "matrix: --thread-percentage must be 1-100 (got 0)"),
    (("--victim-batch", "0"), "matrix: --victim-batch must be 1-4096 (got 0)"),
    (("--victim-batch", "5000"), "matrix: --victim-batch must be 1-4096 (got 5000)"),
])
def test_bad_matrix_flags_are_one_line_and_exit_2(env, capsys, flags, said):
    code, out, err = run(capsys, "check", "--checks", "matrix", "--backend", "numpy-cpu",
                         "--no-save", *flags)
    assert code == 2 and out == ""
    assert f"gpubench check: {said}\n" in err


def test_the_scenarios_mps_table_sets_the_mps_layer_and_a_missing_control_is_said(
        env, capsys):
    store, _, tmp = env
    config = tmp / "config.toml"
    config.write_text(CONFIG + f"""[scenarios.mps-25]
title = "MPS at 25 %"
launcher = "local"
[scenarios.mps-25.mps]
thread_percentage = 25
control = "{tmp / 'no-mps-control'}"
""")
    code, out, err = run(capsys, "check", "--scenario", "mps-25", "--checks", "matrix",
                         "--backend", "cupy", "--layers", "mps", "--no-save")
    assert code == 0, err
    assert "  matrix       NOT APPLICABLE" in out
    assert (f"      MPS 25%: NOT AVAILABLE (no MPS control program "
            f"({tmp / 'no-mps-control'} not found))") in out
    code, out, _ = run(capsys, "check", "--scenario", "mps-25", "--checks", "matrix",
                       "--backend", "cupy", "--layers", "mps", "--thread-percentage", "10",
                       "--no-save")
    assert code == 0 and "MPS 10%: NOT AVAILABLE" in out
