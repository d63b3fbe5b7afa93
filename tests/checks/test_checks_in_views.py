"""Isolation-check verdicts sit beside the overhead verdicts. The check runs here
come from the real `gpubench check --scenario X` (the ctypes probes against the fake libcuda,
gpubench's interposer as the scenario's proxy layer); `compare` in every format, `report`'s
comparison.md and `show` then read them from the store."""
from __future__ import annotations

import csv
import io
import json

import pytest

from gpubench.checks.memory_probe import MEMORY_PATHS
from results.check_verdicts import check_rows, comparison_checks, latest_check_run
from results.document import archive_lines
from results.report import (ReportScenario, comparison_report, to_csv, to_json, to_markdown,
                            to_tsv)
from results.comparison import compare_runs
from results.store import Store
from tests.checks.fixed_checks import fixed_check_document
from tests.support.synth import make_doc
from tests.support.cli_env import BARE_METAL_CONFIG, run

MIB = 1 << 20
CONFIG = BARE_METAL_CONFIG + """[scenarios.bare-metal-proxy]
title = "3. With GPU Proxy (No Hypervisor)"
launcher = "local"
target = "proxy"
baseline = "bare-metal"
[scenarios.bare-metal-proxy.proxy]
preload = "{lib}"
env = {{ GPUBENCH_INTERPOSE_MEM_LIMIT_BYTES = "{mem}", GPUBENCH_INTERPOSE_LAUNCH_RATE = "2000" }}
[scenarios.proxy-nocap]
title = "4. A proxy that claims limits it does not apply"
launcher = "local"
target = "proxy"
baseline = "bare-metal"
[scenarios.proxy-nocap.proxy]
preload = "{lib}"
"""


@pytest.fixture
def env(tmp_path, monkeypatch, fake_driver, interposer_lib):
    monkeypatch.setenv("GPUBENCH_CACHE_DIR", str(interposer_lib.parent))
    (tmp_path / "config.toml").write_text(CONFIG.format(lib=interposer_lib, mem=32 * MIB))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUBENCH_CONFIG", str(tmp_path / "config.toml"))
    store = Store(tmp_path / "data")
    ids = {}
    for seed, (name, scale) in enumerate([("bare-metal", 1.0), ("bare-metal-proxy", 0.97),
                                          ("proxy-nocap", 0.99)]):
        doc, recs = make_doc(seed, scenario=name, scale=scale, target_pct=5.0, sessions=6)
        store.save(doc, archive_lines(recs))
        ids[name] = doc["id"]
    return store, ids, str(fake_driver / "libcuda.so.1")



def gpubench_check(capsys, libcuda: str, scenario: str, *extra: str) -> str:
    code, out, err = run(capsys, "check", "--scenario", scenario, "--checks", "memory,compute",
                         "--mem-step", "4M", "--backend", "numpy-cpu", "--libcuda", libcuda,
                         "--seconds", "0.2", *extra)
    assert code == 0, err
    return out.strip().splitlines()[-1].removeprefix("saved run ")


