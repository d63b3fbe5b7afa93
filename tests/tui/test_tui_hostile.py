"""History with hostile result files and a cut-off run beside a good run; comparison exports
whose names come from run ids stay in their folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
from textual.widgets import DataTable, Label

from results.document import SessionRecord, build_document
from results.files import path_in, safe_file_name
from results.journal import JournalWriter
from results.store import Store
from scenarios.replay import synthetic_stream
from tests.hostile import cases
from tests.support import synth
from tests.results.hostile import plant
from tui.app import GpubenchApp
from tui.data import ComparisonView, RunStore, export_name

from tui_helpers import SIZE, cell


def save_good(store: Store, scenario: str = "bare-metal") -> dict:
    lines = synthetic_stream(workloads=("roundtrip",), repeats=3, duration_s=0.5)
    doc = build_document([SessionRecord(lines, trial=0)], {"name": scenario, "launcher": "local"})
    store.save(doc, lines)
    return doc


async def test_history_shows_the_good_run_and_one_line_per_bad_file(config):
    store = Store(config.data_dir)
    good = save_good(store)
    corpus = cases("results", "*.json")
    for case in corpus:
        plant(store.dir, case)
    cut = "20261125-100000-bare-metal-abcdef"
    writer = JournalWriter(store.journal_path(cut), {
        "run_id": cut, "created": "2026-11-25T10:00:00Z", "scenario": {"name": "bare-metal"},
        "trials_planned": 4})
    writer.append(0, [SessionRecord(synth.session_lines(np.random.default_rng(0)), trial=0)])
    writer.close()
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        table = app.screen.query_one("#history-table", DataTable)
        assert [table.get_row_at(i)[0] for i in range(table.row_count)] == [good["id"]]
        notes = str(app.screen.query_one("#history-notes", Label).render()).splitlines()
        assert notes[0] == (f"{cut}: incomplete, not saved: cut off after 1 of 4 trials "
                            f"(gpubench recover {cut})")
        for case in corpus:
            [line] = [n for n in notes if n.startswith(f"skipped {case.path.name}: ")]
            assert all(e in line for e in case.expect), line
        assert len(notes) == len(corpus) + 1
        await pilot.press("l", *"ok", "enter")      # the good run is still usable
        await pilot.pause()
        assert store.load(good["id"])["label"] == "ok"


async def test_history_marks_an_incomplete_run(config):
    store = Store(config.data_dir)
    lines = synthetic_stream(workloads=("roundtrip",), repeats=2, duration_s=0.5)
    doc = build_document([SessionRecord(lines, trial=0),
                          SessionRecord(lines[:3], outcome="incomplete", trial=1)],
                         {"name": "bare-metal"})
    store.save(doc, lines)
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        table = app.screen.query_one("#history-table", DataTable)
        # and how many headline results count
        assert str(cell(table, 0, "Validity")) == "VALID 2/2 incomplete"
    assert doc["complete"] is False and doc["incomplete_reason"] == "1 of 2 sessions cut off"


HOSTILE_IDS = ["../../../tmp/evil", "/etc/passwd", "a/b", "run\x00x", "run\nforged",
               "." * 3, "-" * 500, "ünïcode run"]


@pytest.mark.parametrize("run_id", HOSTILE_IDS)
def test_export_names_from_run_ids_stay_in_the_folder(tmp_path, run_id):
    name = export_name([ComparisonView(run_id, "c")], "md")
    path = path_in(tmp_path, name)
    assert path.parent == tmp_path and name.startswith("comparison-") and name.endswith(".md")
    assert len(name) <= 140 and "/" not in name and "\x00" not in name and "\n" not in name
    assert safe_file_name(run_id) not in ("", ".", "..")


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd"])
def test_path_in_refuses_anything_but_a_plain_name(tmp_path, name):
    with pytest.raises(ValueError):
        path_in(tmp_path, name)


def test_tui_export_is_named_after_the_picked_baseline_and_stays_in_its_folder(config, tmp_path):
    store = Store(config.data_dir)
    base, cand = save_good(store, "bare-metal"), save_good(store, "bare-metal-proxy")
    runs = RunStore(config)
    view = runs.compare(base["id"], cand["id"])
    path = runs.export([view], "csv", tmp_path / "out")
    assert path == tmp_path / "out" / f"comparison-{base['id']}.csv" and path.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [path.name]


def test_a_document_claiming_another_id_is_never_loaded_so_never_saved_over(config):
    """Labelling (load, change, save) writes the file the user picked: a document whose id
    names another run is refused before anything could be written under that id."""
    store = Store(config.data_dir)
    victim = save_good(store)
    liar = dict(save_good(store, "bare-metal-proxy"))
    planted = store.doc_path("20261125-100000-x-aaaaaa")
    planted.write_text(json.dumps(dict(liar, label="mine")).replace(
        liar["id"], victim["id"]))
    before = store.doc_path(victim["id"]).read_bytes()
    with pytest.raises(Exception, match="holds run id"):
        RunStore(config).set_label("20261125-100000-x-aaaaaa", "x")
    assert store.doc_path(victim["id"]).read_bytes() == before
