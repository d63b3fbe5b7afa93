"""Finding stored runs: what a RUN reference names, the run that stands for each scenario
(its newest complete one), and whether a scenario named on the command line is configured."""
from __future__ import annotations

from typing import Callable, Sequence

from results.schema import CANCELLED, INCOMPLETE, RunNotFound
from results.store import Store
from scenarios.config import Config


class ServiceError(ValueError):
    """A problem the user can fix (a file that cannot be read, an unknown scenario), as one
    line: the CLI prints it and exits 2, the app shows it in a notification."""


def check_scenario(config: Config, name: str) -> str:
    """`name` when it is a configured scenario; ServiceError naming the configured ones."""
    if name not in config.scenarios:
        raise ServiceError(f"unknown scenario {name!r}; configured: "
                           f"{', '.join(config.scenarios)}")
    return name


def resolve_run(store: Store, ref: str, on_note: Callable[[str], None] | None = None) -> str:
    """The run id of a run id, a unique prefix of one, or `@scenario` (its newest complete
    run; `on_note` hears when it falls back to another)."""
    if ref.startswith("@"):
        return newest_run_id(store, ref[1:], on_note)
    return store.resolve(ref)


def is_complete(summary: dict) -> bool:
    """A run that ran its whole plan: not cancelled, cut off or short of sessions."""
    return summary.get("complete") is not False and \
        summary.get("outcome") not in (INCOMPLETE, CANCELLED)


def by_preference(summaries: Sequence[dict]) -> list[dict]:
    """The newest complete run first, then older complete ones, then the incomplete ones
    newest first: a cancelled one-trial partial never stands for a scenario while a
    complete run of it exists. `summaries`: a store listing, oldest first."""
    newest_first = list(reversed(summaries))
    return [s for s in newest_first if is_complete(s)] + \
        [s for s in newest_first if not is_complete(s)]


def fallback_note(scenario: str, chosen: dict, newest: dict) -> str | None:
    """What to tell when the run standing for `scenario` is not simply its newest complete
    one; None when it is."""
    if is_complete(chosen):
        if chosen is newest:
            return None
        return (f"@{scenario}: its newest run {newest['id']} is incomplete; using "
                f"{chosen['id']}, the newest complete run")
    return f"@{scenario}: no complete run; using {chosen['id']}, which is incomplete"


def newest_run_id(store: Store, scenario: str,
                  on_note: Callable[[str], None] | None = None) -> str:
    """The id of the scenario's newest complete run, else of its newest run (told to
    `on_note`); RunNotFound when it has none."""
    runs = [r for r in store.list_runs().runs if r.get("scenario") == scenario]
    if not runs:
        raise RunNotFound(f"no stored run of scenario {scenario!r}")
    chosen = by_preference(runs)[0]
    if on_note is not None and (note := fallback_note(scenario, chosen, runs[-1])):
        on_note(note)
    return chosen["id"]


def newest_readable(store: Store, scenario: str, runs: Sequence[dict],
                    on_note: Callable[[str], None] | None = None) -> dict | None:
    """The document of the scenario's newest complete run that can be read, else of its
    newest readable one, else None; `runs` is a store listing (oldest first). Each run
    skipped on the way, and a fall-back to an incomplete or older run, is told to `on_note`."""
    own = [r for r in runs if r.get("scenario") == scenario]
    for summary in by_preference(own):
        try:
            doc = store.load(summary["id"])
        except Exception as exc:  # any unreadable run: the next one may do
            if on_note is not None:
                on_note(f"skipped {summary['id']}: {exc}")
            continue
        if on_note is not None and (note := fallback_note(scenario, summary, own[-1])):
            on_note(note)
        return doc
    return None
