"""Importing a seed-format text result (or a kubectl log of one) as a stored run."""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from engine.plan import MAX_COPY, format_size
from gpubench.run_identity import scenario_record
from gpubench.services.runs import ServiceError, check_scenario
from results.legacy import import_legacy
from results.store import Store
from scenarios.bench_defaults import parse_size
from scenarios.config import Config


def legacy_scenario_for(path: Path, config: Config, explicit: str | None = None) -> str:
    """The scenario a legacy file belongs to: given, or the one whose legacy_file matches."""
    if explicit:
        return check_scenario(config, explicit)
    for s in config.scenarios.values():
        if s.legacy_file and s.legacy_file == path.name:
            return s.name
    raise ServiceError(f"no scenario has legacy_file = {path.name!r}: type the path, a space "
                       f"and the scenario name ({', '.join(config.scenarios)})")


def read_legacy_file(path: Path, stream: BinaryIO | None = None) -> str:
    """The file's text (undecodable bytes replaced), or the text of `stream` (stdin), which
    `path` then names; ServiceError when it cannot be read."""
    try:
        raw = stream.read() if stream is not None else path.read_bytes()
    except FileNotFoundError:
        raise ServiceError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ServiceError(f"{path}: is a directory") from None
    except OSError as exc:
        raise ServiceError(f"{path}: cannot read: {exc.strerror}") from None
    return raw.decode("utf-8", errors="replace")


def roundtrip_size(text: str | None) -> tuple[int, str] | None:
    """The seed's round-trip copy size as (bytes, the engine's spelling), None when not
    given; ServiceError for one that is not a size the engine's round trip takes."""
    if text is None:
        return None
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise ServiceError(f"--size: {exc}") from None
    if size > MAX_COPY:
        raise ServiceError(f"--size: {text} is above {format_size(MAX_COPY)}")
    return size, format_size(size)


def import_legacy_text(config: Config, store: Store, scenario: str, text: str, *,
                       source: str, label: str = "", notes: str = "",
                       size: str | None = None) -> dict:
    """Save `text` as a run of the configured `scenario` (imported: true) and return its
    document; results.legacy.LegacyFormatError when the text holds no throughput figure.
    `size`: the round trip's copy size (e.g. "64KiB"), so it compares with measured runs."""
    doc = import_legacy(text, scenario_record(config.scenarios[scenario], config),
                        source=source, label=label, notes=notes,
                        roundtrip_size=roundtrip_size(size))
    store.save(doc, [])
    return doc
