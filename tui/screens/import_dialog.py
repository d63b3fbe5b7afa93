"""History's import dialog: what `gpubench import FILE --scenario S --size SIZE` takes, as
fields (the file, its scenario, the copy size of the seed's round trip)."""
from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


@dataclass(frozen=True)
class ImportRequest:
    path: str
    scenario: str | None       # None: the scenario whose legacy_file is the file's name
    size: str | None           # None: the seed's round-trip size is not known


class ImportScreen(ModalScreen[ImportRequest | None]):
    """Dismissed with an ImportRequest, or None when cancelled. `default_size` is the
    config's roundtrip_size: the size the app's own plan measures its round trip at."""
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = "#import-dialog Label { width: 1fr; }"   # long hints wrap inside the dialog

    def __init__(self, default_size: str) -> None:
        super().__init__()
        self.default_size = default_size

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="import-dialog"):
            yield Label("Import a seed-format text result (or a kubectl log of one)",
                        classes="section-title")
            yield Label("File:")
            yield Input(placeholder="baseline_results.txt", id="import-path")
            yield Label("Scenario (empty: the one whose legacy_file in config.toml is the "
                        "file's name):")
            yield Input(placeholder="bare-metal", id="import-scenario")
            yield Label(f"Bytes per copy of the seed's round trip (config.toml's "
                        f"roundtrip_size is {self.default_size}): its Throughput becomes the "
                        f"roundtrip of that size, which Compare pairs with a measured one. "
                        f"Empty: the size is unknown, and next to a measured run every seed "
                        f"figure is NOT COMPARABLE.")
            yield Input(value=self.default_size, placeholder="empty: size unknown",
                        id="import-size")
            yield Label("Tab moves between the fields; Enter imports, Esc cancels.",
                        classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = self.query_one("#import-path", Input)
        if not path.value.strip():
            path.focus()            # nothing to import yet: Enter in another field waits
            return
        self.dismiss(ImportRequest(
            path.value.strip(),
            self.query_one("#import-scenario", Input).value.strip() or None,
            self.query_one("#import-size", Input).value.strip() or None))

    def action_cancel(self) -> None:
        self.dismiss(None)
