"""Nothing measured is lost: each finished trial is in the run's journal before the next one
begins; a run killed before its save is listed as cut off and `gpubench recover` saves its
finished trials (or discards them); a full disk stops the plan and keeps what was measured."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from gpubench.runner import PlanOptions, PlanRunner, RunSaved, SaveFailed
from results import journal as journal_mod
from results.document import SessionRecord, archive_lines
from results.journal import JournalWriter, read_journal
from results.schema import StoreError
from results.store import Store
from tests.cli.test_cli_e2e import ROOT, gpubench_cmd
from tests.cli.test_cli_runner import make_config, replay_factory
from tests.support import synth
from tests.support.cli_env import run

CONFIG = """
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip"]
duration_s = 0.2
warmup_s = 0.0
repeats = 1
trials = 30
backend = "numpy-cpu"
[scenarios.bare-metal]
launcher = "local"
"""


def gb(workdir, *args):
    env = dict(os.environ, GPUBENCH_CONFIG=str(workdir / "config.toml"), PYTHONPATH=str(ROOT))
    return subprocess.run([*gpubench_cmd(), *args], cwd=workdir, capture_output=True, text=True,
                          env=env, timeout=120)


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def journal_trials(data: Path) -> tuple[Path | None, int]:
    """The journal in `data` and how many whole trials it holds (lines after the header)."""
    for path in data.glob("*.journal.jsonl"):
        body = path.read_bytes()
        return path, max(0, body[: body.rfind(b"\n") + 1].count(b"\n") - 1)
    return None, 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_a_run_killed_mid_plan_keeps_every_finished_trial(tmp_path, sig):
    """A real `gpubench run` on the CPU backend, killed once a trial is in its journal:
    kill -9 (nothing runs after it) and SIGHUP (a closed terminal). What was finished is
    either saved or recoverable: `list` shows the run cut off, `recover` saves it."""
    (tmp_path / "config.toml").write_text(CONFIG)
    env = dict(os.environ, GPUBENCH_CONFIG=str(tmp_path / "config.toml"), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([*gpubench_cmd(), "run", "bare-metal"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    engines: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        finished = 0
        while finished < 1 and time.monotonic() < deadline and proc.poll() is None:
            engines.update(children(proc.pid))
            _, finished = journal_trials(tmp_path / "data")
            time.sleep(0.02)
        assert finished >= 1, "no trial reached the journal"
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
        for pid in engines | set(children(proc.pid)):   # engines this test started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    store = Store(tmp_path / "data")
    saved = store.list_runs().runs
    if sig == signal.SIGHUP and saved:        # the CLI handled the hang-up and saved
        doc = store.load(saved[0]["id"])
        assert doc["complete"] is False and len(doc["sessions"]) >= finished
        return
    path, kept = journal_trials(tmp_path / "data")
    assert path is not None and kept >= finished and saved == []
    run_id = path.name.removesuffix(".journal.jsonl")

    listing = gb(tmp_path, "list")
    [row] = listing.stdout.splitlines()[1:]
    assert listing.returncode == 0 and row.startswith(run_id)
    assert row.endswith(f"incomplete, not saved: cut off after {kept} of 30 trials "
                        f"(gpubench recover {run_id})")
    assert gb(tmp_path, "show", run_id).returncode == 2     # not a saved run yet

    journal = read_journal(path)
    raw = archive_lines([r for _, recs in journal.trials for r in recs])
    rec = gb(tmp_path, "recover", run_id[:20])
    assert rec.returncode == 0 and rec.stdout.split() == [run_id], rec.stderr
    assert f"incomplete: cut off after {kept} of 30 trials" in rec.stderr
    assert not path.exists()

    doc = store.load(run_id)
    assert doc["complete"] is False and doc["outcome"] == "incomplete"
    assert doc["incomplete_reason"] == f"cut off after {kept} of 30 trials"
    assert [s["outcome"] for s in doc["sessions"]] == ["completed"] * kept
    [wl] = doc["workloads"]
    measured = [json.loads(x) for x in raw if '"type":"result"' in x]
    assert [t["ops_per_s"] for t in wl["trials"]] == [m["ops_per_s"] for m in measured]
    assert store.raw_lines(run_id) == raw                   # the raw stream too
    assert doc["backend"] == "numpy-cpu" and doc["group"]["seed"] is not None
    listing = gb(tmp_path, "list")
    assert listing.stdout.splitlines()[1].endswith(f"incomplete: cut off after {kept} of 30 "
                                                   f"trials")
    assert gb(tmp_path, "recover", run_id).returncode == 2  # nothing left to recover


def write_cut_off_journal(store: Store, run_id: str, trials: int, torn: bool = False) -> Path:
    rng = np.random.default_rng(0)
    writer = JournalWriter(store.journal_path(run_id), {
        "run_id": run_id, "created": "2026-11-25T10:00:00Z",
        "scenario": {"name": "a", "launcher": "local"}, "trials_planned": 5,
        "group": {"id": "g-1", "seed": 3, "order": [["a", i] for i in range(5)]}})
    for i in range(trials):
        writer.append(i, [SessionRecord(synth.session_lines(rng, repeats=1), trial=i)])
    writer.close()
    if torn:   # killed inside a write: half a line at the end
        with open(store.journal_path(run_id), "ab") as fh:
            fh.write(b'{"trial_index": 3, "sessions": [{"lines": ["{\\"v\\"')
    return store.journal_path(run_id)


@pytest.fixture
def store_env(tmp_path, monkeypatch, capsys):
    (tmp_path / "config.toml").write_text("[store]\ndata_dir = 'data'\n"
                                          "[scenarios.a]\nlauncher = 'local'\n")
    monkeypatch.setenv("GPUBENCH_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "data").mkdir()
    return Store(tmp_path / "data")



def test_a_torn_last_line_is_the_trial_in_flight_the_others_recover(store_env, capsys):
    path = write_cut_off_journal(store_env, "20261125-100000-a-aaaaaa", 3, torn=True)
    journal = read_journal(path)
    assert journal.trials_done == 3 and "torn" in journal.note and not journal.running
    code, out, err = run(capsys, "recover")
    assert code == 0 and "cut off after 3 of 5 trials" in out
    code, out, err = run(capsys, "recover", "20261125")
    assert code == 0 and out.split() == ["20261125-100000-a-aaaaaa"]
    doc = store_env.load("20261125-100000-a-aaaaaa")
    assert len(doc["sessions"]) == 3 and doc["group"]["executed"] == 3
    assert "cut off after 3 of 5 trials: results are incomplete" in doc["validity"]["notes"]


def test_discard_asks_and_removes_the_journal(store_env, capsys, monkeypatch):
    path = write_cut_off_journal(store_env, "20261125-100000-a-bbbbbb", 1)
    code, _, err = run(capsys, "recover", "--discard", "20261125-100000-a-bbbbbb")
    assert code == 2 and "pass --yes" in err and path.exists()      # no terminal to ask on
    code, _, err = run(capsys, "recover", "--discard", "--yes", "20261125-100000-a-bbbbbb")
    assert code == 0 and not path.exists() and "discarded" in err
    assert store_env.list_runs().unfinished == []


@pytest.mark.parametrize("argv, expected", [
    (("recover", "nope"), "gpubench: no unfinished run 'nope'"),
    (("recover", "../../etc"), "gpubench: no unfinished run '../../etc'"),
])
def test_recover_unknown_run_is_one_line(store_env, capsys, argv, expected):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.strip().splitlines() == [err.strip()] and err.startswith(expected)


def test_a_running_plan_is_listed_as_running_and_not_recovered(store_env, capsys):
    writer = JournalWriter(store_env.journal_path("20261125-100000-a-cccccc"), {
        "run_id": "20261125-100000-a-cccccc", "created": "2026-11-25T10:00:00Z",
        "scenario": {"name": "a"}, "trials_planned": 4})
    writer.append(0, [SessionRecord(synth.session_lines(np.random.default_rng(1)), trial=0)])
    try:
        code, out, _ = run(capsys, "list")
        assert code == 0 and "running (1 of 4 trials, pid" in out
        code, _, err = run(capsys, "recover", "20261125-100000-a-cccccc")
        assert code == 2 and "is still running" in err
        assert writer.path.exists()
    finally:
        writer.close()
    _, out, _ = run(capsys, "list")        # its process let go: now it is cut off
    assert "cut off after 1 of 4 trials" in out


def test_a_journal_whose_document_was_saved_is_removed(store_env):
    """Killed between saving the document and removing the journal: the document wins."""
    doc, recs = synth.make_doc(0, scenario="a", sessions=1)
    store_env.save(doc, archive_lines(recs))
    path = write_cut_off_journal(store_env, doc["id"], 1)
    listing = store_env.list_runs()
    assert [r["id"] for r in listing.runs] == [doc["id"]] and listing.unfinished == []
    assert not path.exists()


def test_an_orphan_raw_stream_of_a_killed_save_is_removed(store_env):
    doc, recs = synth.make_doc(0, scenario="a", sessions=1)
    store_env.save(doc, archive_lines(recs))
    orphan = store_env.raw_path("20261125-100000-a-dddddd")
    orphan.write_bytes(store_env.raw_path(doc["id"]).read_bytes())
    assert [r["id"] for r in store_env.list_runs().runs] == [doc["id"]]
    assert not orphan.exists() and store_env.raw_path(doc["id"]).exists()


HEADER = {"journal": 1, "run_id": "20261125-100000-a-eeeeee", "created": "x",
          "scenario": {"name": "a"}, "trials_planned": 2}
TELEMETRY = {"v": 1, "type": "telemetry", "t": 1.0, "backend": "numpy-cpu",
             "readings": {"throttle_names": 32}}        # the mask where names belong


def _trial(lines, **session) -> str:
    return json.dumps({"trial_index": 0, "sessions": [
        {"lines": [json.dumps(x) for x in lines], "outcome": "completed", "trial": 0,
         **session}]})


@pytest.mark.parametrize("case, body, expected", [
    ("bad-header", json.dumps(dict(HEADER, trials_planned="two")),
     'journal header.trials_planned: "two" is not an integer'),
    ("id-not-the-file-name", json.dumps(dict(HEADER, run_id="other")),
     "journal header: run id 'other' is not the file's name"),
    ("not-json", "\x00garbage", "journal header: not a JSON object"),
    ("throttle-names-number", json.dumps(HEADER) + "\n" + _trial([TELEMETRY]),
     "journal: its trials do not make a document (TypeError"),
    ("huge-throughput", json.dumps(HEADER) + "\n" + _trial([json.loads(synth.result(
        1.0, "roundtrip", "pinned-64KiB", 0, 1.0, 50.0, 90.0, backend="numpy-cpu"))
        | {"ops_per_s": 10 ** 400}]),
     "journal: workloads[0].trials[0].ops_per_s: "),
])
def test_a_hostile_journal_is_one_line_and_hides_nothing(store_env, capsys, case, body,
                                                         expected):
    doc, recs = synth.make_doc(0, scenario="a", sessions=1)
    store_env.save(doc, archive_lines(recs))
    path = store_env.journal_path("20261125-100000-a-eeeeee")
    path.write_text(body + "\n")
    code, out, err = run(capsys, "list")
    assert code == 0 and doc["id"] in out and "20261125-100000-a-eeeeee" not in out
    [line] = [ln for ln in err.splitlines() if ln.startswith("gpubench: ")]
    assert line.startswith(f"gpubench: warning: skipped {path.name}: {expected}"), line
    code, _, err = run(capsys, "recover", "20261125-100000-a-eeeeee")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def _fail_journal_writes(monkeypatch, after: int, everything: bool = False):
    """ENOSPC for writes to a journal (or, with `everything`, to any file of the store)
    from the `after`+1-th journal write on: a disk that fills up mid-plan."""
    real = os.write
    count = {"journal": 0}

    def write(fd, data):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name.endswith(".journal.jsonl"):
            count["journal"] += 1
            if count["journal"] > after:
                raise OSError(errno.ENOSPC, "No space left on device")
        elif everything and count["journal"] > after and "/data/" in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)
    monkeypatch.setattr(os, "write", write)


async def test_a_full_journal_stops_the_plan_and_saves_what_was_measured(tmp_path, monkeypatch):
    cfg = make_config(tmp_path, trials=5)
    runner = PlanRunner(cfg, [cfg.scenarios["a"]], PlanOptions(seed=1), Store(cfg.data_dir),
                        launcher_factory=replay_factory())
    _fail_journal_writes(monkeypatch, after=3)          # header + 2 trials fit
    events = []
    result = await runner.run(progress=events.append)
    failed = [e for e in events if isinstance(e, SaveFailed)]
    assert len(failed) == 1 and "no space left on device: stopping the plan" in failed[0].message
    [saved] = [e for e in events if isinstance(e, RunSaved)]
    doc = Store(cfg.data_dir).load(saved.run_id)
    assert len(doc["sessions"]) == 3 and not result.complete     # the third is in memory
    assert doc["incomplete_reason"].startswith("stopped after 3 of 5 trials: cannot write the "
                                               "journal")
    assert not list(cfg.data_dir.glob("*.journal.jsonl"))


async def test_a_full_disk_keeps_the_journal_for_recover(tmp_path, monkeypatch, capsys):
    cfg = make_config(tmp_path, trials=5)
    runner = PlanRunner(cfg, [cfg.scenarios["a"]], PlanOptions(seed=1), Store(cfg.data_dir),
                        launcher_factory=replay_factory())
    _fail_journal_writes(monkeypatch, after=3, everything=True)
    events = []
    result = await runner.run(progress=events.append)
    assert result.run_ids == [] and len(result.save_errors) == 1
    assert "stay in its journal: `gpubench recover " in result.save_errors[0]
    monkeypatch.undo()                                           # space freed
    [path] = cfg.data_dir.glob("*.journal.jsonl")
    journal = read_journal(path)
    assert journal.trials_done == 2 and journal.note == ""       # whole trials only
    assert [u["id"] for u in Store(cfg.data_dir).list_runs().unfinished] == [journal.run_id]
    doc = journal.document()
    assert len(doc["sessions"]) == 2 and doc["complete"] is False


def test_a_failed_journal_write_leaves_no_partial_line(tmp_path, monkeypatch):
    store = Store(tmp_path)
    writer = JournalWriter(store.journal_path("20261125-100000-a-ffffff"), {
        "run_id": "20261125-100000-a-ffffff", "created": "t", "scenario": {"name": "a"},
        "trials_planned": 3})
    rec = SessionRecord(synth.session_lines(np.random.default_rng(2)), trial=0)
    writer.append(0, [rec])
    size = writer.path.stat().st_size
    real = os.write
    monkeypatch.setattr(journal_mod.os, "write", lambda fd, data: real(fd, data[:100]) and
                        (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(StoreError, match="cannot write the journal .*: no space left on device"):
        writer.append(1, [rec])
    monkeypatch.undo()
    assert writer.path.stat().st_size == size
    writer.close()
    assert read_journal(writer.path).trials_done == 1
