"""Pilot: Compare draws the compute check's share over time from a saved check run (the
newest `check-<candidate scenario>` run, as gpubench.checks writes it)."""
from __future__ import annotations

from textual.widgets import DataTable

from results.store import Store
from tui.app import GpubenchApp
from tui.screens.compare import share_chart_data
from tui.widgets.charts import TimeChart

from test_tui_app import save_pair_with_check, screen_text
from tui_helpers import SIZE


async def test_compare_draws_the_compute_share_series_of_a_saved_check(config):
    await save_pair_with_check(Store(config.data_dir))
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        chart = screen.query_one("#compare-share", TimeChart)
        assert not chart.display                       # nothing picked: no chart
        table = screen.query_one("#compare-runs", DataTable)
        table.move_cursor(row=table.get_row_index("run-a"))
        await pilot.press("b")
        table.move_cursor(row=table.get_row_index("run-b"))
        await pilot.press("space")
        await pilot.pause()
        assert chart.display and chart.draws >= 1
        whose, xs, series = share_chart_data(app.store, screen.views)
        assert whose == "C1 run-check" and xs[0] == 0.25 and len(xs) == 8
        assert set(series) == {"cuLaunchKernel", "cuLaunchKernelEx", "launch+sync",
                               "tenant A", "tenant B", "limit 0.008"}
        # the saved series itself: cuLaunchKernel 30 % over its cap in the first interval
        assert series["cuLaunchKernel"][0] > series["cuLaunchKernel"][1]
        screen.query_one("#compare-table-box").scroll_end(animate=False)
        await pilot.pause()
        text = screen_text(app)
        assert "compute share over time C1 run-check" in text and "share of unlimited" in text
        await pilot.press("x")                         # cleared: the chart goes too
        await pilot.pause()
        assert not chart.display
