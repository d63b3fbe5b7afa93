"""The app names what made a figure and where as the CLI does: History's Host cell is `list`'s
(the configured host, its hostname beside), its Backend cell the CPU mark, and Compare says
which backend made the overheads it shows."""
from __future__ import annotations

from textual.widgets import DataTable

from gpubench import cli
from results.document import archive_lines
from results.labels import CPU_CELL, CPU_MARK
from results.store import Store
from tests.support.synth import make_doc
from tui.app import GpubenchApp

from tui_helpers import SIZE


def _save(store: Store, scenario: str, seed: int, backend: str = "numpy-cpu") -> str:
    doc, recs = make_doc(seed, scenario=scenario, sessions=3, backend=backend, hostname="vm",
                         target_pct=5.0 if scenario != "bare-metal" else None)
    store.save(doc, archive_lines(recs))
    return doc["id"]


def _cell(table: DataTable, row: str, column: str) -> str:
    index = [str(c.label) for c in table.ordered_columns].index(column)
    return str(table.get_row(row)[index])


def _list_hosts(config, monkeypatch, capsys) -> dict[str, str]:
    monkeypatch.setenv("GPUBENCH_CONFIG", str(config.path))
    capsys.readouterr()
    assert cli.main(["--data-dir", str(config.data_dir), "list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    col = header.split("\t").index("host")
    return {r.split("\t")[0]: r.split("\t")[col] for r in rows}


async def test_history_names_the_host_as_list_does_and_marks_cpu_runs(config, monkeypatch,
                                                                     capsys):
    store = Store(config.data_dir)
    cpu = _save(store, "bare-metal", 1)
    gpu = _save(store, "bare-metal", 2, backend="cupy")
    listed = _list_hosts(config, monkeypatch, capsys)
    assert listed == {cpu: "local (vm)", gpu: "local (vm)"}
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.screen.query_one("#history-table", DataTable)
        assert table.row_count == 2
        for run_id in (cpu, gpu):
            assert _cell(table, run_id, "Host") == listed[run_id]
        assert _cell(table, cpu, "Backend") == CPU_CELL
        assert _cell(table, gpu, "Backend") == "GPU (cupy)"


async def test_compare_says_its_figures_are_cpu_ones(config):
    store = Store(config.data_dir)
    _save(store, "bare-metal", 1)
    _save(store, "bare-metal-proxy", 2)
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.press("b", "down", "c")            # pick from History, then show Compare
        await pilot.press("4")
        await pilot.pause()
        banner = str(app.screen.query_one("#compare-banner").render())
        assert f"C1 figures by {CPU_MARK}" in banner
        runs = app.screen.query_one("#compare-runs", DataTable)
        assert {_cell(runs, key.value, "Backend") for key in runs.rows} == {CPU_CELL}
