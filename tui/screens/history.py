"""History: saved runs from the results store; filter, sort, label, delete, import, open."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label

from results.format import fmt_num
from results.labels import backend_cell, is_cpu
from results.matrix_table import is_matrix

from ..data import RunSummary
from .hosts import HostsScreen
from .import_dialog import ImportRequest, ImportScreen
from .matrix import MatrixScreen
from .modals import ConfirmScreen, InputScreen

SORTS = (("created", True), ("created", False), ("scenario", False), ("host", False),
         ("headline", True), ("validity", False))

VALIDITY_STYLE = {"VALID": "green", "INVALID": "bold red", "IMPORTED": "cyan",
                  "FEW RESULTS": "yellow"}
# how often History looks at the store's listing stamp (two stat calls) for runs that another
# process (the gpubench CLI) saved, relabelled or deleted
STORE_POLL_S = 2.0


def backend_text(backend: str) -> Text:
    """A run's backend cell (results.labels.backend_cell), yellow for a CPU run."""
    return Text(backend_cell(backend), style="yellow" if is_cpu(backend) else "")


def headline_text(run: RunSummary) -> str:
    """A run's headline rate with its unit: the runs listed mix workloads, and a decode run
    reads in tokens/s where the others read in ops/s (results.rates)."""
    return fmt_num(run.headline, 0, f" {run.headline_unit}")


def mark_incomplete(text: Text, run: RunSummary) -> Text:
    """`text` with " incomplete" after it for a run that was cancelled or cut off, wherever a
    run is listed: what it measured may count (VALID), but it is not the whole plan."""
    if run.incomplete:
        text.append(" incomplete", style="yellow")
    return text


