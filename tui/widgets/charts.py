"""plotext charts that redraw at a bounded rate.

A plotext redraw of a wide chart costs 12-14 ms, so a chart never redraws on
every sample or cursor move: `show()` records what to draw and the redraw
happens at most every `min_interval` seconds (a timer catches the last change).
"""
from __future__ import annotations

import time
from typing import Sequence

from textual_plotext import PlotextPlot


class TimeChart(PlotextPlot):
    """A line chart of one or more series over engine time."""

    DEFAULT_CSS = """
    TimeChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str, ylabel: str = "", *, min_interval: float = 0.5,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.ylabel = ylabel
        self.min_interval = min_interval
        self._pending: tuple | None = None
        self._last_draw = 0.0
        self._timer = None
        self.draws = 0

    def show(self, x: Sequence[float], series: dict[str, Sequence[float | None]],
             subtitle: str = "") -> None:
        self._pending = (list(x), {k: list(v) for k, v in series.items()}, subtitle)
        wait = self.min_interval - (time.monotonic() - self._last_draw)
        if wait <= 0:
            self._draw()
        elif self._timer is None:
            self._timer = self.set_timer(wait, self._draw)

    def clear_chart(self, message: str = "") -> None:
        self.show([], {}, message)

    def _draw(self) -> None:
        self._timer = None
        if self._pending is None:
            return
        x, series, subtitle = self._pending
        self._pending = None
        self._last_draw = time.monotonic()
        self.draws += 1
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{self.title}  {subtitle}".strip())
        if self.ylabel:
            plt.ylabel(self.ylabel)
        plt.xlabel("engine time (s)")
        for name, ys in series.items():
            pts = [(a, b) for a, b in zip(x, ys) if b is not None]
            if pts:
                xs, yv = zip(*pts)
                plt.plot(list(xs), list(yv), label=name, marker="braille")
        self.refresh()


class BarChart(PlotextPlot):
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
        self.refresh()
