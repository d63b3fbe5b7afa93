"""A stored interference matrix (the `matrix` check of gpubench/checks/matrix.py) as text:
the grid `show` and `compare` print and the TUI colours, and each cell's details.

    columns, rows = matrix_grid(check)    # rows victims, columns aggressor · layer
    layer_notes(check)                    # ["MPS 50%: NOT AVAILABLE (no MPS control ...)"]
    detail_rows(check)                    # one row per cell under DETAIL_COLUMNS
    cell_lines(layer, cell)               # the numbers of one cell, one per line
    inflation_band(1.3)                   # "yellow": the colour class of a p99 inflation

The band thresholds (green below 1.1, yellow below 1.5, red from there) are shared by the
CLI and the TUI's grid so that both name a cell alike. Standard library only: `show` and the
TUI import it without NumPy.
"""
from __future__ import annotations

import math

from .check_verdicts import MEASURED
from .format import EMPTY

DETAIL_COLUMNS = ("layer", "victim", "aggressor", "p50", "p99", "victim share",
                  "aggressor share", "Jain", "NVML")
GREEN_BELOW, YELLOW_BELOW = 1.1, 1.5
BANDS = ("green", "yellow", "red")
GRID_TITLE = ("interference matrix: the victim's p99 beside each aggressor over the victim "
              "alone (ratio [95 % CI])")


def inflation_band(ratio: float | None) -> str | None:
    """green < 1.1 <= yellow < 1.5 <= red; None for a cell without a figure."""
    if ratio is None or not math.isfinite(ratio):
        return None
    return BANDS[0] if ratio < GREEN_BELOW else BANDS[1] if ratio < YELLOW_BELOW else BANDS[2]


def cell_text(inflation: dict | None, what: str = "p99") -> str:
    """'p99 ×1.66 [1.40, 1.90]', or 'p99 —' for a cell without a figure."""
    if not inflation:
        return f"{what} —"
    return (f"{what} ×{inflation['ratio']:.2f} "
            f"[{inflation['lo']:.2f}, {inflation['hi']:.2f}]")


def is_matrix(check: dict | None) -> bool:
    return isinstance(check, dict) and check.get("check") == "matrix" \
        and isinstance(check.get("layers"), list)


def grid_layers(check: dict) -> list[dict]:
    """The layers that have cells (measured or failed); the others are layer_notes."""
    return [lay for lay in check.get("layers") or [] if lay.get("cells")]


def column_name(aggressor: str, layer: dict) -> str:
    return f"{aggressor} · {layer.get('label') or layer.get('name')}"


def find_cell(layer: dict, victim: str, aggressor: str) -> dict | None:
    return next((c for c in layer.get("cells") or []
                 if c.get("victim") == victim and c.get("aggressor") == aggressor), None)


def short_cell(cell: dict | None) -> str:
    """A grid cell: 'p99 ×1.66 [1.40, 1.90]', or what kept it from being measured."""
    if cell is None:
        return EMPTY
    if cell.get("status") != MEASURED:
        return str(cell.get("status") or EMPTY)
    return cell_text(cell.get("p99"))


def matrix_grid(check: dict) -> tuple[list[str], list[list[str]]]:
    columns = ["victim"]
    keys = []
    for lay in grid_layers(check):
        for a in check.get("aggressors") or []:
            columns.append(column_name(a, lay))
            keys.append((lay, a))
    rows = [[v] + [short_cell(find_cell(lay, v, a)) for lay, a in keys]
            for v in check.get("victims") or []]
    return columns, rows


def layer_notes(check: dict) -> list[str]:
    """One line per layer that was not measured (NOT AVAILABLE, FAILED) with its reason, and
    one per victim whose speed alone moved between its run before the pairs and its run after
    them (results/matrix_stats.alone_stability): its cells compare processes as much as they
    show interference."""
    notes = []
    for lay in check.get("layers") or []:
        if lay.get("status") != MEASURED:
            notes.append(f"{lay.get('label')}: {lay.get('status')} ({lay.get('why')})")
            continue
        for victim, st in (lay.get("alone_stability") or {}).items():
            if st and not st.get("stable", True):
                notes.append(
                    f"{lay.get('label')}: {victim} alone moved p50 ×{st['ratio']:.2f} "
                    f"[{st['lo']:.2f}, {st['hi']:.2f}] between its runs before and after the "
                    f"pairs (over ±{st['limit']:.0%}): its cells are not evidence of "
                    "interference")
    return notes


