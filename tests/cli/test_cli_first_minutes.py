"""What a newcomer sees in the first minutes of the CLI: `list` not buried under a self-test's
runs, `gpubench run`'s progress line rewritten without leftovers, and `make run` installing
only what the app needs."""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import types
from pathlib import Path

import pytest

from gpubench import cli
from gpubench.cli.run import ProgressPrinter
from gpubench.plan_events import TrialEvent, TrialFinished, TrialStarted
from gpubench.trial_order import TrialSlot
from results.document import archive_lines
from scenarios.events import Sample
from tests.support.own_lines import own_lines
from tests.support.synth import make_doc
from tests.support.cli_env import BARE_METAL_CONFIG, use_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = BARE_METAL_CONFIG


@pytest.fixture
def env(tmp_path, monkeypatch):
    store = use_config(tmp_path, monkeypatch, CONFIG)
    ids = {}
    for seed, name in enumerate(["bare-metal", "selftest-roundtrip-baseline",
                                 "selftest-roundtrip-1", "selftest-launch-5"]):
        doc, recs = make_doc(seed, scenario=name, sessions=2)
        store.save(doc, archive_lines(recs))
        ids[name] = doc["id"]
    return types.SimpleNamespace(ids=ids)


def listed(capsys, *argv) -> tuple[list[str], list[str]]:
    assert cli.main(["list", *argv]) == 0
    out, err = capsys.readouterr()
    return [row.split("\t")[0] for row in out.splitlines()[1:]], own_lines(err)


def test_list_leaves_the_selftest_runs_out_and_says_so(env, capsys):
    ids, err = listed(capsys)
    assert ids == [env.ids["bare-metal"]]
    assert err == ["3 self-test run(s) not listed (gpubench list --selftest lists them)"]
    ids, err = listed(capsys, "--selftest")
    assert sorted(ids) == sorted(env.ids.values()) and err == []
    # asking for a self-test scenario by name lists it
    ids, _ = listed(capsys, "--scenario", "selftest-launch-5")
    assert ids == [env.ids["selftest-launch-5"]]
    assert cli.main(["list", "--format", "json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [env.ids["bare-metal"]]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen_lines(written: str) -> list[str]:
    """What a terminal shows for `written`: \\r goes back to the line's start, ESC[K clears to
    its end, later text overwrites earlier text."""
    lines, line, col = [], [], 0
    for token in re.findall(r"\x1b\[K|\r|\n|[^\r\n\x1b]+", written):
        if token == "\n":
            lines.append("".join(line))
            line, col = [], 0
        elif token == "\r":
            col = 0
        elif token == "\x1b[K":
            del line[col:]
        else:
            for ch in token:
                if col < len(line):
                    line[col] = ch
                else:
                    line.append(ch)
                col += 1
    return lines + (["".join(line)] if line else [])


def sample(ops: float) -> Sample:
    return Sample("roundtrip", "64KiB", ops, {"p50": 1.0}, None, 0.0, {})


def started_printer(monkeypatch) -> tuple[Terminal, ProgressPrinter, TrialSlot]:
    """A run's progress printer on a fake terminal, its one trial started."""
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    printer = ProgressPrinter(["bare-metal"], 1)
    slot = TrialSlot("bare-metal", 0)
    printer(TrialStarted(0, 1, slot))
    return term, printer, slot


def test_run_progress_line_leaves_nothing_of_a_longer_line_behind(monkeypatch):
    term, printer, slot = started_printer(monkeypatch)
    printer(TrialEvent(0, slot, sample(123_456_789.0)))
    printer(TrialEvent(0, slot, sample(25.0)))
    assert screen_lines(term.getvalue()) == [
        "[1/1] bare-metal trial 1: roundtrip/64KiB 25 ops/s"]
    printer(TrialFinished(0, 1, slot, "completed", "", 2))
    assert screen_lines(term.getvalue()) == ["[1/1] bare-metal trial 1: completed, 2 results"]


def test_run_progress_line_reads_a_decode_sample_in_tokens(monkeypatch):
    term, printer, slot = started_printer(monkeypatch)
    printer(TrialEvent(0, slot, Sample("decode", "8b-l4-b8-kv2048", 900.0, {"p50": 1100.0},
                                       None, 0.0, {"tokens_per_s": 7200.0})))
    assert screen_lines(term.getvalue()) == [
        "[1/1] bare-metal trial 1: decode/8b-l4-b8-kv2048 7,200 tokens/s"]


def test_run_progress_in_a_pipe_is_one_plain_line_per_trial_event(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    printer = ProgressPrinter(["bare-metal"], 1)
    slot = TrialSlot("bare-metal", 0)
    printer(TrialStarted(0, 1, slot))
    printer(TrialEvent(0, slot, sample(25.0)))       # samples only in a terminal
    printer(TrialFinished(0, 1, slot, "completed", "", 2))
    assert pipe.getvalue() == ("[1/1] bare-metal trial 1 ...\n"
                               "[1/1] bare-metal trial 1: completed, 2 results\n")


def make_dry_run(target: str, venv) -> str:
    done = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
                          capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_installs_the_app_without_the_test_tools(tmp_path):
    run = make_dry_run("run", tmp_path / "venv")
    assert "pip install -q -e \".\"" in run or "pip install -q -e \".[cuda" in run
    assert "[dev" not in run and "gpubench-tui" in run
    test = make_dry_run("test", tmp_path / "venv")
    assert "[dev" in test and "pytest" in test
