"""The seed's results next to new runs, through the CLI: an imported seed figure against a
measured run, which run @SCENARIO and `report` take, disabled scenarios and sessions that
never started, and the configuration without a config.toml (`gpubench init`)."""
from __future__ import annotations

import numpy as np

from results.document import SessionRecord, archive_lines, build_document, new_run_id
from results.store import Store
from tests.cli.test_cli import env, one_line_error  # noqa: F401  (env is a fixture)
from tests.support.cli_env import run
from tests.support import synth
from tests.support.own_lines import own_lines
from tests.support.cli_env import use_config

SEED = ("Throughput: 6,977 ops/sec\nAverage Latency: 0.14 ms (140 microseconds)\n"
        "p99 Latency: 0.198 ms\nMemory Bandwidth: 4.31 GB/s (H2D), 4.53 GB/s (D2H)\n")


def rows_of(out: str) -> list[list[str]]:
    return [ln.split("\t") for ln in out.splitlines()[2:] if ln]


# ---- an imported seed figure against a measured run -------------------------------------------

def test_seed_round_trip_with_its_size_compares_with_the_measured_round_trip(env, capsys):
    (env.path / "baseline_results.txt").write_text(SEED)
    code, seed_id, _ = run(capsys, "import", "baseline_results.txt", "--scenario",
                           "bare-metal", "--size", "64KiB")
    assert code == 0
    code, out, _ = run(capsys, "compare", seed_id.strip(), "@k8s-pod")
    rows = rows_of(out)
    paired = [r for r in rows if r[:3] == ["roundtrip", "pinned-64KiB", "throughput (ops/s)"]]
    assert len(paired) == 1 and paired[0][4] == "6,977" and paired[0][10] != "NOT COMPARABLE"


def test_seed_figures_without_a_match_are_not_comparable_rows_and_fail_the_gate(env, capsys):
    """Without its size the seed's round trip meets nothing: each figure is a row saying NOT
    COMPARABLE and why (before: an empty table), and --fail-on fails."""
    (env.path / "baseline_results.txt").write_text(SEED)
    code, seed_id, _ = run(capsys, "import", "baseline_results.txt", "--scenario",
                           "bare-metal")
    assert code == 0
    code, out, err = run(capsys, "compare", seed_id.strip(), "@k8s-pod",
                         "--fail-on", "INCONCLUSIVE")
    assert code == 1 and "verdict NOT COMPARABLE" in out.splitlines()[0]
    rows = {(r[0], r[2]): r for r in rows_of(out)}
    rt = rows[("roundtrip", "throughput (ops/s)")]
    assert rt[1] == "legacy" and rt[10] == "NOT COMPARABLE"
    assert "baseline (imported): the seed's text gives no round-trip size" in rt[11]
    assert "`gpubench import --size` records it" in rt[11]
    assert rows[("h2d", "bandwidth (GB/s)")][10] == "NOT COMPARABLE"
    assert any(ln.startswith("gate: 1 of 1 comparisons") for ln in own_lines(err))


def test_import_size_that_is_not_one_is_one_line(env, capsys):
    (env.path / "baseline_results.txt").write_text(SEED)
    code, _, err = run(capsys, "import", "baseline_results.txt", "--scenario", "bare-metal",
                       "--size", "big")
    assert code == 2 and one_line_error(err).startswith("gpubench: --size: not a size: 'big'")


# ---- @SCENARIO and report take the newest complete run ----------------------------------------

def save_partial(store: Store, scenario: str) -> str:
    """A newer, cancelled run of one session (what Ctrl-C after the first trial leaves)."""
    created = "2099-01-01T00:00:00Z"
    recs = [SessionRecord(synth.session_lines(np.random.default_rng(9)), trial=0)]
    doc = build_document(recs, {"name": scenario, "title": scenario, "launcher": "local",
                                "target_pct": 1.0},
                         run_id=new_run_id(scenario, created), created=created,
                         complete=False, incomplete_reason="interrupted after 1 of 10 trials")
    store.save(doc, archive_lines(recs))
    return doc["id"]


