"""The journal of a run being measured: each finished trial is on disk before the next begins.

`<data_dir>/<run id>.journal.jsonl`, JSON Lines:

    {"journal": 1, "run_id", "created", "scenario": {...}, "group": {...}, "label", "notes",
     "tool_version", "git_commit", "trials_planned": M, "pid", "hostname"}     # the header
    {"trial_index": i, "sessions": [{session record: lines, outcome, message, ...}]}  # per trial

Each line goes out in one write() and is fsync'ed before the plan goes on; a write that
fails (a full disk) is cut back off, so the journal always ends with whole trials (a kill
in the middle of a write leaves at most a torn last line, which readers skip). The writing
process holds an exclusive flock on the file for as long as it runs: a journal that nobody
holds and that has no document beside it is a run that was cut off (kill -9, SIGHUP, a
closed terminal, a full disk, a power cut). `gpubench recover` turns it into the document
(marked incomplete: "cut off after N of M trials") or discards it; when a plan saves its
document normally, the journal is removed.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from .document import SessionRecord, build_document, session_details, summary_of
from .files import fsync_dir, held_by_writer, read_stored, why
from .schema import DocumentError, StoreError, check_document, is_run_id
from .structure import JOURNAL_HEADER, JOURNAL_TRIAL

JOURNAL_SUFFIX = ".journal.jsonl"     # <run id><suffix>, beside the run's document in the store
JOURNAL_VERSION = 1
RECORD_FIELDS = tuple(f.name for f in fields(SessionRecord))


def _record_dict(rec: SessionRecord) -> dict:
    out = {name: getattr(rec, name) for name in RECORD_FIELDS}
    out["lines"] = [ln if isinstance(ln, str) else json.dumps(ln, separators=(",", ":"))
                    for ln in rec.lines]
    out["layer_reasons"] = [str(r) for r in rec.layer_reasons]
    out["layer_notes"] = [str(n) for n in rec.layer_notes]
    out["warnings"] = [str(w) for w in rec.warnings]
    out["details"] = session_details(rec.details) if rec.details else None
    return out


class JournalWriter:
    """Appends finished trials to a new journal; holds its flock until close()."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot start the journal {path.name}: {why(exc)}") from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            self._write({"journal": JOURNAL_VERSION, "pid": os.getpid(),
                         "hostname": socket.gethostname(), **header})
        except StoreError:
            self.discard()
            raise
        fsync_dir(path.parent)

    def append(self, trial_index: int, records: Sequence[SessionRecord]) -> None:
        """One finished trial (its sessions, raw lines included), durable on return."""
        self._write({"trial_index": trial_index,
                     "sessions": [_record_dict(r) for r in records]})

    def _write(self, obj: dict) -> None:
        try:
            data = (json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                               allow_nan=False) + "\n").encode("utf-8")
        except (TypeError, ValueError) as exc:   # NaN, or an object that is not JSON
            raise StoreError(f"cannot write the journal {self.path.name}: {exc}") from None
        size = os.fstat(self.fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
            os.fsync(self.fd)
        except OSError as exc:
            try:  # never leave half a trial behind the whole ones
                os.ftruncate(self.fd, size)
            except OSError:
                pass
            raise StoreError(f"cannot write the journal {self.path.name}: {why(exc)}") from None

    def close(self) -> None:
        """Stop writing; the journal stays (a save that failed: `gpubench recover` later)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """The run's document is saved (or nothing was measured): the journal goes."""
        try:
            self.path.unlink()
        except OSError:
            pass
        self.close()


@dataclass
class Journal:
    """A journal read back: the header and every whole trial in it."""
    path: Path
    run_id: str
    header: dict
    trials: list[tuple[int, list[SessionRecord]]]
    running: bool
    note: str = ""          # a torn or unreadable tail that was left out

    @property
    def trials_done(self) -> int:
        return len(self.trials)

    @property
    def trials_planned(self) -> int:
        return self.header["trials_planned"]

    @property
    def reason(self) -> str:
        return f"cut off after {self.trials_done} of {self.trials_planned} trials"

    def document(self) -> dict:
        """The run's document from what the journal holds, marked incomplete."""
        records = [rec for _, recs in self.trials for rec in recs]
        h = self.header
        group = dict(h.get("group") or {})
        if self.trials:   # the plan ran at least this far
            group["executed"] = max(i for i, _ in self.trials) + 1
        try:
            doc = build_document(records, h["scenario"], run_id=self.run_id,
                                 created=h["created"], tool_version=h.get("tool_version"),
                                 git_commit=h.get("git_commit"), group=group or None,
                                 label=h.get("label") or "", notes=h.get("notes") or "",
                                 complete=False, incomplete_reason=self.reason)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            # stream lines that pass the protocol check but hold what no engine writes
            raise DocumentError(f"journal: its trials do not make a document "
                                f"({type(exc).__name__}: {exc})") from None
        return check_document(doc, "journal")

    def summary(self) -> dict:
        """What `list` shows for it: the document's summary plus how far it got."""
        out = summary_of(self.document())
        out.update(unfinished="running" if self.running else "cut off",
                   trials_done=self.trials_done, trials_planned=self.trials_planned,
                   pid=self.header.get("pid"), hostname=self.header.get("hostname"))
        if self.running:
            out["incomplete_reason"] = (f"running: {self.trials_done} of "
                                        f"{self.trials_planned} trials so far")
        return out


def read_journal(path: Path) -> Journal:
    """Read a journal back; DocumentError (one line) when its header is unusable. A torn
    or unreadable line ends the journal there (the trials before it are kept)."""
    name = path.name
    run_id = name[: -len(JOURNAL_SUFFIX)] if name.endswith(JOURNAL_SUFFIX) else ""
    if not is_run_id(run_id):
        raise DocumentError(f"{ascii(name)} is not a journal name (<run id>{JOURNAL_SUFFIX})")
    running = held_by_writer(path)
    data = read_stored(path, f"journal {name}")
    lines = data.split(b"\n")
    header = _decode(lines[0])
    problem = JOURNAL_HEADER.problem(header, "header") if header is not None else \
        "header: not a JSON object"
    if problem is None and header["run_id"] != run_id:
        problem = f"header: run id {header['run_id']!r} is not the file's name"
    if problem is not None:
        raise DocumentError(f"journal {problem}")
    trials: list[tuple[int, list[SessionRecord]]] = []
    note = ""
    for n, raw in enumerate(lines[1:], 2):
        if not raw.strip():
            continue
        obj = _decode(raw)
        if obj is None and n == len(lines):      # no newline after it: cut mid-write
            note = f"line {n} is torn (the trial in flight when it was cut off)"
            break
        problem = "not a JSON object" if obj is None else JOURNAL_TRIAL.problem(obj, "trial")
        if problem is not None:
            note = f"line {n}: {problem}; the trials from there on are left out"
            break
        trials.append((obj["trial_index"],
                       [SessionRecord(**{k: s[k] for k in RECORD_FIELDS if k in s})
                        for s in obj["sessions"]]))
    return Journal(path, run_id, header, trials, running, note)


def _decode(raw: bytes) -> Any:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


class RunJournals:
    """The journals of one plan's runs, one per scenario, each opened at its first finished
    trial (a run that measured nothing leaves no journal)."""

    def __init__(self, store, run_ids: dict[str, str], headers: dict[str, dict]) -> None:
        self.store, self.run_ids, self.headers = store, run_ids, headers
        self.writers: dict[str, JournalWriter] = {}

    def append(self, scenario: str, trial_index: int, records: Sequence[SessionRecord]) -> None:
        """Raises StoreError (one line) when the trial could not be made durable."""
        writer = self.writers.get(scenario)
        if writer is None:
            try:
                self.store.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create data directory {self.store.dir}: "
                                 f"{why(exc)}") from None
            writer = self.writers[scenario] = JournalWriter(
                self.store.journal_path(self.run_ids[scenario]),
                dict(self.headers[scenario], run_id=self.run_ids[scenario]))
        writer.append(trial_index, records)

    def has(self, scenario: str) -> bool:
        return scenario in self.writers

    def saved(self, scenario: str) -> None:
        """Its document is saved: the journal goes."""
        writer = self.writers.pop(scenario, None)
        if writer is not None:
            writer.discard()

    def close(self) -> None:
        """The plan is over; journals still open (a save failed) stay for `gpubench recover`."""
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
