"""Tables on stdout: a rich table on a terminal, plain tab-separated lines in a pipe."""
from __future__ import annotations

import sys
from typing import Any, Sequence

VERDICT_STYLES = {"PASS": "green", "FAIL": "bold red", "INCONCLUSIVE": "yellow",
                  "VALID": "green", "INVALID": "bold red", "NOT COMPARABLE": "bold red",
                  "ENFORCED": "green", "NOT ENFORCED": "bold red", "NOT APPLICABLE": "dim",
                  "MEASURED": "cyan", "FEW RESULTS": "yellow", "WRONG ERROR": "bold yellow",
                  "NOT SUPPORTED": "dim"}


def is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None,
                styles: dict[str, str] | None = None) -> None:
    """A rich table on a terminal; tab-separated lines (header first) in a pipe."""
    if is_tty():
        # rich's console costs ~60 ms to import: only a terminal pays it, a pipe never does
        from rich.console import Console
        from rich.table import Table
        table = Table(title=title, box=None, header_style="bold", pad_edge=False)
        for i, c in enumerate(columns):
            table.add_column(c, overflow="fold", no_wrap=(i == 0))
        for row in rows:
            cells = []
            for c, v in zip(columns, row):
                text = "" if v is None else str(v)
                style = (styles or {}).get(text)
                cells.append(f"[{style}]{text}[/]" if style else text)
            table.add_row(*cells)
        Console(highlight=False).print(table)
        return
    if title:
        print(f"# {title}")
    print("\t".join(columns))
    for row in rows:  # one line per row, whatever a label or a name holds
        print("\t".join("" if v is None else " ".join(str(v).replace("\t", " ").splitlines())
                         for v in row))