def test_at_scenario_prefers_the_newest_complete_run_and_says_so(env, capsys):
    partial = save_partial(env.store, "k8s-pod")
    code, out, err = run(capsys, "show", "@k8s-pod", "--json")
    assert code == 0 and f'"id": "{env.ids["k8s-pod"]}"' in out
    assert one_line_error(err) == (
        f"gpubench: warning: @k8s-pod: its newest run {partial} is incomplete; using "
        f"{env.ids['k8s-pod']}, the newest complete run")
    # a scenario with only a partial: it is used, and said to be incomplete
    env.store.delete(env.ids["k8s-pod"])
    code, out, err = run(capsys, "show", "@k8s-pod", "--json")
    assert code == 0 and f'"id": "{partial}"' in out
    assert one_line_error(err) == (f"gpubench: warning: @k8s-pod: no complete run; using "
                                   f"{partial}, which is incomplete")


def test_report_takes_the_newest_complete_run_and_says_so(env, capsys):
    partial = save_partial(env.store, "k8s-pod")
    code, out, err = run(capsys, "report", "--out", "-")
    assert code == 0 and env.ids["k8s-pod"] in out and partial not in out
    assert f"@k8s-pod: its newest run {partial} is incomplete" in err


# ---- disabled scenarios and sessions that never started ---------------------------------------

DISABLED = """
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip"]
backend = "numpy-cpu"
duration_s = 0.05
warmup_s = 0.0
repeats = 1
trials = 1
[hosts.nowhere]
kind = "ssh"
address = "127.0.0.1"
port = 1
[scenarios.bare-metal]
launcher = "local"
[scenarios.off]
launcher = "local"
enabled = false
[scenarios.far]
launcher = "ssh"
host = "nowhere"
"""


def config_dir(tmp_path, monkeypatch, text: str = DISABLED):
    return use_config(tmp_path, monkeypatch, text)


def test_a_disabled_scenario_is_refused_in_one_line_and_nothing_is_saved(tmp_path, monkeypatch,
                                                                           capsys):
    store = config_dir(tmp_path, monkeypatch)
    code, out, err = run(capsys, "run", "off")
    assert code == 2 and out == ""
    assert one_line_error(err) == ("gpubench: scenario 'off' is disabled (enabled = false in "
                                   f"{tmp_path / 'config.toml'}): set it up there, or pass "
                                   "--enable to run it anyway")
    assert store.list_runs().runs == []
    code, out, _ = run(capsys, "run", "off", "--enable")
    assert code == 0 and [r["scenario"] for r in store.list_runs().runs] == ["off"]


def test_a_run_whose_sessions_never_started_stores_nothing(tmp_path, monkeypatch, capsys):
    store = config_dir(tmp_path, monkeypatch)
    code, out, err = run(capsys, "run", "far", "--trials", "2")
    assert code == 1 and out == ""
    said = [ln for ln in own_lines(err) if "nothing saved" in ln]
    assert said == ["gpubench: far: nothing saved: none of its 2 session(s) started"]
    assert any("ssh nowhere" in ln for ln in own_lines(err))   # each trial's line says why
    assert store.list_runs().runs == []


# ---- without a config.toml, and `gpubench init` -----------------------------------------------

def no_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GPUBENCH_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_without_a_config_the_reference_scenarios_are_known(tmp_path, monkeypatch, capsys):
    no_config(tmp_path, monkeypatch)
    (tmp_path / "k8s-baseline-results.txt").write_text(SEED)
    code, out, _ = run(capsys, "import", "k8s-baseline-results.txt", "--scenario", "k8s-pod")
    assert code == 0
    assert [r["scenario"] for r in Store(tmp_path / "results" / "data").list_runs().runs] == \
        ["k8s-pod"]


def test_init_writes_the_commented_config_and_keeps_an_existing_one(tmp_path, monkeypatch,
                                                                    capsys):
    no_config(tmp_path, monkeypatch)
    code, out, _ = run(capsys, "init")
    written = tmp_path / "config.toml"
    assert code == 0 and out == "config.toml\n" and written.read_text().startswith("# gpubench")
    written.write_text("mine\n")   # not even valid TOML: init does not read it
    code, _, err = run(capsys, "init")
    assert code == 2 and one_line_error(err) == (
        "gpubench: config.toml exists: kept as it is (--force overwrites it)")
    assert written.read_text() == "mine\n"
    assert run(capsys, "init", "--force")[0] == 0 and written.read_text().startswith("# gpubench")
    (tmp_path / "elsewhere").mkdir()
    code, out, _ = run(capsys, "init", "elsewhere")
    assert code == 0 and out == "elsewhere/config.toml\n"
    code, out, _ = run(capsys, "--config", "elsewhere/config.toml", "list", "--format", "json")
    assert code == 0 and out.strip() == "[]"
