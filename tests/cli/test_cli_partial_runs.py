"""A cancelled run as `gpubench list` and `gpubench show` print it: however much of what it
measured counts (VALID), it is marked incomplete, and says why."""
from __future__ import annotations

import json

import numpy as np

from gpubench.runner import PlanOptions, PlanRunner
from results.store import Store
from scenarios.config import load_config
from scenarios.events import Result
from scenarios.replay import ReplayLauncher
from tests.support import synth
from tests.support.cli_env import BARE_METAL_CONFIG, run, use_config

REPEATS = 3


async def cancelled_run(tmp_path, monkeypatch) -> dict:
    """A plan of 3 trials whose second trial is cancelled at its first result, as the
    runner saves it (the first trial whole, the second cut off, the third never run)."""
    use_config(tmp_path, monkeypatch, BARE_METAL_CONFIG)
    config = load_config(tmp_path / "config.toml")
    lines = synth.session_lines(np.random.default_rng(0), workloads=("roundtrip",),
                                repeats=REPEATS)
    speeds = iter((0.0, 1.0))      # the first session at once, the second in real time
    runner = PlanRunner(config, [config.scenarios["bare-metal"]], PlanOptions(seed=1, trials=3),
                        Store(config.data_dir),
                        launcher_factory=lambda s, c: ReplayLauncher(lines, speed=next(speeds)))
    results = []

    def progress(ev):
        if isinstance(getattr(ev, "event", None), Result):
            results.append(ev)
            if len(results) == REPEATS + 1:
                runner.cancel()

    result = await runner.run(progress)
    (doc,) = result.documents
    assert [s["outcome"] for s in doc["sessions"]] == ["completed", "cancelled"]
    assert doc["validity"]["status"] == "VALID" and doc["complete"] is False
    return doc


async def test_list_marks_a_cancelled_run_incomplete_beside_its_validity(tmp_path, monkeypatch,
                                                                         capsys):
    doc = await cancelled_run(tmp_path, monkeypatch)
    code, out, _ = run(capsys, "list")
    assert code == 0
    header, row = out.splitlines()
    listed = dict(zip(header.split("\t"), row.split("\t")))
    assert listed["id"] == doc["id"] and listed["validity"] == "VALID"
    assert listed["flags"] == ("incomplete: interrupted after 2 of 3 trials; 1 of 2 sessions "
                               "cut off")
    code, out, _ = run(capsys, "list", "--format", "json")
    (summary,) = json.loads(out)
    assert summary["complete"] is False and summary["outcome"] == "incomplete"


async def test_show_marks_a_cancelled_run_incomplete_and_names_the_cut_session(tmp_path,
                                                                               monkeypatch,
                                                                               capsys):
    doc = await cancelled_run(tmp_path, monkeypatch)
    code, out, _ = run(capsys, "show", doc["id"])
    assert code == 0
    lines = dict(ln.split(None, 1) for ln in out.split("\n\n")[0].splitlines()
                 if not ln.startswith(("note", "session ")))
    assert lines["outcome"] == ("incomplete: interrupted after 2 of 3 trials; 1 of 2 sessions "
                                "cut off")          # the word once
    assert lines["validity"].startswith("VALID")
    assert lines["sessions"] == "1 completed, 1 cancelled"
    assert "session 1  cancelled: " in out
