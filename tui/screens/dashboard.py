"""Live dashboard: fleet grid, then the selected session's charts, percentiles, telemetry.

Workers write samples into the LiveBoard; a 10 Hz timer here applies what
changed: grid rows that changed and are visible, the selected host's panels,
and its charts (which redraw at most twice a second). Moving the cursor only
schedules a redraw; it never draws a chart on the key press itself.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ProgressBar

from results.labels import CPU_CELL
from results.rates import TOKENS
from scenarios.events import CANCELLED

from ..live import HostState
from ..widgets.charts import ColumnChart, TimeChart
from ..widgets.host_grid import HostGrid
from ..widgets.panels import HostHeader, PercentileTable, TelemetryPanel, fmt_duration
from ..widgets.steps import StepPanel, step_chart
from .hosts import HostsScreen

APPLY_HZ = 10.0
DETAIL_EVERY = 3        # the selected host's text panels: every 3rd tick (about 3 Hz)
FLEET_ROWS = 6          # more sessions than this: the grid takes half the screen
LIVE = ("starting", "running")


def empty_hint() -> str:
    """What the dashboard says before any run, with the keys the Hosts screen binds."""
    return (f"No session. Press [b]{HostsScreen.key_for('app.run_plan')}[/b] on the Hosts "
            f"screen to run the plan, [b]{HostsScreen.key_for('quick_test')}[/b] there for a "
            f"quick test, or open a saved run from History.")


class DashboardScreen(Screen):
    AUTO_FOCUS = "#grid"
    BINDINGS = [
        Binding("x", "app.cancel_run", "Cancel run"),
        Binding("g", "toggle_grid", "Grid size"),
    ]

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self.selected: str | None = None
        self._ticks = 0
        self._detail_dirty = True
        self._detail_now = True      # a selection change is shown on the next tick
        self._labels: dict[str, str] = {}
        self.applied = 0           # samples-applying passes with work, for the benchmark
        self._big_grid: bool | None = None
        self.pinned = False        # the user picked a row: stop following the live session

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="plan-bar"):
            yield Label("No run.", id="plan-title")
            yield ProgressBar(total=1.0, show_eta=False, show_percentage=True, id="plan-progress")
            yield Label("", id="plan-left")
        yield HostGrid(id="grid")
        with Horizontal(id="detail"):
            with Vertical(id="detail-left"):
                yield HostHeader(id="host-header")
                yield TimeChart("ops/s", id="chart-ops")
                yield TimeChart("latency µs", id="chart-lat")
                yield ColumnChart("step latency", id="chart-steps")
            with Vertical(id="detail-right"):
                yield PercentileTable(id="percentiles")
                yield StepPanel(id="steps")
                yield TelemetryPanel(id="telemetry")
        yield Footer()

    def on_mount(self) -> None:
        self.grid = self.query_one(HostGrid)
        self.header_w = self.query_one(HostHeader)
        self.header_w.empty_hint = empty_hint()
        self.pct = self.query_one(PercentileTable)
        self.tel = self.query_one(TelemetryPanel)
        self.chart_ops = self.query_one("#chart-ops", TimeChart)
        self.chart_lat = self.query_one("#chart-lat", TimeChart)
        self.chart_steps = self.query_one("#chart-steps", ColumnChart)
        self.steps_w = self.query_one(StepPanel)
        self.chart_steps.display = self.steps_w.display = False   # until a step session (show_steps)
        self.progress = self.query_one(ProgressBar)
        self.set_interval(1 / APPLY_HZ, self.apply_updates)
        self.sync_rows()
        self.apply_updates()

    @property
    def board(self):
        return self.app.board

    # -- the bounded-rate update ----------------------------------------------------------
    def sync_rows(self) -> None:
        hosts = list(self.board.hosts.values())
        self.grid.set_rows(hosts)
        big = len(hosts) > FLEET_ROWS
        if big != self._big_grid:
            self._big_grid = big
            self.set_class(big, "-fleet")
        if hosts and (self.selected not in self.board.hosts):
            self.pinned = False       # a new run: follow it again
            self.select(hosts[0].key)
        elif not hosts:
            self.selected = None
            self.pinned = False
            self._detail_dirty = True

    def follow_live(self) -> None:
        """Unless the user picked a row, the detail shows the session that is running now
        (the newest), not a trial that has ended."""
        if self.pinned:
            return
        current = self.board.hosts.get(self.selected) if self.selected else None
        if current is not None and current.status in LIVE:
            return
        live = next((h for h in reversed(self.board.hosts.values()) if h.status in LIVE), None)
        if live is not None:
            self.select(live.key)

    def apply_updates(self) -> None:
        if not self.is_current and self._ticks % 5:
            self._ticks += 1
            return
        self._ticks += 1
        if self.grid.row_count != len(self.board.hosts):
            self.sync_rows()
        changed = self.board.take_dirty()
        if changed:
            self.applied += 1
            self.grid.update_rows(changed)
            if any(h.key == self.selected for h in changed):
                self._detail_dirty = True
            self.follow_live()
        if self._detail_dirty and (self._ticks % DETAIL_EVERY == 0 or self._detail_now):
            self._detail_dirty = self._detail_now = False
            self.show_detail(self.board.hosts.get(self.selected) if self.selected else None)
        self.chart_ops.flush()
        self.chart_lat.flush()
        self.chart_steps.flush()
        if self._ticks % 5 == 0:
            self.update_progress()

    def update_progress(self) -> None:
        board = self.board
        frac, left = board.progress()
        self.progress.update(progress=frac)
        title = board.plan_title or ("No run." if not board.hosts else "")
        running = sum(1 for h in board.hosts.values() if h.status == "running")
        if not board.hosts:
            left_text = ""
        elif running:
            left_text = f"{running} running · {fmt_duration(left)} left"
        elif any(h.status == CANCELLED for h in board.hosts.values()):
            left_text = f"cancelled at {frac * 100:.0f} %"
        else:
            left_text = "done"
        self._set_label("#plan-title", title)
        self._set_label("#plan-left", left_text)

    def _set_label(self, selector: str, text: str) -> None:
        if self._labels.get(selector) != text:     # a Label update costs a layout
            self._labels[selector] = text
            self.query_one(selector, Label).update(text, layout=False)

    def show_detail(self, h: HostState | None) -> None:
        self.header_w.show(h)
        self.pct.show(h)
        self.tel.show(h)
        self.show_steps(h)
        if h is None or not h.series:
            self.chart_ops.clear_chart()
            self.chart_lat.clear_chart()
            return
        # the current workload's series (the one whose samples came last)
        series = h.series.get((h.workload, h.variant)) or next(iter(h.series.values()))
        name = f"{h.workload}/{h.variant}"
        suffix = f"· {CPU_CELL}" if h.is_cpu else ""
        # the row's rate decides (results.rates): a step in tokens/s, in steps/s where its
        # engine gave no tokens
        noun = h.rate.noun
        self.chart_ops.title = f"{noun}/s"
        self.chart_ops.show(series.t, {name: series.tokens if noun == TOKENS else series.ops},
                            f"{name} {suffix}")
        self.chart_lat.show(series.t, {"p50": series.p50, "p99": series.p99}, f"{name} {suffix}")

    def show_steps(self, h: HostState | None) -> None:
        """A decode/prefill session's step panel and chart; hidden for every other session."""
        step = h is not None and h.step_unit is not None
        if self.steps_w.display != step:
            self.steps_w.display = self.chart_steps.display = step
        if step:
            self.steps_w.show(h)
            self.chart_steps.show(*step_chart(h))

    def select(self, key: str | None) -> None:
        self.selected = key
        self._detail_dirty = True
        if key is not None:
            self.grid.select_key(key)

    # -- events ---------------------------------------------------------------------------
    def on_host_grid_highlighted(self, event: HostGrid.Highlighted) -> None:
        if event.by_user:
            self.pinned = True
        if event.key is not None and event.key != self.selected:
            self.selected = event.key
            self._detail_dirty = self._detail_now = True   # next tick, not on the key press

    def on_screen_resume(self) -> None:
        self.sync_rows()
        self._detail_dirty = True
        self.update_progress()

    def action_toggle_grid(self) -> None:
        self._big_grid = not self._big_grid
        self.set_class(self._big_grid, "-fleet")
