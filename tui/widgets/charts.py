"""plotext charts that redraw at a bounded rate.

A plotext redraw of a wide chart costs 12-14 ms, so a chart never redraws on
every sample or cursor move: `show()` records what to draw and the redraw
happens at most every `min_interval` seconds (a timer catches the last change).
"""
from __future__ import annotations

import functools
import time
from typing import Sequence

from plotext._utility import colors_to_ansi
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual_plotext import PlotextPlot

from results.stats import finite_number


MAX_POINTS = 120
# plotext rounds every coordinate times 10^8 to an integer: a value near the largest float (a
# broken stream's) overflows it. Nothing we draw comes near this bound.
PLOT_LIMIT = 1e15


def drawable(value) -> bool:
    """Whether plotext can place this value: a finite number well inside PLOT_LIMIT."""
    v = finite_number(value)
    return v is not None and abs(v) < PLOT_LIMIT


class CachedPlot(PlotextPlot):
    """A PlotextPlot drawn with the Line API from plotext's own cell matrix.

    PlotextPlot.render() rebuilds the figure on every render (a layout or a
    neighbour's repaint is enough) and round-trips it through ANSI text, whose
    parsing costs as much as plotting. Here the figure is built only when data,
    size or theme change, and each row becomes a Strip straight from plotext's
    marker/colour matrices, one Segment per run of equal colours.
    """

    _data_version = 0
    _cached: tuple | None = None
    builds = 0

    def mark_changed(self) -> None:
        self._data_version += 1
        self.refresh()

    def render_line(self, y: int) -> Strip:
        strips = self._strips()
        if 0 <= y < len(strips):
            return strips[y]
        return Strip.blank(self.size.width, self.rich_style)

    def _strips(self) -> list[Strip]:
        width, height = self.size
        key = (self._data_version, width, height, self.app.theme, self.theme)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        strips = self._build(width, height) if width > 0 and height > 0 else []
        self.builds += 1
        self._cached = (key, strips)
        return strips

    def _build(self, width: int, height: int) -> list[Strip]:
        plot = self._plot
        plot._limit_size(False, False)       # not capped at the real terminal's size
        plot.plotsize(width, height)
        plot._set_size(width, height)
        plot.theme(self._get_plotext_theme_name(self.app.theme))
        plot._build_matrix()
        m = plot.monitor.matrix
        base = self.rich_style
        strips = []
        for row in reversed(range(m.rows)):
            markers, fg, bg, st = m.marker[row], m.fullground[row], m.background[row], m.style[row]
            segments = []
            run_start = 0
            for col in range(1, m.cols + 1):
                if col == m.cols or (fg[col], st[col], bg[col]) != (fg[run_start], st[run_start],
                                                                      bg[run_start]):
                    style = _style_for(fg[run_start], st[run_start], bg[run_start])
                    segments.append(Segment("".join(markers[run_start:col]),
                                            base + style if style else base))
                    run_start = col
            strips.append(Strip(segments).adjust_cell_length(width, base))
        return strips


@functools.lru_cache(maxsize=512)
def _style_for(fg, style, bg) -> Style | None:
    """plotext's colour triple as a Rich style, through plotext's own ANSI codes."""
    ansi = colors_to_ansi(fg, style, bg)
    if not ansi:
        return None
    text = Text.from_ansi(ansi + "x")
    return text.spans[0].style if text.spans else None


class ThrottledPlot(CachedPlot):
    """A chart whose `show()` only records what to draw; the redraw happens in `flush()` at
    most every `min_interval` seconds (the dashboard calls it from its 10 Hz tick, so chart
    redraws land in frames that happen anyway)."""

    def __init__(self, title: str, *, min_interval: float = 1.0, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.min_interval = min_interval
        self._pending: tuple | None = None
        self._last_draw = 0.0
        self.draws = 0

    def _want(self, pending: tuple) -> None:
        self._pending = pending
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Draw what is pending if the last draw is old enough."""
        if self._pending is None:
            return
        if force or time.monotonic() - self._last_draw >= self.min_interval:
            pending, self._pending = self._pending, None
            self._last_draw = time.monotonic()
            self.draws += 1
            plt = self.plt
            plt.clear_data()
            plt.clear_figure()
            self._figure(*pending)
            self.mark_changed()

    def _figure(self, *pending) -> None:
        raise NotImplementedError


class TimeChart(ThrottledPlot):
    """A line chart of one or more series over time (engine time unless told)."""

    DEFAULT_CSS = """
    TimeChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str, ylabel: str = "", *, min_interval: float = 1.0,
                 xlabel: str = "engine time (s)", id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(title, min_interval=min_interval, id=id, classes=classes)
        self.ylabel = ylabel
        self.xlabel = xlabel

    def show(self, x: Sequence[float], series: dict[str, Sequence[float | None]],
             subtitle: str = "") -> None:
        self._want((list(x), {k: list(v) for k, v in series.items()}, subtitle))

    def clear_chart(self, message: str = "") -> None:
        self.show([], {}, message)

    def _figure(self, x, series, subtitle) -> None:
        plt = self.plt
        plt.title(f"{self.title}  {subtitle}".strip())
        if self.ylabel:
            plt.ylabel(self.ylabel)
        plt.xlabel(self.xlabel)
        for name, ys in series.items():
            pts = [(a, b) for a, b in zip(x, ys) if drawable(a) and drawable(b)]
            if len(pts) > MAX_POINTS:         # plotext's cost grows with points, not pixels
                step = len(pts) / MAX_POINTS
                pts = [pts[int(i * step)] for i in range(MAX_POINTS - 1)] + [pts[-1]]
            if pts:
                xs, yv = zip(*pts)
                plt.plot(list(xs), list(yv), label=name, marker="braille")


class ColumnChart(ThrottledPlot):
    """Vertical bars over labelled categories (a step-latency histogram, or a percentile
    profile); only a few labels are written under the bars so that they never overlap."""

    DEFAULT_CSS = """
    ColumnChart { height: 1fr; min-height: 6; }
    """

    TICKS = 4

    def show(self, labels: Sequence[str], values: Sequence[float], title: str,
             xlabel: str = "", ylabel: str = "") -> None:
        pending = (list(labels), list(values), title, xlabel, ylabel)
        if pending != self._shown:       # the same figure again (a repaint tick) costs nothing
            self._shown = pending
            self._want(pending)

    _shown: tuple | None = None

    def _figure(self, labels, values, title, xlabel, ylabel) -> None:
        plt = self.plt
        plt.title(title)
        if xlabel:
            plt.xlabel(xlabel)
        if ylabel:
            plt.ylabel(ylabel)
        if not labels:
            return
        xs = list(range(len(labels)))
        plt.bar(xs, [v if drawable(v) else 0.0 for v in values], width=0.8)
        every = max(1, -(-len(labels) // self.TICKS))
        ticks = xs[::every]
        plt.xticks(ticks, [labels[i] for i in ticks])


class BarChart(CachedPlot):
    """A horizontal bar chart (overheads on the compare screen)."""

    DEFAULT_CSS = """
    BarChart { height: 1fr; min-height: 6; }
    """

    def show(self, labels: Sequence[str], values: Sequence[float], title: str,
             target: float | None = None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        if labels:
            plt.bar(list(labels), list(values), orientation="horizontal", width=0.3)
        if target is not None:
            plt.vline(target)
        self.mark_changed()
