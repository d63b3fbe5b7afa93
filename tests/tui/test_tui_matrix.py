"""The interference matrix in the TUI: History's `m` on a matrix check run opens its grid,
cells coloured by the victim's p99 inflation, Enter or `i` on a cell shows its numbers, a
layer the host lacked is listed with why; a run without a matrix says so."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from results.store import Store
from tests.checks.fixed_matrix import fixed_matrix_document
from tests.tui.test_tui_app import save_doc
from tui.app import GpubenchApp
from tui.screens.history import HistoryScreen
from tui.screens.matrix import MatrixScreen

from tui_helpers import SIZE, wait_for

MATRIX_RUN = "20261119-080000-check-two-services-eeeeee"


def _styles(table: DataTable, row: int) -> list[str]:
    return [str(table.get_row_at(row)[i].style) for i in range(1, len(table.columns))]


@pytest.fixture
def matrix_run(config):
    """The fixed matrix check run, saved (made outside the test's event loop: the check runs
    each layer with asyncio.run)."""
    Store(config.data_dir).save(fixed_matrix_document(run_id=MATRIX_RUN,
                                                      created="2026-11-19T08:00:00Z"))
    return config


async def test_history_m_opens_the_coloured_grid_and_enter_shows_a_cells_numbers(matrix_run):
    config = matrix_run
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "m")
        await wait_for(pilot, lambda: isinstance(app.screen, MatrixScreen))
        screen = app.screen
        table = screen.query_one("#matrix-grid", DataTable)
        assert [str(c.label) for c in table.columns.values()] == [
            "victim", "gemm · none (time-slicing)", "launch · none (time-slicing)",
            "alloc · none (time-slicing)"]
        assert [str(c) for c in table.get_row_at(0)] == [
            "decode", " p99 ×1.80 [1.75, 1.85] ", " p99 ×1.30 [1.26, 1.34] ",
            " p99 ×1.02 [0.99, 1.05] "]
        assert [s.split(" on ")[-1] for s in _styles(table, 0)] == ["red", "yellow", "green"]
        assert [s.split(" on ")[-1] for s in _styles(table, 1)] == ["yellow", "green", "green"]
        notes = str(screen.query_one("#matrix-notes").render())
        assert "MPS 50%: NOT AVAILABLE (the CPU backend" in notes

        panel = screen.query_one("#matrix-cell", Static)
        assert str(panel.render()).strip() == ""
        await pilot.press("enter")                   # the cursor starts on decode × gemm
        text = str(panel.render())
        assert "victim: decode" in text and "aggressor: gemm" in text
        assert "p99: 1.80 [1.75, 1.85]" in text and "p50: 1.27 [1.25, 1.28]" in text
        assert "Jain: 0.99" in text and "NVML: NOT AVAILABLE: the CPU backend" in text
        assert "windows beside the other side: victim 6 of 6" in text
        await pilot.press("down", "right", "i")       # roundtrip × launch
        text = str(panel.render())
        assert "victim: roundtrip" in text and "p99: 1.05 [1.02, 1.08]" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))


async def test_m_on_a_run_without_a_matrix_says_so(config):
    save_doc(Store(config.data_dir), "bare-metal", run_id="run-a")
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "m")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HistoryScreen)
        assert any("Run run-a has no interference matrix" in n.message
                   for n in app._notifications)