def test_compare_shows_the_candidates_check_verdicts_in_every_format(env, capsys):
    store, ids, libcuda = env
    check_id = gpubench_check(capsys, libcuda, "bare-metal-proxy")
    assert store.load(check_id)["scenario"]["name"] == "check-bare-metal-proxy"
    b, p = ids["bare-metal"], ids["bare-metal-proxy"]

    code, out, _ = run(capsys, "compare", b, p)                      # a pipe: TSV
    assert code in (0, 1)
    head, checks_part = out.split("# isolation checks\n")
    assert "roundtrip\tpinned-64KiB" in head
    lines = checks_part.splitlines()
    assert lines[0] == "role\trun\tcheck\tverdict\tobserved\tconfigured\treason"
    rows = {ln.split("\t")[2]: ln.split("\t") for ln in lines[1:]}
    assert rows["memory"][:4] == ["check run", check_id, "memory", "ENFORCED"]
    assert rows["memory"][5] == "32 MiB" and rows["memory"][4] == "7 ENFORCED"
    for path in MEMORY_PATHS:                      # then one row per allocation path
        row = rows[f"memory/{path}"]
        assert row[3] == "ENFORCED" and row[4].startswith("refused at ") and row[5] == "32 MiB"
        assert "refused with CUDA_ERROR_OUT_OF_MEMORY" in row[6]
    assert rows["compute"][3] == "ENFORCED" and rows["compute"][5] == "2,000 launches/s"
    assert "cuLaunchKernelEx" in rows["compute"][4]

    _, out, _ = run(capsys, "compare", b, p, "--format", "md")
    assert "**Isolation checks**" in out
    assert f"| check run | {check_id} | memory | ENFORCED | 7 ENFORCED |" in out
    assert f"| check run | {check_id} | memory/cuMemCreate | ENFORCED | refused at " in out

    _, out, _ = run(capsys, "compare", b, p, "--format", "json")
    got = json.loads(out)["comparisons"][0]["checks"]
    assert [(c["check"], c["verdict"], c["role"], c["run"]) for c in got] == \
        [("memory", "ENFORCED", "check run", check_id),
         ("compute", "ENFORCED", "check run", check_id)] + \
        [(f"memory/{p}", "ENFORCED", "check run", check_id) for p in MEMORY_PATHS]
    assert got[0]["reasons"] and got[0]["scenario"] == "bare-metal-proxy"

    _, out, _ = run(capsys, "compare", b, p, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    overhead = [r for r in rows if r["workload"] != "isolation-check"]
    checks = [r for r in rows if r["workload"] == "isolation-check"]
    assert overhead and all(r["check_run"] == "" for r in overhead)
    assert [(r["variant"], r["verdict"], r["check_run"]) for r in checks] == \
        [("memory", "ENFORCED", check_id), ("compute", "ENFORCED", check_id)] + \
        [(f"memory/{p}", "ENFORCED", check_id) for p in MEMORY_PATHS]
    assert checks[0]["check_configured"] == "32 MiB" and checks[0]["cand_id"] == p


def test_a_limit_the_proxy_does_not_apply_shows_not_enforced(env, capsys):
    """The proxy is preloaded but applies no cap; the limits it claims are checked."""
    store, ids, libcuda = env
    check_id = gpubench_check(capsys, libcuda, "proxy-nocap", "--mem-limit", "32M",
                              "--launch-rate", "2000")
    _, out, _ = run(capsys, "compare", ids["bare-metal"], ids["proxy-nocap"], "--format", "json")
    got = {c["check"]: c for c in json.loads(out)["comparisons"][0]["checks"]}
    assert got["memory"]["verdict"] == got["compute"]["verdict"] == "NOT ENFORCED"
    assert got["memory"]["run"] == check_id and got["memory"]["observed"] == "7 NOT ENFORCED"
    assert got["memory/cuMemAllocAsync"]["observed"] == "44 MiB allocated, never refused"
    # no check run of bare-metal-proxy yet: its comparison has no check rows
    _, out, _ = run(capsys, "compare", ids["bare-metal"], ids["bare-metal-proxy"], "--format",
                    "json")
    assert json.loads(out)["comparisons"][0]["checks"] == []
    _, out, _ = run(capsys, "compare", ids["bare-metal"], ids["bare-metal-proxy"])
    assert "isolation checks" not in out


def test_report_lists_each_scenarios_newest_check_verdicts(env, capsys):
    store, ids, libcuda = env
    gpubench_check(capsys, libcuda, "bare-metal-proxy", "--tolerance", "0.15")
    newer = gpubench_check(capsys, libcuda, "bare-metal-proxy")
    code, out, _ = run(capsys, "report", "--out", "-")
    assert code == 0
    section = out.split("## Isolation checks")[1].split("## Details")[0]
    assert "| 1 | 1. Baseline (Bare Metal) | no isolation check run | — |" in section
    assert (f"| 2 | 3. With GPU Proxy (No Hypervisor) | {newer} | memory | ENFORCED | "
            f"7 ENFORCED |") in section
    assert f"| {newer} | memory/cuMemAllocPitch_v2 | ENFORCED | refused at " in section
    assert f"| {newer} | compute | ENFORCED |" in section
    assert ("| 3 | 4. A proxy that claims limits it does not apply | no isolation check run "
            "| — | — | — | — | `gpubench check --scenario proxy-nocap` |") in section
    # the check runs themselves are not reference scenarios: the summary table is unchanged
    assert "check-bare-metal-proxy" not in out.split("## Isolation checks")[0]


def test_show_prints_the_verdicts_of_a_check_run(env, capsys):
    store, ids, libcuda = env
    check_id = gpubench_check(capsys, libcuda, "bare-metal-proxy")
    code, out, _ = run(capsys, "show", check_id)
    assert code == 0
    assert "# isolation checks\ncheck\tverdict\tobserved\tconfigured\treason\n" in out
    assert "\nmemory\tENFORCED\t7 ENFORCED\t32 MiB\t" in out and "\ncompute\tENFORCED\t" in out
    assert "\nmemory/cuMemAllocManaged\tENFORCED\trefused at " in out
    # the compute loads over time: steady share, overshoot and settle time, one line each
    section = out.split("# compute share over time (0.05 s intervals); tenants B/A ")[1]
    lines = section.split("\n\n")[0].splitlines()[1:]
    assert lines[0] == "load\tsteady share\tlimit\tovershoot\tsettle\tceiling"
    assert [ln.split("\t")[0] for ln in lines[1:4]] == ["cuLaunchKernel", "cuLaunchKernelEx",
                                                       "launch+sync"]
    assert all(ln.split("\t")[5] == "held" and ln.split("\t")[3].endswith("/s")
               and ln.split("\t")[2].endswith(" (2,000/s)") for ln in lines[1:4])


def test_an_init_check_run_is_saved_and_show_prints_its_table(env, capsys):
    """Start-up under the proxy: N processes at once, bare and under the scenario's proxy,
    time to first kernel p50/p99 per N, saved as a check run and printed by `show`."""
    store, ids, libcuda = env
    code, out, err = run(capsys, "check", "--scenario", "bare-metal-proxy", "--checks", "init",
                         "--init-procs", "1,3", "--repeats", "1", "--backend", "numpy-cpu")
    assert code == 0, err
    assert "      processes\tbare p50\tbare p99\tproxy p50\tproxy p99\t" in out
    check_id = out.strip().splitlines()[-1].removeprefix("saved run ")
    assert store.load(check_id)["checks_summary"] == {"init": "MEASURED"}
    code, out, _ = run(capsys, "show", check_id)
    assert code == 0
    section = out.split("# time to first kernel (ms), under bare-metal-proxy against bare\n")[1]
    lines = section.split("\n\n")[0].splitlines()
    assert lines[0].split("\t")[:5] == ["processes", "bare p50", "bare p99", "proxy p50",
                                        "proxy p99"]
    assert [ln.split("\t")[0] for ln in lines[1:]] == ["1", "3"]
    assert all(ln.split("\t")[-1] == "0" for ln in lines[1:])     # no child failed


# ---- the same views from a fixed check run (the shape gpubench.checks writes) ----------------

def test_report_functions_from_a_fixed_check_document():
    base, _ = make_doc(0, scenario="bare-metal", sessions=4)
    cand, _ = make_doc(1, scenario="bare-metal-proxy", scale=0.97, sessions=4, target_pct=5.0)
    check = fixed_check_document("bare-metal-proxy", run_id="20261119-080000-check-x-dddddd",
                                 created="2026-11-19T08:00:00Z")
    comp = compare_runs(base, cand, target_pct=5.0)
    comp.checks = comparison_checks(base, cand, check)
    verdicts = [(c["check"], c["verdict"]) for c in comp.checks]
    assert verdicts == [("memory", "ENFORCED"), ("compute", "NOT ENFORCED"),
                        ("interference", "NOT APPLICABLE")] + \
        [(f"memory/{p}", "NOT SUPPORTED" if p == "cuMemAllocManaged" else "ENFORCED")
         for p in MEMORY_PATHS]
    assert comp.checks[0]["observed"] == "6 ENFORCED, 1 NOT SUPPORTED"
    compute = comp.checks[1]
    # each load's steady rate against the cap, its overshoot and when it settled under it
    assert compute["observed"].startswith(
        "cuLaunchKernel steady 1,992/s, overshoot +588/s, settle 0.25 s; "
        "cuLaunchKernelEx steady 247,500/s, overshoot +245,500/s, settle never; ")
    assert compute["observed"].endswith("; tenants ratio 3.00 (configured 3.00)")
    assert compute["reason"].startswith("cuLaunchKernelEx: ")
    md = to_markdown([comp])
    assert "| check run | 20261119-080000-check-x-dddddd | compute | NOT ENFORCED |" in md
    assert json.loads(to_json([comp]))["comparisons"][0]["checks"][2]["verdict"] == \
        "NOT APPLICABLE"
    assert "# isolation checks" in to_tsv([comp])
    assert to_csv([comp]).splitlines()[0].endswith(",gpu,base_backend,cand_backend," + ",".join(
        ("check_role", "check_run", "check_observed", "check_configured", "check_reason")))
    # a comparison without checks keeps the old shape exactly
    plain = compare_runs(base, cand, target_pct=5.0)
    assert to_csv([plain]).splitlines()[0].endswith(",forced,gpu,base_backend,cand_backend")
    assert "isolation" not in to_tsv([plain]).lower() and "Isolation" not in to_markdown([plain])
    # a check run compared as a candidate itself is listed once, as the candidate's
    assert [c["role"] for c in comparison_checks(base, check, check)] == \
        ["candidate"] * (3 + len(MEMORY_PATHS))

    scen = [ReportScenario("bare-metal", "1. Bare metal"),
            ReportScenario("bare-metal-proxy", "3. Proxy", 5.0, "bare-metal")]
    text = comparison_report(scen, {"bare-metal": base, "bare-metal-proxy": cand},
                             lambda b, c, sc: compare_runs(b, c, target_pct=sc.target_pct),
                             generated="2026-11-25 10:00 UTC",
                             checks={"bare-metal": None, "bare-metal-proxy": check})
    assert "| 1 | 1. Bare metal | no isolation check run |" in text
    assert "| 2 | 3. Proxy | 20261119-080000-check-x-dddddd | compute | NOT ENFORCED |" in text
    without = comparison_report(scen, {"bare-metal": base, "bare-metal-proxy": cand},
                                lambda b, c, sc: compare_runs(b, c, target_pct=sc.target_pct),
                                generated="2026-11-25 10:00 UTC")
    assert "Isolation checks" not in without


def test_latest_check_run_is_the_newest_readable_one(tmp_path):
    store = Store(tmp_path)
    old = fixed_check_document(run_id="20261101-000000-check-a-aaaaaa",
                               created="2026-11-01T00:00:00Z")
    new = fixed_check_document(run_id="20261102-000000-check-a-bbbbbb",
                               created="2026-11-02T00:00:00Z")
    store.save(old)
    store.save(new)
    assert latest_check_run(store, "bare-metal-proxy")["id"] == new["id"]
    assert latest_check_run(store, "bare-metal") is None
    assert check_rows(None) == [] and check_rows({"id": "x"}) == []
