"""The `gpubench` CLI: every command, pipe-friendly output, exit codes, and one line per
bad input (never a traceback)."""
from __future__ import annotations

import csv
import io
import json
import sys
import types
from pathlib import Path

import pytest

from gpubench import cli
from gpubench.cli import entry, remove, show, tables
from results.document import archive_lines
from tests.support.cli_env import BARE_METAL_CONFIG, run, use_config
from tests.support.own_lines import own_lines
from tests.support.synth import make_doc

ROOT = Path(__file__).resolve().parents[2]
CONFIG = BARE_METAL_CONFIG + """[scenarios.k8s-pod]
title = "2. Kubernetes Pod (Bare Metal)"
launcher = "local"
target = "k8s"
baseline = "bare-metal"
[scenarios.bare-metal-proxy]
title = "3. With GPU Proxy (No Hypervisor)"
launcher = "local"
target = "proxy"
baseline = "bare-metal"
"""
SEED = "Throughput: 6,977 ops/sec\nAverage Latency: 0.14 ms\np99 Latency: 0.198 ms\n"


@pytest.fixture
def env(tmp_path, monkeypatch):
    store = use_config(tmp_path, monkeypatch, CONFIG)
    ids = {}
    for seed, (name, scale, target) in enumerate([("bare-metal", 1.0, None),
                                                  ("k8s-pod", 0.90, 1.0),
                                                  ("bare-metal-proxy", 1.0, 5.0)]):
        doc, recs = make_doc(seed, scenario=name, scale=scale, target_pct=target, sessions=10,
                             label="nightly" if name == "k8s-pod" else "")
        store.save(doc, archive_lines(recs))
        ids[name] = doc["id"]
    return types.SimpleNamespace(path=tmp_path, store=store, ids=ids)



def one_line_error(err: str) -> str:
    lines = own_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ---- list / show ------------------------------------------------------------------------------

def test_list_is_tab_separated_in_a_pipe_and_filters(env, capsys):
    code, out, _ = run(capsys, "list")
    rows = out.splitlines()
    assert code == 0 and rows[0].split("\t")[:3] == ["id", "created (UTC)", "scenario"]
    assert sorted(r.split("\t")[0] for r in rows[1:]) == sorted(env.ids.values())
    _, out, _ = run(capsys, "list", "--scenario", "k8s-pod")
    assert [r.split("\t")[0] for r in out.splitlines()[1:]] == [env.ids["k8s-pod"]]
    _, out, _ = run(capsys, "list", "--label", "night")
    assert [r.split("\t")[0] for r in out.splitlines()[1:]] == [env.ids["k8s-pod"]]
    _, out, _ = run(capsys, "list", "--host", "gpu-node-1", "--since", "2000-01-01")
    assert len(out.splitlines()) == 4
    _, out, _ = run(capsys, "list", "--until", "2000-01-01")
    assert out.splitlines()[1:] == []
    _, out, _ = run(capsys, "list", "--format", "json")
    assert len(json.loads(out)) == 3


def test_list_skips_a_corrupt_file_with_a_warning(env, capsys):
    (env.store.dir / "20260101-000000-x-000000.json").write_text('{"schema_version": 1, "id"')
    code, out, err = run(capsys, "list")
    assert code == 0 and len(out.splitlines()) == 4
    line = one_line_error(err)
    assert line.startswith("gpubench: warning: skipped 20260101-000000-x-000000.json:") and "truncated" in line


def test_show_prints_facts_and_workloads(env, capsys):
    code, out, _ = run(capsys, "show", env.ids["k8s-pod"][:24])
    assert code == 0
    assert f"run       {env.ids['k8s-pod']}" in out and "validity  VALID" in out
    assert "NVIDIA H100 80GB HBM3" in out and "10 completed" in out
    assert "roundtrip\tpinned-64KiB\t30/30" in out
    code, out, _ = run(capsys, "show", "@k8s-pod", "--json")
    assert json.loads(out)["id"] == env.ids["k8s-pod"]


def test_list_and_show_say_how_many_trials_of_each_metric_count(env, capsys):
    # one session, three round trips of which two are invalid: VALID, but one trial of the
    # headline counts, too few for a confidence interval
    doc, recs = make_doc(3, scenario="bare-metal", sessions=1, invalid_every=2,
                         workloads=("h2d", "roundtrip"))
    assert doc["validity"]["status"] == "VALID"
    env.store.save(doc, archive_lines(recs))
    _, out, _ = run(capsys, "list")
    header, *rows = [r.split("\t") for r in out.splitlines()]
    [row] = [r for r in rows if r[0] == doc["id"]]
    assert row[header.index("validity")] == "FEW RESULTS"
    assert row[header.index("counted")] == "1/3"
    others = [r for r in rows if r[0] in env.ids.values()]
    assert {(r[header.index("validity")], r[header.index("counted")]) for r in others} == \
        {("VALID", "30/30")}
    _, out, _ = run(capsys, "show", doc["id"])
    assert "validity  FEW RESULTS (1/3 roundtrip results count; too few for a CI)" in out
    assert "counted   h2d/pinned-256MiB 2/3, roundtrip/pinned-64KiB 1/3" in out


