"""What every command shares: exit codes, one-line errors, the argument parser that reports
bad input in one line, the result store and the run a RUN argument names."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from gpubench.services.runs import resolve_run
from results.store import Store

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (not usage + error) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def err(message: str) -> None:
    print(f"gpubench: {message}", file=sys.stderr)


def warn(message: str) -> None:
    print(f"gpubench: warning: {message}", file=sys.stderr)


def confirm(question: str) -> bool:
    """Ask on the terminal; refuses (UsageError) without one: pass --yes."""
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {question.rstrip('?')} without confirmation: no "
                         f"terminal to ask on (pass --yes)")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() in ("y", "yes"):
        return True
    print("kept", file=sys.stderr)
    return False


def open_store(args, config) -> Store:
    """The store of --data-dir, else the configuration's [store] data_dir."""
    return Store(Path(args.data_dir) if getattr(args, "data_dir", None) else config.data_dir)


def load_run(store: Store, ref: str) -> dict:
    """The document a RUN argument names: a run id, a unique prefix of one, or @SCENARIO
    (its newest complete run; a warning says when it falls back to another)."""
    return store.load(resolve_run(store, ref, warn))


def csv_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise UsageError("empty list")
    return items


def iso_date(text: str) -> str:
    """Accept 2026-11-25, 2026-11-25T10:00, ...; compared as UTC ISO text."""
    t = text.strip()
    try:
        datetime.fromisoformat(t.rstrip("Z"))
    except ValueError:
        raise UsageError(f"not a date: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return t.rstrip("Z")
