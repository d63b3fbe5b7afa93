"""Compare: a baseline and candidates picked by key; overheads with CI and verdicts."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static

from results.format import EMPTY, fmt_ci, fmt_num, fmt_pct
from results.labels import CPU_CELL
from results.share_series import chart_series

from ..data import ComparisonView, chart_label
from .history import backend_text, headline_text, mark_incomplete
from ..widgets.charts import BarChart, TimeChart

VERDICT_STYLE = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "bold yellow",
                 "NOT COMPARABLE": "bold white on red"}
# isolation-check verdicts (gpubench check; results.check_verdicts)
CHECK_STYLE = {"ENFORCED": "bold green", "NOT ENFORCED": "bold red", "NOT APPLICABLE": "dim",
               "MEASURED": "cyan", "WRONG ERROR": "bold yellow", "NOT SUPPORTED": "dim"}


def verdict_text(verdict: str) -> Text:
    return Text(verdict, style=VERDICT_STYLE.get(verdict.upper(), "bold"))


def check_verdict_text(verdict: str) -> Text:
    return Text(verdict, style=CHECK_STYLE.get((verdict or "").upper(), "bold"))


def checks_table(views: list[ComparisonView]) -> Table | None:
    """The candidates' isolation-check verdicts (None when no view has any): one line per
    check (the reason cut to fit; exports and `gpubench compare` keep it whole), and a caption
    naming the runs the verdicts come from."""
    if not any(v.checks for v in views):
        return None
    table = Table(expand=True, header_style="bold", box=None, title="Isolation checks",
                  title_justify="left", title_style="bold", caption_justify="left",
                  caption_style="dim", pad_edge=False)
    table.add_column("cand", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("observed", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("configured", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("reason", ratio=1, no_wrap=True, overflow="ellipsis")
    sources: dict[str, None] = {}
    for n, v in enumerate(views, 1):
        for c in v.checks:
            role = c.get("role") or ""
            table.add_row(f"C{n}", c.get("check") or "", check_verdict_text(c.get("verdict") or ""),
                          c.get("observed") or EMPTY, c.get("configured") or EMPTY, role,
                          c.get("reason") or "")
            sources[f"C{n} {role} {c.get('run') or '?'}"] = None
    table.caption = "from: " + ";  ".join(sources)
    return table


def share_chart_data(store, views: list[ComparisonView]) -> tuple[str, list, dict] | None:
    """The first compute check beside the comparisons that recorded its share over time:
    (whose it is, x in seconds, {load: shares}); None when none did."""
    for n, v in enumerate(views, 1):
        for row in v.checks:
            if row.get("check") != "compute" or not row.get("run"):
                continue
            try:
                doc = store.load(row["run"])
            except Exception:     # a check run deleted meanwhile: no chart, the table stays
                continue
            for check in doc.get("checks") or []:
                if isinstance(check, dict) and check.get("check") == "compute":
                    xs, series = chart_series(check)
                    if xs:
                        return f"C{n} {row['run']}", xs, series
    return None


class CompareScreen(Screen):
    AUTO_FOCUS = "#compare-runs"
    DEFAULT_CSS = """
    #compare-checks { height: auto; padding: 1 1 0 1; }
    #compare-share { height: 16; }
    """
    BINDINGS = [
        Binding("b", "baseline", "Baseline"),
        Binding("space", "candidate", "Candidate"),
        Binding("x", "clear", "Clear"),
        Binding("e", "export('md')", "Export MD"),
        Binding("v", "export('csv')", "Export CSV"),
        Binding("m", "export('comparison.md')", "comparison.md"),
    ]
    PALETTE = [
        ("Compare: set selected run as baseline", "screen.baseline", "On the Compare screen"),
        ("Compare: toggle selected run as candidate", "screen.candidate", "On the Compare screen"),
        ("Compare: clear selection", "screen.clear", ""),
        ("Compare: export markdown table", "screen.export('md')", "comparison-<id>.md in the data dir"),
        ("Compare: export CSV", "screen.export('csv')", "comparison-<id>.csv in the data dir"),
        ("Compare: write comparison.md", "screen.export('comparison.md')", "the full report"),
    ]

    def __init__(self) -> None:
        super().__init__(id="compare")
        self.views: list[ComparisonView] = []
        self._shown_version = -1

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-top"):
            with Vertical(id="compare-pick"):
                yield Label("Saved runs: b = baseline, space = candidate", classes="section-title")
                yield DataTable(id="compare-runs", cursor_type="row", zebra_stripes=True)
            with Vertical(id="compare-chart-box"):
                yield BarChart(id="compare-chart")
        yield Label("", id="compare-selection")
        yield Static("", id="compare-banner")
        with VerticalScroll(id="compare-table-box"):
            yield Static("", id="compare-table")
            yield Static("", id="compare-checks")
            yield TimeChart("compute share over time", "share of unlimited", min_interval=0.0,
                            xlabel="seconds", id="compare-share")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#compare-runs", DataTable)
        # no Scenario column: a run's id says its scenario; the Label next to the id, where a
        # narrow terminal never cuts it off
        table.add_columns("", "Run", "Label", "Backend", "Headline", "Host")
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    @property
    def selection(self):
        return self.app.compare_selection

    def reload(self) -> None:
        table = self.query_one("#compare-runs", DataTable)
        row = table.cursor_row
        table.clear()
        sel = self.selection
        for r in self.app.store.list_runs():
            mark = ("B" if r.id == sel.baseline else
                    f"C{sel.candidates.index(r.id) + 1}" if r.id in sel.candidates else "")
            table.add_row(Text(mark, style="bold"), r.id, r.label, backend_text(r.backend),
                          mark_incomplete(Text(headline_text(r)), r), r.host, key=r.id)
        if table.row_count:
            table.move_cursor(row=min(row or 0, table.row_count - 1))
        if self._shown_version != sel.version:
            self.recompute()

    def selected_id(self) -> str | None:
        table = self.query_one("#compare-runs", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def recompute(self) -> None:
        sel = self.selection
        self._shown_version = sel.version
        self.views = []
        if sel.baseline:
            for cand in sel.candidates:
                try:
                    self.views.append(self.app.store.compare(sel.baseline, cand))
                except Exception as exc:
                    self.app.notify(f"Cannot compare {cand}: {exc}", severity="error")
        self.render_views()

    def render_views(self) -> None:
        sel = self.selection
        cands = "  ".join(f"C{i + 1} {c}" for i, c in enumerate(sel.candidates))
        self.query_one("#compare-selection", Label).update(
            f"B {sel.baseline or EMPTY + ' (press b on a run)'}   ·   "
            f"{cands or 'candidates: ' + EMPTY + ' (press space on a run)'}")
        banner = Text()
        for n, v in enumerate(self.views, 1):
            banner.append(f"C{n} figures by {v.backends}\n",
                          style="yellow" if CPU_CELL in v.backends else "dim")
            for line, verdict in v.step_tails:    # the tail a service feels, first
                banner.append(f"C{n} {line}\n", style=VERDICT_STYLE.get(verdict.upper(), "bold"))
            for reason in v.not_comparable:
                banner.append(f" NOT COMPARABLE: {v.candidate} vs {v.baseline}: {reason} \n",
                              style="bold white on red")
            for w in v.warnings:   # the pair's (the line above names B and C1...): either side
                banner.append(f"⚠ C{n} vs B: {w}\n", style="yellow")
        self.query_one("#compare-banner", Static).update(banner)
        table = Table(expand=True, header_style="bold", box=None)
        for col, justify in (("", "left"), ("metric", "left"), ("n", "right"),
                             ("baseline", "right"),
                             ("candidate value", "right"), ("overhead", "right"),
                             ("95 % CI", "right"), ("target", "right"), ("verdict", "left"),
                             ("note", "left")):
            table.add_column(col, justify=justify, no_wrap=col in ("metric", "n"))
        labels, values = [], []
        target = None
        for n, v in enumerate(self.views, 1):
            for r in v.rows:
                table.add_row(f"C{n}", r.metric, r.counted.replace(" ", ""), fmt_num(r.baseline, 1),
                              fmt_num(r.candidate, 1), fmt_pct(r.overhead_pct),
                              fmt_ci(r.ci_low, r.ci_high),
                              EMPTY if r.target_pct is None else f"< {r.target_pct:g} %",
                              verdict_text(r.verdict), r.note)
                if r.overhead_pct is not None:
                    labels.append(f"C{n} {chart_label(r, v.rows)}")
                    values.append(r.overhead_pct)
                    target = r.target_pct if r.target_pct is not None else target
        if not self.views:
            self.query_one("#compare-table", Static).update(
                "Pick a baseline (b) and one or more candidates (space) from the saved runs.")
        else:
            self.query_one("#compare-table", Static).update(table)
        checks = self.query_one("#compare-checks", Static)
        ctable = checks_table(self.views)
        checks.display = ctable is not None
        checks.update(ctable if ctable is not None else "")
        share = self.query_one("#compare-share", TimeChart)
        found = share_chart_data(self.app.store, self.views) if ctable is not None else None
        share.display = found is not None
        if found is not None:
            whose, xs, series = found
            share.show(xs, series, whose)
        self.query_one(BarChart).show(labels, values, "overhead % (lower is better)", target)

    # -- actions ------------------------------------------------------------------------
    def action_baseline(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.selection.set_baseline(run_id)
            self.reload()

    def action_candidate(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.selection.toggle_candidate(run_id)
            self.reload()

    def action_clear(self) -> None:
        self.selection.clear()
        self.reload()

    def action_export(self, fmt: str) -> None:
        if not self.views:
            self.app.notify("Nothing to export: pick a baseline and a candidate.",
                            severity="warning")
            return
        try:   # comparison-<baseline id>.md|csv, sanitised, in the data directory
            path = self.app.store.export(self.views, fmt)
        except Exception as exc:
            self.app.notify(f"Export failed: {exc}", severity="error")
            return
        self.app.notify(f"Wrote {path}")