@pytest.mark.parametrize("argv, expected", [
    (("show", "nope"), "gpubench: no run 'nope' in "),
    (("show", "2026"), "gpubench: run id '2026' is ambiguous"),
    (("show", "@k8s-proxy"), "gpubench: no stored run of scenario 'k8s-proxy'"),
    (("export", "nope"), "gpubench: no run 'nope'"),
    (("compare", "nope", "nope2"), "gpubench: no run 'nope'"),
    (("delete", "nope", "--yes"), "gpubench: no run 'nope'"),
])
def test_unknown_run_ids(env, capsys, argv, expected):
    code, _, err = run(capsys, *argv)
    assert code == 2 and one_line_error(err).startswith(expected)


@pytest.mark.parametrize("content, expected", [
    ('{"schema_version": 1, "id": "x", "crea', "is truncated"),
    ("\x00garbage", "is corrupt"),
    ('{"schema_version": 7, "id": "x"}', "schema version 7 is newer than this gpubench reads"),
])
def test_show_bad_file_is_one_line(env, capsys, content, expected):
    (env.store.dir / "20260101-000000-bad-000000.json").write_text(content)
    code, _, err = run(capsys, "show", "20260101-000000-bad-000000")
    assert code == 2 and expected in one_line_error(err)


# ---- compare ----------------------------------------------------------------------------------

def test_compare_gate_exit_codes(env, capsys):
    b, k, p = env.ids["bare-metal"], env.ids["k8s-pod"], env.ids["bare-metal-proxy"]
    code, out, err = run(capsys, "compare", b, k)            # 10 % slower vs 1 % target
    assert code == 1 and "verdict FAIL" in out and "gate: 1 of 1" in err
    code, out, _ = run(capsys, "compare", b, p, "--metrics", "ops_per_s", "--target", "50")
    assert code == 0 and "verdict PASS" in out
    code, _, _ = run(capsys, "compare", b, p, "--metrics", "ops_per_s")  # same speed vs 5 %
    assert code in (0, 1)
    code, _, _ = run(capsys, "compare", b, p, "--target", "0.01", "--fail-on", "INCONCLUSIVE")
    assert code == 1


