"""A decode run's throughput reads in tokens/s in the app, a round trip's in ops/s: History's
and Compare's run lists (runs of different workloads share the column, so each cell carries its
unit) and the dashboard's results panel (one unit per session: the heading names it)."""
from __future__ import annotations

import json

from textual.widgets import DataTable

from results.document import SessionRecord, build_document
from results.format import fmt_num
from results.stats import finite_median
from results.store import Store
from results.trial_counts import valid_trials
from tests.support import synth
from tui.app import GpubenchApp

from test_tui_app import save_doc
from test_tui_decode import replay_to_the_end
from tui_helpers import SIZE, cell, wait_for


def save_decode(store: Store) -> dict:
    recs = [SessionRecord(synth.decode_session_lines(i, batches=(8,), repeats=3), trial=i)
            for i in range(3)]
    doc = build_document(recs, {"name": "bare-metal", "title": "bare-metal", "launcher": "local",
                                "host": "local"}, run_id="20261121-100000-bare-metal-dddddd",
                         created="2026-11-21T10:00:00Z")
    store.save(doc, [ln for r in recs for ln in r.lines])
    return doc


def headline(doc: dict, key: str) -> float:
    return finite_median([t.get(key) for t in valid_trials(doc["workloads"][0])])


async def test_history_and_the_compare_picker_read_a_decode_run_in_tokens(config):
    store = Store(config.data_dir)
    decode = save_decode(store)
    rt = save_doc(store, "bare-metal", run_id="20261120-100000-bare-metal-aaaaaa")
    want = {decode["id"]: fmt_num(headline(decode, "tokens_per_s"), 0, " tokens/s"),
            rt["id"]: fmt_num(headline(rt, "ops_per_s"), 0, " ops/s")}
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.screen.query_one("#history-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        assert {table.get_row_at(i)[0]: str(cell(table, i, "Headline"))
                for i in range(2)} == want
        await pilot.press("4")
        await pilot.pause()
        picker = app.screen.query_one("#compare-runs", DataTable)
        assert {picker.get_row_at(i)[1]: str(cell(picker, i, "Headline"))
                for i in range(2)} == want


async def test_the_results_panel_reads_a_decode_sessions_variants_in_tokens(config):
    lines = synth.decode_session_lines(batches=(1, 8), repeats=2)
    results = [r for r in map(json.loads, lines) if r["type"] == "result"]
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await replay_to_the_end(app, pilot, lines)
        panel = app.screen.query_one("#percentiles")
        await wait_for(pilot, lambda: "tokens/s" in str(panel.render()))
        text = str(panel.render())
        assert "ops/s" not in text
        last = {r["variant"]: r for r in results}        # the panel shows each one's last
        for r in last.values():
            assert f" {fmt_num(r['tokens_per_s'])} " in text
