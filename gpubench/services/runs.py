"""Finding stored runs: what a RUN reference names, each scenario's newest run, and whether a
scenario named on the command line is configured."""
from __future__ import annotations

from typing import Callable, Sequence

from results.schema import RunNotFound
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


def resolve_run(store: Store, ref: str) -> str:
    """The run id of a run id, a unique prefix of one, or `@scenario` (its newest run)."""
    if ref.startswith("@"):
        return newest_run_id(store, ref[1:])
    return store.resolve(ref)


def newest_run_id(store: Store, scenario: str) -> str:
    """The id of the scenario's newest stored run; RunNotFound when it has none."""
    runs = [r for r in store.list_runs().runs if r.get("scenario") == scenario]
    if not runs:
        raise RunNotFound(f"no stored run of scenario {scenario!r}")
    return runs[-1]["id"]


def newest_readable(store: Store, scenario: str, runs: Sequence[dict],
                    on_skip: Callable[[str], None] | None = None) -> dict | None:
    """The document of the scenario's newest run that can be read, else None; `runs` is a
    store listing (oldest first). Each run skipped on the way is told to `on_skip`."""
    for summary in reversed([r for r in runs if r.get("scenario") == scenario]):
        try:
            return store.load(summary["id"])
        except Exception as exc:  # any unreadable run: the next older one may do
            if on_skip is not None:
                on_skip(f"skipped {summary['id']}: {exc}")
    return None