def test_compare_formats(env, capsys):
    b, k, p = env.ids["bare-metal"], env.ids["k8s-pod"], env.ids["bare-metal-proxy"]
    _, out, _ = run(capsys, "compare", b, k, p, "--format", "json")
    data = json.loads(out)
    assert [c["cand_id"] for c in data["comparisons"]] == [k, p]
    assert data["comparisons"][0]["verdict"] == "FAIL"
    _, out, _ = run(capsys, "compare", b, k, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and {r["cand_id"] for r in rows} == {k}
    _, out, _ = run(capsys, "compare", b, k, "--format", "md")
    assert out.startswith("### k8s-pod") and "| workload | variant |" in out


def test_compare_incompatible_runs_refused_unless_forced(env, capsys):
    other, _ = make_doc(9, scenario="k8s-pod", driver="575.57", sessions=10)
    env.store.save(other)
    b = env.ids["bare-metal"]
    code, _, err = run(capsys, "compare", b, other["id"])
    line = one_line_error(err)
    assert code == 2 and "not comparable: driver 580.159.04 vs 575.57" in line and "--force" in line
    code, out, _ = run(capsys, "compare", b, other["id"], "--force")
    assert code in (0, 1) and "FORCED: runs are not comparable (driver 580.159.04 vs 575.57)" in out
    _, out, _ = run(capsys, "compare", b, other["id"], "--force", "--format", "json")
    assert json.loads(out)["comparisons"][0]["forced"] == ["driver 580.159.04 vs 575.57"]


def test_compare_invalid_run_excluded_unless_included(env, capsys):
    bad, _ = make_doc(8, scenario="k8s-pod", layer_reasons=["proxy not mapped"], sessions=10)
    env.store.save(bad)
    code, out, err = run(capsys, "compare", env.ids["bare-metal"], bad["id"], "--format", "json")
    rows = json.loads(out)["comparisons"][0]["rows"]
    assert rows and {r["verdict"] for r in rows} == {"NOT COMPARABLE"} and "INVALID" in err
    assert code == 1     # a metric that could not be judged fails the gate
    _, out, _ = run(capsys, "compare", env.ids["bare-metal"], bad["id"], "--format", "json",
                    "--include-invalid")
    assert json.loads(out)["comparisons"][0]["rows"]


# ---- import / export / report -----------------------------------------------------------------

def test_import_export_roundtrip(env, capsys):
    (env.path / "baseline_results.txt").write_text(SEED)
    code, out, _ = run(capsys, "import", "baseline_results.txt", "--scenario", "bare-metal")
    run_id = out.strip()
    assert code == 0 and env.store.load(run_id)["imported"] is True
    code, out, _ = run(capsys, "export", run_id)
    assert code == 0 and [ln for ln in out.splitlines() if "Throughput:" in ln] == \
        ["Throughput: 6,977 ops/sec"]
    _, out, _ = run(capsys, "list")
    assert "imported" in [r for r in out.splitlines() if r.startswith(run_id)][0]
    code, out, _ = run(capsys, "export", env.ids["k8s-pod"], "--format", "csv")
    assert code == 0 and out.startswith("run_id,")
    code, _, _ = run(capsys, "export", env.ids["k8s-pod"], "--format", "json", "--out", "x.json")
    assert code == 0 and json.loads((env.path / "x.json").read_text())["id"] == env.ids["k8s-pod"]


def test_export_into_a_folder_is_named_after_the_run_id_and_stays_there(env, capsys):
    (env.path / "out").mkdir()
    run_id = env.ids["k8s-pod"]
    code, _, err = run(capsys, "export", run_id[:20], "--format", "csv", "--out", "out")
    assert code == 0 and sorted(p.name for p in (env.path / "out").iterdir()) == \
        [f"{run_id}.csv"]
    assert (env.path / "out" / f"{run_id}.csv").read_text().startswith("run_id,")


def test_list_in_a_pipe_is_one_line_per_run_whatever_a_label_holds(env, capsys):
    doc, recs = make_doc(5, scenario="bare-metal", sessions=1,
                         label="line one\nforged\trow\r\nthree")
    env.store.save(doc, archive_lines(recs))
    code, out, _ = run(capsys, "list")
    rows = out.splitlines()
    assert code == 0 and len(rows) == 5
    [row] = [r for r in rows if r.startswith(doc["id"])]
    assert row.split("\t")[rows[0].split("\t").index("label")] == "line one forged row three"


@pytest.mark.parametrize("setup, argv, expected", [
    (lambda p: (p / "notes.txt").write_text("Average Latency: 0.1 ms\n"),
     ("import", "notes.txt", "--scenario", "bare-metal"),
     "gpubench: notes.txt: no 'Throughput: N ops/sec' line found"),
    (lambda p: None, ("import", "missing.txt", "--scenario", "bare-metal"),
     "gpubench: missing.txt: file not found"),
    (lambda p: (p / "a.txt").write_text(SEED), ("import", "a.txt", "--scenario", "nope"),
     "gpubench: unknown scenario 'nope'"),
    (lambda p: (p / "a.txt").write_text(SEED), ("import", "a.txt"),
     "gpubench: the following arguments are required: --scenario"),
])
def test_import_bad_input(env, capsys, setup, argv, expected):
    setup(env.path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and one_line_error(err).startswith(expected)


def test_report_writes_comparison_md(env, capsys):
    code, _, err = run(capsys, "report", "--out", "comparison.md")
    text = (env.path / "comparison.md").read_text()
    assert code == 0 and "wrote comparison.md" in err
    for title in ("1. Baseline (Bare Metal)", "2. Kubernetes Pod (Bare Metal)",
                  "3. With GPU Proxy (No Hypervisor)"):
        assert f"| {title} |" in text
    assert "| < 1% | FAIL |" in text


def test_report_with_the_shipped_config_lists_the_five_reference_scenarios(env, capsys):
    code, out, _ = run(capsys, "--config", str(ROOT / "config.toml"), "--data-dir",
                       str(env.store.dir), "report", "--out", "-")
    assert code == 0
    for n in range(1, 6):
        assert f"\n| {n} | {n}. " in out


# ---- delete -----------------------------------------------------------------------------------

class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_delete_asks_and_refuses_without_a_terminal(env, capsys, monkeypatch):
    k = env.ids["k8s-pod"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "delete", k)
    assert code == 2 and "without confirmation" in one_line_error(err) and "--yes" in err
    monkeypatch.setattr(sys, "stdin", FakeTTY("n\n"))
    code, _, err = run(capsys, "delete", k)
    assert code == 1 and "kept" in err and env.store.doc_path(k).exists()
    monkeypatch.setattr(sys, "stdin", FakeTTY("y\n"))
    code, _, _ = run(capsys, "delete", k)
    assert code == 0 and not env.store.doc_path(k).exists()
    code, _, _ = run(capsys, "delete", env.ids["bare-metal"], "--yes")
    assert code == 0 and not env.store.doc_path(env.ids["bare-metal"]).exists()


# ---- bad arguments, config, unexpected errors, extension points -------------------------------

@pytest.mark.parametrize("argv, expected", [
    (("frobnicate",), "gpubench: argument COMMAND: invalid choice: 'frobnicate'"),
    (("compare", "only-base"), "gpubench: the following arguments are required: CAND"),
    (("compare", "a", "b", "--format", "xml"), "gpubench: argument --format: invalid choice"),
    (("run", "--trials", "0"), "gpubench: argument --trials: must be at least 1 (got 0)"),
    (("run", "--trials", "many"), "gpubench: argument --trials: invalid int value: 'many'"),
    (("run", "nope"), "gpubench: unknown scenario 'nope'"),
    (("run", "--workloads", "roundtrip,warp"), "gpubench: unknown workload 'warp'"),
    (("list", "--since", "yesterday"), "gpubench: not a date: 'yesterday'"),
])
def test_bad_arguments_are_one_line(env, capsys, argv, expected):
    code, _, err = run(capsys, *argv)
    assert code == 2 and one_line_error(err).startswith(expected)


def test_config_error_is_its_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nrepeats = 'three'\n")
    code, _, err = run(capsys, "--config", str(bad), "list")
    assert code == 2 and one_line_error(err) == \
        f"{bad}: defaults.repeats: must be an integer (got 'three')"
    code, _, err = run(capsys, "--config", str(tmp_path / "none.toml"), "list")
    assert code == 2 and one_line_error(err).endswith("none.toml: file not found")


def test_unexpected_exception_is_one_line_with_a_debug_hint(env, capsys, monkeypatch):
    def boom(args, config):
        raise RuntimeError("kaboom")
    monkeypatch.setattr(show, "cmd_list", boom)
    code, _, err = run(capsys, "list")
    assert code == 2 and one_line_error(err) == \
        "gpubench: unexpected error: RuntimeError: kaboom (run with --debug for details)"
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "list"])