def _ratio(r: dict | None) -> str:
    return EMPTY if not r else f"{r['ratio']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]"


def _nvml(n: dict | None) -> str:
    if not n:
        return EMPTY
    if n.get("status") in ("AGREE", "DISAGREE"):
        return (f"{n['status']} (split {n['nvml_split'][0]:.2f} vs measured "
                f"{n['measured_split'][0]:.2f})")
    return f"{n.get('status')}: {n.get('why')}"


def detail_row(layer: dict, cell: dict) -> list[str]:
    label = str(layer.get("label") or layer.get("name"))
    if cell.get("status") != MEASURED:
        return [label, cell.get("victim") or "", cell.get("aggressor") or "",
                f"{cell.get('status')}: {cell.get('why')}", "", "", "", "", ""]
    jain = cell.get("jain")
    return [label, cell["victim"], cell["aggressor"], _ratio(cell.get("p50")),
            _ratio(cell.get("p99")), _ratio(cell.get("victim_share")),
            _ratio(cell.get("aggressor_share")), EMPTY if jain is None else f"{jain:.2f}",
            _nvml(cell.get("nvml"))]


def detail_rows(check: dict) -> list[list[str]]:
    return [detail_row(lay, c) for lay in grid_layers(check) for c in lay["cells"]]


def cell_lines(layer: dict, cell: dict) -> list[str]:
    """The numbers of one cell, one `name: value` a line (the TUI's cell details)."""
    row = detail_row(layer, cell)
    w = cell.get("windows") or {}
    lines = [f"{name}: {value}" for name, value in zip(DETAIL_COLUMNS, row) if value]
    if w:
        lines.append(f"windows beside the other side: victim {w.get('victim')} of "
                     f"{w.get('victim_run')}, aggressor {w.get('aggressor')} of "
                     f"{w.get('aggressor_run')}")
    return lines


def matrix_observed(check: dict) -> str:
    """The worst measured cell in a few words (the checks table's `observed`)."""
    cells = [(lay, c) for lay in grid_layers(check) for c in lay["cells"]
             if c.get("status") == MEASURED and c.get("p99")]
    if not cells:
        return EMPTY
    lay, c = max(cells, key=lambda lc: lc[1]["p99"]["ratio"])
    return (f"worst p99 ×{c['p99']['ratio']:.2f} ({c['victim']} beside {c['aggressor']}, "
            f"{lay.get('label')})")


def matrix_lines(check: dict) -> list[str]:
    """Every cell and every unmeasured layer, one line each (`gpubench check`'s reasons)."""
    lines = list(layer_notes(check))
    for lay in grid_layers(check):
        for c in lay["cells"]:
            row = detail_row(lay, c)
            head = f"{row[0]}: {c.get('victim')} beside {c.get('aggressor')}:"
            if c.get("status") != MEASURED:
                lines.append(f"{head} {row[3]}")
                continue
            lines.append(f"{head} {cell_text(c.get('p99'))}, {cell_text(c.get('p50'), 'p50')}, "
                         f"shares {row[5]} / {row[6]}, Jain {row[7]}, NVML {row[8]}")
    return lines


def matrix_tables(check: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, columns, rows) of the grid and of the cells' details; the layers that were
    not measured are named, with why, at the end of the grid's one-line title."""
    columns, rows = matrix_grid(check)
    notes = layer_notes(check)
    title = GRID_TITLE + "".join(f"; {n}" for n in notes)
    out = [(title, columns, rows)]
    details = detail_rows(check)
    if details:
        out.append(("interference matrix cells: ratios together / alone [95 % CI]",
                    list(DETAIL_COLUMNS), details))
    return out


def row_matrices(rows: list[dict]) -> list[tuple[str, dict]]:
    """(role, matrix) of the flat check rows (results.check_verdicts.check_rows) that carry
    one: what a comparison prints after its checks table."""
    return [(str(r.get("role") or ""), r["matrix"]) for r in rows if is_matrix(r.get("matrix"))]


def matrix_tsv(check: dict, role: str = "") -> list[str]:
    """The matrix tables as `# title` lines and tab-separated rows (plain text for pipes)."""
    out = []
    for title, columns, rows in matrix_tables(check):
        out.append(f"# {title}" + (f" ({role})" if role else ""))
        out.append("\t".join(columns))
        out += ["\t".join(c.replace("\t", " ") for c in row) for row in rows]
    return out