class HistoryScreen(Screen):
    AUTO_FOCUS = "#history-table"
    DEFAULT_CSS = "#history-notes { padding: 0 1; color: $warning; }"
    BINDINGS = [
        Binding("enter", "open_run", "Open (replay)"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort"),
        Binding("l", "label", "Label"),
        Binding("d", "delete", "Delete"),
        Binding("i", "import_legacy", "Import legacy"),
        Binding("b", "baseline", "Baseline"),
        Binding("c", "candidate", "Candidate"),
        Binding("m", "matrix", "Matrix"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    PALETTE = [
        ("History: open selected run (replay)", "screen.open_run", "Replay its recorded stream"),
        ("History: filter runs", "screen.filter", "Text filter over all columns"),
        ("History: change sort order", "screen.sort", "created, scenario, host, headline rate, validity"),
        ("History: label selected run", "screen.label", "Set a label"),
        ("History: delete selected run", "screen.delete", "Asks to confirm"),
        ("History: interference matrix of selected run", "screen.matrix", "Its coloured grid (a `gpubench check --checks matrix` run)"),
        ("History: import legacy text result", "screen.import_legacy", "Seed-format text file, its scenario and round-trip size"),
    ]

    def __init__(self) -> None:
        super().__init__(id="history")
        self.filter_text = ""
        self.sort_index = 0
        self.runs: list[RunSummary] = []
        self._stamp: object = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("", id="history-status")
        yield Label("", id="history-notes")   # skipped files, runs to recover
        box = Input(placeholder="filter: scenario, host, label, backend… (Enter applies, Esc clears)",
                    id="history-filter")
        box.display = False
        yield box
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # the device last: the longest cell, and the one a narrow terminal may cut
        table.add_columns("Run", "Created (UTC)", "Scenario", "Host", "Backend", "Validity",
                          "Headline", "Label", "Device")
        self.reload()
        self.set_interval(STORE_POLL_S, self.poll_store)

    def on_screen_resume(self) -> None:
        self.poll_store()

    def poll_store(self) -> None:
        """Reload when the store changed behind the app's back (a run the CLI saved)."""
        if self.is_current and self.store.stamp() != self._stamp:
            self.reload()

    @property
    def store(self):
        return self.app.store

    def reload(self) -> None:
        self._stamp = self.store.stamp()
        try:
            self.runs = self.store.list_runs()
        except Exception as exc:
            self.runs = []
            self.app.notify(f"Cannot read saved runs: {exc}", severity="error")
        self.populate()

    def visible_runs(self) -> list[RunSummary]:
        runs = self.runs
        if self.filter_text:
            needle = self.filter_text.lower()
            runs = [r for r in runs if needle in " ".join(
                (r.id, r.scenario, r.host, r.backend, r.device, r.label, r.validity)).lower()]
        key, reverse = SORTS[self.sort_index]
        return sorted(runs, key=lambda r: (getattr(r, key) is None, getattr(r, key) or 0),
                      reverse=reverse)

    def populate(self) -> None:
        table = self.query_one(DataTable)
        keep = self.selected_id()
        table.clear()
        runs = self.visible_runs()
        for r in runs:
            validity = Text(r.validity, style=VALIDITY_STYLE.get(r.validity, ""))
            if r.counted:   # the headline's results that count
                validity.append(f" {r.counted}")
            table.add_row(r.id, r.created, r.scenario, r.host, backend_text(r.backend),
                          mark_incomplete(validity, r),
                          headline_text(r), r.label, r.device, key=r.id)
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        key, reverse = SORTS[self.sort_index]
        status = (f"{len(runs)} of {len(self.runs)} saved run(s) · sorted by {key}"
                  f"{' (desc)' if reverse else ''}")
        if self.filter_text:
            status += f" · filter {self.filter_text!r}"
        if not self.runs:
            status = (f"No saved runs yet. Press {HostsScreen.key_for('app.run_plan')} on the "
                      f"Hosts screen to run the plan, or run `gpubench run`: runs saved from "
                      f"the command line appear here by themselves.")
        if not self.store.available:
            status = "The results store (results/store.py) is not available: nothing saved yet."
        self.query_one("#history-status", Label).update(status)
        notes = self.query_one("#history-notes", Label)
        lines = [f"{r.id}: {r.flags[-1]}" for r in self.store.unfinished]
        lines += self.store.warnings
        notes.update(Text("\n".join(lines)))
        notes.display = bool(lines)

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    # -- actions ------------------------------------------------------------------------
    def action_open_run(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.app.action_open_run(run_id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_run()

    def action_filter(self) -> None:
        box = self.query_one("#history-filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        event.input.display = False
        self.query_one(DataTable).focus()
        self.populate()

    def action_clear_filter(self) -> None:
        box = self.query_one("#history-filter", Input)
        box.display = False
        self.filter_text = ""
        self.query_one(DataTable).focus()
        self.populate()

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.populate()

    def action_label(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return
        current = next((r.label for r in self.runs if r.id == run_id), "")

        def done(label: str | None) -> None:
            if label is None:
                return
            try:
                self.store.set_label(run_id, label)
            except Exception as exc:
                self.app.notify(f"Cannot label {run_id}: {exc}", severity="error")
                return
            self.reload()

        self.app.push_screen(InputScreen(f"Label for run {run_id}", current), done)

    def action_delete(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return

        def done(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.store.delete(run_id)
            except Exception as exc:
                self.app.notify(f"Cannot delete {run_id}: {exc}", severity="error")
                return
            self.app.notify(f"Deleted run {run_id}.")
            self.reload()

        self.app.push_screen(ConfirmScreen(f"Delete saved run {run_id}? This cannot be undone."),
                             done)

    def action_import_legacy(self) -> None:
        def done(answer: ImportRequest | None) -> None:
            if answer is None:
                return
            try:
                ids = self.store.import_legacy(Path(answer.path).expanduser(), answer.scenario,
                                               answer.size)
            except Exception as exc:
                self.app.notify(f"Import failed: {exc}", severity="error")
                return
            pairs = (f"its round trip of {answer.size} compares with a measured one"
                     if answer.size else "no round-trip size: its figures compare with no "
                     "measured run (NOT COMPARABLE)")
            self.app.notify(f"Imported {len(ids)} run(s) from {answer.path}; {pairs}.")
            self.reload()

        self.app.push_screen(ImportScreen(self.store.config.defaults.roundtrip_size), done)

    def action_baseline(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.app.compare_selection.set_baseline(run_id)
            self.app.notify(f"Baseline for Compare: {run_id}")

    def action_candidate(self) -> None:
        run_id = self.selected_id()
        if run_id:
            added = self.app.compare_selection.toggle_candidate(run_id)
            self.app.notify(f"{'Added' if added else 'Removed'} candidate {run_id}")

    def action_matrix(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return
        try:
            doc = self.store.load(run_id)
        except Exception as exc:
            self.app.notify(f"Cannot read run {run_id}: {exc}", severity="error")
            return
        check = next((c for c in doc.get("checks") or [] if is_matrix(c)), None)
        if check is None:
            self.app.notify(f"Run {run_id} has no interference matrix (`gpubench check "
                            f"--checks matrix` makes one).", severity="warning")
            return
        self.app.push_screen(MatrixScreen(run_id, check))
