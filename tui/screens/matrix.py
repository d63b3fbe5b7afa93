"""The interference matrix of a saved check run as a coloured grid (History: `m`).

Rows are victims, columns an aggressor under a layer (results/matrix_table.py, the grid that
`gpubench show` prints); a cell is coloured by the victim's p99 inflation: green below 1.1,
yellow below 1.5, red above (results.matrix_table.inflation_band). Enter or `i` on a cell
shows its numbers: p50 and p99 with their CIs, both throughput shares, Jain's index, NVML.
Layers the host did not offer are listed under the grid with why.
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static

from results.matrix_table import (cell_lines, find_cell, grid_layers, inflation_band,
                                  layer_notes, matrix_grid)

BAND_STYLE = {"green": "bold black on green", "yellow": "bold black on yellow",
              "red": "bold white on red", None: "dim"}


class MatrixScreen(Screen):
    AUTO_FOCUS = "#matrix-grid"
    DEFAULT_CSS = """
    #matrix-notes { padding: 0 1; color: $warning; }
    #matrix-cell { padding: 0 1; height: auto; border: round $accent; }
    """
    BINDINGS = [Binding("escape,q", "close", "Back"),
                Binding("i", "cell_numbers", "Cell numbers")]

    def __init__(self, run_id: str, check: dict) -> None:
        super().__init__(id="matrix")
        self.run_id = run_id
        self.check = check
        self.keys: list[tuple[dict, str]] = []     # per grid column after the first: (layer, aggressor)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Interference matrix of run {self.run_id}: the victim's p99 beside each "
                    f"aggressor over the victim alone, ratio [95 % CI]\n"
                    f"green < 1.1 ≤ yellow < 1.5 ≤ red · Enter or i: the cell's numbers",
                    id="matrix-title")
        yield DataTable(id="matrix-grid", cursor_type="cell")
        yield Label("", id="matrix-notes")
        yield Static("", id="matrix-cell")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        columns, rows = matrix_grid(self.check)
        table.add_columns(*columns)
        self.keys = [(lay, a) for lay in grid_layers(self.check)
                     for a in self.check.get("aggressors") or []]
        victims = self.check.get("victims") or []
        for v, row in zip(victims, rows):
            cells = [Text(row[0], style="bold")]
            for (lay, a), text in zip(self.keys, row[1:]):
                cell = find_cell(lay, v, a)
                band = inflation_band(((cell or {}).get("p99") or {}).get("ratio"))
                cells.append(Text(f" {text} ", style=BAND_STYLE[band]))
            table.add_row(*cells, key=v)
        notes = layer_notes(self.check)
        label = self.query_one("#matrix-notes", Label)
        label.update("\n".join(notes))
        label.display = bool(notes)
        if not rows or not self.keys:
            self.query_one("#matrix-cell", Static).update(
                "No layer of this run has cells: every one was NOT AVAILABLE or failed.")
        elif len(table.columns) > 1:
            table.move_cursor(row=0, column=1)

    def focused_cell(self) -> tuple[dict, dict] | None:
        """(layer, cell) under the grid's cursor; None on the victim column."""
        table = self.query_one(DataTable)
        row, col = table.cursor_coordinate
        victims = self.check.get("victims") or []
        if col < 1 or col > len(self.keys) or row >= len(victims):
            return None
        lay, a = self.keys[col - 1]
        cell = find_cell(lay, victims[row], a)
        return (lay, cell) if cell is not None else None

    def action_cell_numbers(self) -> None:
        got = self.focused_cell()
        panel = self.query_one("#matrix-cell", Static)
        if got is None:
            panel.update("Move to a cell (an aggressor's column) to see its numbers.")
            return
        panel.update("\n".join(cell_lines(*got)))

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        self.action_cell_numbers()

    def action_close(self) -> None:
        self.app.pop_screen()
