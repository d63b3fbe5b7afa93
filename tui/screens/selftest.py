"""The self-test dialog: progress while `gpubench selftest` runs, then its table.

The app's worker runs gpubench.selftest.Selftest (the CLI's code) and feeds this screen;
the arms are saved in the store like any run, so History shows them afterwards.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Log, Static

from gpubench.selftest.judging import FAILED, NOT_RESOLVED, PASSED

STATE_CLASS = {PASSED: "ok", NOT_RESOLVED: "unresolved", FAILED: "bad"}


class SelftestScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close"), Binding("x", "stop", "Stop")]

    def __init__(self, title: str, start) -> None:
        super().__init__()
        self.title_text = title
        self.finished = False
        self._start = start             # start(screen) -> the worker that feeds this screen
        self.worker = None              # cancelled by `x`
        self.closed = False             # Esc: the self-test goes on, nothing is drawn here

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="selftest"):
            yield Label(self.title_text, id="selftest-title")
            yield Log(id="selftest-log", max_lines=200)
            yield Static("", id="selftest-table")
            yield Label("x stops the self-test · Esc closes (it goes on in the background)",
                        classes="hint", id="selftest-hint")

    def on_mount(self) -> None:
        self.worker = self._start(self)

    def progress(self, line: str) -> None:
        if not self.closed:
            self.query_one(Log).write_line(line)

    def show_summary(self, text: str, state: str) -> None:
        """`state`: the summary's PASSED, FAILED or NOT RESOLVED, each drawn in its colour."""
        self.finished = True
        if self.closed:
            return
        table = self.query_one("#selftest-table", Static)
        table.update(text)
        for name, cls in STATE_CLASS.items():
            table.set_class(state == name, cls)
        self.query_one("#selftest-hint", Label).update("Esc closes · the arms are in History")

    def show_error(self, message: str) -> None:
        self.finished = True
        if self.closed:
            return
        self.query_one("#selftest-table", Static).update(f"Self-test could not run: {message}")
        self.query_one("#selftest-hint", Label).update("Esc closes")

    def action_stop(self) -> None:
        if self.worker is not None and not self.finished:
            self.worker.cancel()
            self.progress("stopped: the engine session in flight is ended, nothing is saved")

    def action_close(self) -> None:
        self.closed = True
        self.dismiss(None)
