"""History's import (key i) takes what `gpubench import --size` takes: with the seed's
round-trip size its Throughput compares with a measured round trip; left empty, every seed
figure is NOT COMPARABLE next to a measured run, and Compare says why."""
from __future__ import annotations

from textual.widgets import DataTable, Input

from results.store import Store
from tui.app import GpubenchApp
from tui.screens.compare import CompareScreen
from tui.screens.import_dialog import ImportScreen

from test_tui_app import save_doc, screen_text
from tui_helpers import SIZE, wait_for

SEED = ("Throughput: 6,977 ops/sec\nAverage Latency: 0.14 ms (140 microseconds)\n"
        "p99 Latency: 0.198 ms\nMemory Bandwidth: 4.31 GB/s (H2D), 4.53 GB/s (D2H)\n")
MEASURED = "20261120-100000-bare-metal-proxy-aaaaaa"   # a GPU round trip of 64 KiB


async def import_and_compare(pilot, app, path, size: str | None, scenario: str = ""):
    """Import `path` through the dialog (size field left as prefilled when `size` is None,
    else set to it), then compare it (baseline) with the measured run; its ComparisonView."""
    store = Store(app.config.data_dir)
    before = {r["id"] for r in store.list_runs().runs}
    await pilot.press("3", "i")
    dialog = app.screen
    assert isinstance(dialog, ImportScreen)
    dialog.query_one("#import-path", Input).value = str(path)
    dialog.query_one("#import-scenario", Input).value = scenario
    if size is not None:
        dialog.query_one("#import-size", Input).value = size
    await pilot.press("enter")
    await wait_for(pilot, lambda: len(store.list_runs().runs) == len(before) + 1)
    (seed_id,) = {r["id"] for r in store.list_runs().runs} - before
    history = app.screen
    table = history.query_one("#history-table", DataTable)
    await wait_for(pilot, lambda: seed_id in table.rows)
    table.move_cursor(row=table.get_row_index(seed_id))
    await pilot.press("b")
    table.move_cursor(row=table.get_row_index(MEASURED))
    await pilot.press("c", "4")
    await pilot.pause(0.3)
    assert isinstance(app.screen, CompareScreen)
    (view,) = app.screen.views
    assert (view.baseline, view.candidate) == (seed_id, MEASURED)
    return view


async def test_import_dialog_offers_the_configs_roundtrip_size_and_says_what_empty_means(config):
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "i")
        assert isinstance(app.screen, ImportScreen)
        assert app.screen.query_one("#import-size", Input).value == "64KiB"
        await pilot.pause()
        text = " ".join(screen_text(app).replace("█", " ").split())   # the dialog's border out
        assert "config.toml's roundtrip_size is 64KiB" in text
        assert "Empty: the size is unknown, and next to a measured run every seed figure is " \
               "NOT COMPARABLE." in text
        await pilot.press("enter")                 # no file yet: the dialog stays
        assert isinstance(app.screen, ImportScreen)
        await pilot.press("escape")
        assert Store(config.data_dir).list_runs().runs == []


async def test_imported_with_its_size_the_seed_compares_with_the_measured_round_trip(config,
                                                                                    tmp_path):
    save_doc(Store(config.data_dir), "bare-metal-proxy", run_id=MEASURED)
    seed = tmp_path / "baseline_results.txt"
    seed.write_text(SEED)
    app = GpubenchApp(config)
    notes = []
    real_notify = app.notify
    app.notify = lambda message, **kw: (notes.append(message), real_notify(message, **kw))
    async with app.run_test(size=SIZE) as pilot:
        view = await import_and_compare(pilot, app, seed, size=None)    # the prefilled 64KiB
        assert any(n.startswith("Imported 1 run(s) from ") and n.endswith(
            "its round trip of 64KiB compares with a measured one.") for n in notes)
        rt = [r for r in view.rows if r.metric == "roundtrip/pinned-64KiB throughput"]
        assert len(rt) == 1 and rt[0].baseline == 6977 and rt[0].candidate is not None
        assert rt[0].verdict != "NOT COMPARABLE" and rt[0].overhead_pct is not None
        doc = Store(config.data_dir).load(view.baseline)
        assert doc["imported"] and doc["scenario"]["name"] == "bare-metal"   # its legacy_file


async def test_imported_without_a_size_the_seed_is_not_comparable_and_compare_says_why(config,
                                                                                      tmp_path):
    save_doc(Store(config.data_dir), "bare-metal-proxy", run_id=MEASURED)
    seed = tmp_path / "seed.txt"
    seed.write_text(SEED)
    app = GpubenchApp(config)
    async with app.run_test(size=(200, 48)) as pilot:
        view = await import_and_compare(pilot, app, seed, size="", scenario="bare-metal")
        rt = [r for r in view.rows if r.workload == "roundtrip"]
        assert [r.what for r in rt] == ["throughput", "mean latency", "p99 latency"]
        assert {r.variant for r in rt} == {"legacy"} and {r.verdict for r in rt} == \
            {"NOT COMPARABLE"}
        assert all("baseline (imported): the seed's text gives no round-trip size" in r.note
                   for r in rt)
        text = " ".join(screen_text(app).split())
        assert "NOT COMPARABLE" in text and "the seed's text gives no round-trip size" in text


async def test_a_size_that_is_not_one_is_one_error_line_and_nothing_is_saved(config, tmp_path):
    seed = tmp_path / "baseline_results.txt"
    seed.write_text(SEED)
    app = GpubenchApp(config)
    errors = []
    real_notify = app.notify
    app.notify = lambda message, **kw: (errors.append(message) if kw.get("severity") == "error"
                                        else None, real_notify(message, **kw))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "i")
        app.screen.query_one("#import-path", Input).value = str(seed)
        app.screen.query_one("#import-size", Input).value = "big"
        await pilot.press("enter")
        await wait_for(pilot, lambda: errors)
        assert len(errors) == 1      # the CLI's own words
        assert errors[0].startswith("Import failed: --size: not a size: 'big' (use e.g. ")
        assert not isinstance(app.screen, ImportScreen)
    assert Store(config.data_dir).list_runs().runs == []