def test_registered_commands_get_their_args_and_the_config(env, capsys, monkeypatch):
    def register(subparsers):
        p = subparsers.add_parser("selftest", help="fake")
        p.add_argument("--n", type=int, default=3)
        p.set_defaults(func=lambda args, config: args.n + (0 if config.scenarios else 100))
    monkeypatch.setattr(entry, "COMMANDS", (register,))
    assert cli.main(["selftest", "--n", "4"]) == 4


def test_cleanup_calls_the_k8s_helper_per_enabled_cluster(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[clusters.lab]\nnamespace = "gpubench"\n[clusters.off]\nenabled = false\n')
    calls = []
    monkeypatch.setattr(remove, "cleanup_leftovers", lambda cluster, **kw: calls.append(
        (cluster.name, kw)) or types.SimpleNamespace(removed=["pod/gpubench-abc"], kept=[],
                                                    kept_objects=0))
    code, out, err = run(capsys, "--config", str(cfg), "cleanup")
    assert code == 0 and out == "lab\tpod/gpubench-abc\n"
    assert calls == [("lab", {"everything": False, "dry_run": False})]
    assert "lab: removed 1 leftover object(s), kept 0" in err
    code, _, err = run(capsys, "--config", str(cfg), "cleanup", "--cluster", "zzz")
    assert code == 2 and "unknown cluster 'zzz'" in one_line_error(err)


def test_full_disk_on_import_is_one_line(env, capsys, monkeypatch):
    import errno
    from results import store as store_mod
    (env.path / "a.txt").write_text(SEED)
    real = store_mod.os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(store_mod.os, "write", full)
    before = sorted(p.name for p in env.store.dir.iterdir())
    code, _, err = run(capsys, "import", "a.txt", "--scenario", "bare-metal")
    monkeypatch.setattr(store_mod.os, "write", real)
    assert code == 2 and "no space left on device" in one_line_error(err)
    assert sorted(p.name for p in env.store.dir.iterdir()) == before


def test_terminal_output_is_a_rich_table(env, capsys, monkeypatch):
    monkeypatch.setattr(tables, "is_tty", lambda: True)
    monkeypatch.setenv("COLUMNS", "220")
    code, out, _ = run(capsys, "list")
    assert code == 0 and "\t" not in out
    header = out.splitlines()[0]
    assert "scenario" in header and "validity" in header
    assert sum(1 for ln in out.splitlines() if env.ids["k8s-pod"][:15] in ln) >= 1
    code, out, err = run(capsys, "compare", env.ids["bare-metal"], env.ids["k8s-pod"])
    assert code == 1 and "verdict FAIL" in out and "\t" not in out and "FAIL" in out


def test_show_formats_cuda_version_and_marks_cpu_runs(env, capsys):
    _, out, _ = run(capsys, "show", env.ids["bare-metal"])
    assert "driver 580.159.04, CUDA 13.0, backend cupy" in out
