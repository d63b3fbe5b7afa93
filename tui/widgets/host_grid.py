"""The fleet grid: one row per running session, drawn with the Line API.

Why not a DataTable: `DataTable.update_cell` invalidates every visible cell, so
each frame re-renders all visible rows. Here each row's Strip is cached by
(row version, cursor, width); `update_rows()` refreshes only the screen lines
of rows that changed and are visible, and rows off screen cost nothing until
they scroll into view. See ../shared/TEST-FACTS.md for the measurements.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from results.format import EMPTY, fmt_num

from ..live import HostState


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    get: Callable[[HostState], str]
    right: bool = False
    tone: Callable[[HostState], str] | None = None   # component-class suffix for the cell


def _state_tone(h: HostState) -> str:
    return {"completed": "ok", "running": "", "failed": "bad", "incomplete": "warn",
            "cancelled": "warn"}.get(h.status, "dim")


def _alert_text(h: HostState) -> str:
    alerts = h.alerts()
    return alerts[0] if alerts else ("CPU figure" if h.is_cpu else "")


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int) -> str:
    """The last `width` values as block characters scaled between their min and max."""
    points = [v for v in list(values)[-width:] if v is not None]
    if not points:
        return ""
    low, high = min(points), max(points)
    if high <= low:
        return SPARK_BLOCKS[3] * len(points)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((v - low) / (high - low) * top)] for v in points)


def _trend(h: HostState) -> str:
    series = h.series.get((h.workload, h.variant))
    return sparkline(series.ops, TREND_WIDTH) if series is not None else ""


TREND_WIDTH = 8


def rate_cell(h: HostState) -> str:
    """The row's headline rate with its unit (rows of different workloads share the column):
    tokens/s for a decode/prefill step, ops/s for everything else (results.rates)."""
    rate = h.rate
    return EMPTY if rate.value is None else f"{short_num(rate.value)} {rate.unit}"


def short_num(value: float) -> str:
    """At most five characters: 987, 9,876, 98.7k, 9.88M (the grid's cell is narrow)."""
    for limit, div, suffix in ((9.995e8, 1e9, "G"), (9.995e5, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= limit:
            v = value / div
            return f"{v:.3g}{suffix}" if abs(v) < 100 else f"{v:.0f}{suffix}"
    return fmt_num(value)


def _tel(h: HostState, key: str, unit: str) -> str:
    return fmt_num(h.telemetry.get(key), 0, unit)


COLUMNS: tuple[Column, ...] = (
    Column("Host", 14, lambda h: h.label),
    Column("Scenario", 12, lambda h: h.scenario),
    Column("State", 10, lambda h: h.status, tone=_state_tone),
    Column("Backend", 9, lambda h: h.backend or "?", tone=lambda h: "cpu" if h.is_cpu else ""),
    Column("Workload", 14, lambda h: f"{h.workload}/{h.variant}" if h.workload else ""),
    Column("rate", 14, rate_cell, right=True),
    Column("trend", TREND_WIDTH + 1, _trend),
    Column("p50 µs", 8, lambda h: fmt_num(h.latency_us.get("p50"), 1), right=True),
    Column("p99 µs", 8, lambda h: fmt_num(h.latency_us.get("p99"), 1), right=True),
    Column("GB/s", 6, lambda h: fmt_num(h.gbps, 2), right=True),
    Column("Done", 4, lambda h: f"{h.progress * 100:3.0f}%", right=True),
    Column("°C", 4, lambda h: _tel(h, "temperature_c", ""), right=True),
    Column("W", 4, lambda h: _tel(h, "power_w", ""), right=True),
    Column("Alerts", 30, _alert_text, tone=lambda h: "bad" if h.alerts() else ("cpu" if h.is_cpu else "")),
)


def _fit(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return text.rjust(width) if right else text.ljust(width)


class HostGrid(ScrollView, can_focus=True):
    """Compact one-row-per-host grid with cached rows and partial redraws."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-10)", "Page up", show=False),
        Binding("pagedown", "cursor(10)", "Page down", show=False),
        Binding("home", "cursor(-100000)", "First row", show=False),
        Binding("end", "cursor(100000)", "Last row", show=False),
    ]
    COMPONENT_CLASSES = {"host-grid--header", "host-grid--cursor", "host-grid--ok",
                         "host-grid--bad", "host-grid--warn", "host-grid--cpu", "host-grid--dim"}
    DEFAULT_CSS = """
    HostGrid { height: 1fr; }
    HostGrid > .host-grid--header { text-style: bold; background: $panel; }
    HostGrid > .host-grid--cursor { background: $accent 40%; }
    HostGrid:focus > .host-grid--cursor { background: $accent; }
    HostGrid > .host-grid--ok { color: $success; }
    HostGrid > .host-grid--bad { color: $error; text-style: bold; }
    HostGrid > .host-grid--warn { color: $warning; }
    HostGrid > .host-grid--cpu { color: $warning; }
    HostGrid > .host-grid--dim { color: $text-muted; }
    """

    cursor = reactive(0, repaint=False, init=False)

    class Highlighted(Message):
        def __init__(self, key: str | None, by_user: bool = False) -> None:
            super().__init__()
            self.key = key
            self.by_user = by_user    # a key or a click, not select_key()

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._rows: list[HostState] = []
        self._index: dict[str, int] = {}
        self._cache: dict[str, tuple[tuple, Strip]] = {}
        self._styles: dict[str, Style] | None = None
        self._header: tuple[int, Strip] | None = None
        self.rows_rendered = 0          # counters for tests and the load benchmark
        self._width = sum(c.width + 1 for c in COLUMNS)
        self._user_move = False

    # -- data -------------------------------------------------------------------------
    def set_rows(self, rows: Iterable[HostState]) -> None:
        self._rows = list(rows)
        self._index = {h.key: i for i, h in enumerate(self._rows)}
        self._cache = {k: v for k, v in self._cache.items() if k in self._index}
        self.virtual_size = Size(self._width, len(self._rows) + 1)
        if self.cursor >= len(self._rows):
            self.cursor = max(0, len(self._rows) - 1)
        self.refresh()

    def update_rows(self, states: Iterable[HostState]) -> int:
        """Refresh the screen lines of these rows if visible; returns how many were.

        One dirty region spanning the changed visible lines: the compositor's cost
        grows with the number of regions, and the rows in between are cached strips.
        """
        top = int(self.scroll_y)
        height = self.size.height
        lo, hi, visible = height, 0, 0
        index = self._index
        for h in states:
            i = index.get(h.key)
            if i is None:
                continue
            y = i - top + 1
            if 1 <= y < height:
                visible += 1
                lo, hi = min(lo, y), max(hi, y)
        if visible:
            self.refresh(Region(0, lo, max(self.size.width, self._width), hi - lo + 1))
        return visible

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def current_key(self) -> str | None:
        if 0 <= self.cursor < len(self._rows):
            return self._rows[self.cursor].key
        return None

    def select_key(self, key: str) -> None:
        if key in self._index:
            self.cursor = self._index[key]

    # -- cursor -----------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        if self._rows:
            self._move_by_user(max(0, min(len(self._rows) - 1, self.cursor + delta)))

    def _move_by_user(self, row: int) -> None:
        self._user_move = True
        try:
            self.cursor = row        # watch_cursor runs now, inside this
        finally:
            self._user_move = False

    def watch_cursor(self, old: int, new: int) -> None:
        top = int(self.scroll_y)
        for i in (old, new):
            y = i - top + 1
            if 1 <= y < self.size.height:
                self.refresh(Region(0, y, max(self.size.width, self._width), 1))
        rows_visible = max(1, self.size.height - 1)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + rows_visible:
            self.scroll_to(y=new - rows_visible + 1, animate=False)
        self.post_message(self.Highlighted(self.current_key, by_user=self._user_move))

    def on_click(self, event) -> None:
        row = int(self.scroll_y) + event.y - 1
        if 0 <= row < len(self._rows):
            self._move_by_user(row)

    # -- rendering --------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._cache.clear()
        self._header = None

    def _style(self, name: str) -> Style:
        if self._styles is None:
            base = self.rich_style
            self._styles = {"": base}
            for cls in self.COMPONENT_CLASSES:
                self._styles[cls.removeprefix("host-grid--")] = base + self.get_component_rich_style(cls)
        return self._styles[name]

    def _strip(self, cells: list[tuple[str, str]], width: int, line_style: str) -> Strip:
        """Cells merged into one Segment per run of equal tone (compared by name, not by
        Style, which is what makes Segment.simplify slow)."""
        cursor = line_style == "cursor"
        base = self._style(line_style)
        runs: list[list] = []
        for text, tone in cells:
            if runs and runs[-1][0] == tone:
                runs[-1][1].append(text)
            else:
                runs.append([tone, [text]])
        segments = []
        for tone, texts in runs:
            if not tone:
                style = base
            elif cursor:
                style = self._style(tone) + base
            else:
                style = base + self._style(tone)
            segments.append(Segment(" ".join(texts) + " ", style))
        return Strip(segments).adjust_cell_length(width, base)

    def render_line(self, y: int) -> Strip:
        width = max(self.size.width, self._width)
        scroll_x = int(self.scroll_x)
        if y == 0:
            if self._header is None or self._header[0] != width:
                cells = [(_fit(c.title, c.width, c.right), "") for c in COLUMNS]
                self._header = (width, self._strip(cells, width, "header"))
            return self._header[1].crop(scroll_x, scroll_x + self.size.width)
        i = int(self.scroll_y) + y - 1
        if not 0 <= i < len(self._rows):
            return Strip.blank(self.size.width, self._style(""))
        h = self._rows[i]
        is_cursor = i == self.cursor
        key = (h.version, is_cursor, width)
        cached = self._cache.get(h.key)
        if cached is None or cached[0] != key:
            cells = [(_fit(c.get(h), c.width, c.right), c.tone(h) if c.tone else "") for c in COLUMNS]
            strip = self._strip(cells, width, "cursor" if is_cursor else "")
            self._cache[h.key] = (key, strip)
            self.rows_rendered += 1
        else:
            strip = cached[1]
        if scroll_x == 0 and strip.cell_length == self.size.width:
            return strip
        return strip.crop(scroll_x, scroll_x + self.size.width)
