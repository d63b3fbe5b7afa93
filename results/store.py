"""The result store: one JSON document per run in a data directory, plus an index.

Layout of `data_dir` (from config.toml `[store] data_dir`, default `results/data`):

    <run id>.json           the document (results/schema.py, checked by results/structure.py)
    <run id>.jsonl.gz       the raw engine stream of that run, for replay
    <run id>.journal.jsonl  a run being measured, or cut off before its save (results/journal.py)
    index.json              a cache: per document file its size, mtime and summary
    .lock                   flock'ed by a save (raw stream, document, index) and by tidy()

Writes are atomic: a temporary file (`.<name>.tmp-<pid>`, hidden from listings),
fsync, rename, fsync of the directory. A crash or a full disk mid-save leaves the
old documents as they were and no partial document visible; what a killed save left
(a raw stream without its document, a temp file) is removed by the next listing or save.
The index is only a cache: a document added, changed or removed behind its back is
noticed from the directory listing (name, size, mtime) and re-read; a corrupt index is
rebuilt. A document is data, never a path: it is used only when its id is its file name.
"""
from __future__ import annotations

import fcntl
import gzip
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .document import summary_of
from .files import atomic_write, fsync_dir, held_by_writer, read_stored, why
from .journal import JOURNAL_SUFFIX, read_journal
from .schema import (CANCELLED, INCOMPLETE, DocumentError, RunNotFound, StoreError,
                     check_document, is_run_id)
from .structure import SUMMARY

__all__ = ["Store", "Listing", "atomic_write", "filter_runs", "summary_flags"]

INDEX_NAME = "index.json"
STALE_TEMP_S = 3600.0     # temp files of a save that crashed are removed after an hour
INDEX_VERSION = 3         # raised when summary_of changes, so older caches are re-read
DOC_SUFFIX = ".json"
RAW_SUFFIX = ".jsonl.gz"


@dataclass(frozen=True)
class Listing:
    runs: list[dict]          # summaries, oldest first
    warnings: list[str]       # one line per skipped file
    # runs with a journal and no document: cut off (`gpubench recover`) or still running;
    # summaries with `unfinished` ("cut off" | "running"), `trials_done`, `trials_planned`
    unfinished: list[dict] = field(default_factory=list)


def shown_name(name: str) -> str:
    """A file name as one printable line (a planted name may hold newlines)."""
    return name if name.isprintable() else ascii(name)


def _is_doc_name(name: str) -> bool:
    return name.endswith(DOC_SUFFIX) and not name.startswith(".") and name != INDEX_NAME


def _stem(name: str, suffix: str) -> str:
    return name[: -len(suffix)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


class Store:
    def __init__(self, data_dir: str | os.PathLike):
        self.dir = Path(data_dir)

    # -- paths -----------------------------------------------------------------------------
    def doc_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}{DOC_SUFFIX}"

    def raw_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}{RAW_SUFFIX}"

    def journal_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}{JOURNAL_SUFFIX}"

    @property
    def index_path(self) -> Path:
        return self.dir / INDEX_NAME

    # -- saving ----------------------------------------------------------------------------
    def save(self, doc: dict, raw_lines: Sequence[str] | None = None) -> Path:
        """Save a document (and its raw stream); return the document's path.

        Raises StoreError with one line (e.g. "no space left on device") and leaves
        every other document untouched; nothing partial stays visible. The whole save
        holds the store's lock, so the next start can tell a raw stream or a temp file
        left by a killed save from one being written (see tidy()).
        """
        check_document(doc, f"run {doc.get('id')!r}" if isinstance(doc, dict) else "run")
        run_id = doc["id"]
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data directory {self.dir}: {why(exc)}") from None
        path = self.doc_path(run_id)
        raw_written = doc_written = False
        try:
            with self._locked_index() as index:
                self._tidy_locked(self._names())
                if raw_lines:
                    body = ("\n".join(raw_lines) + "\n").encode("utf-8")
                    atomic_write(self.raw_path(run_id),
                                 gzip.compress(body, compresslevel=6, mtime=0))
                    raw_written = True
                    doc = dict(doc, raw=self.raw_path(run_id).name)
                try:
                    data = json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False)
                except ValueError as exc:
                    raise StoreError(f"cannot save run {run_id}: {exc}") from None
                atomic_write(path, data.encode("utf-8"))
                doc_written = True
                try:
                    st = path.stat()
                    index[path.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                        "summary": summary_of(doc)}
                except OSError:
                    pass  # the index is a cache: the next listing repairs it
        except OSError as exc:
            if doc_written:  # only the index failed: the run is saved, the index is a cache
                return path
            if raw_written and not path.exists():
                try:
                    self.raw_path(run_id).unlink()
                except OSError:
                    pass
            raise StoreError(f"cannot save run {run_id} in {self.dir}: {why(exc)}; "
                             f"nothing was written, earlier runs are intact") from None
        return path

    def tidy(self) -> list[str]:
        """Remove what killed writers left: a raw stream without its document (the save was
        killed between the two), temp files of saves whose process is gone (or over an hour
        old), and the journal of a run whose document was saved. One line per removal."""
        names = self._names()
        if not self._leftovers(names):
            return []
        try:
            with self._locked_index():
                return self._tidy_locked(self._names())
        except OSError:
            return []  # a read-only store: leave it as it is

    def _leftovers(self, names: Sequence[str]) -> list[tuple[str, str]]:
        """(file name, why it is left over) for every file tidy() would remove."""
        present = set(names)
        now = time.time()
        out = []
        for name in names:
            if name.startswith(".") and ".tmp-" in name:
                pid = name.rsplit(".tmp-", 1)[1]
                try:
                    old = now - os.stat(self.dir / name).st_mtime > STALE_TEMP_S
                except OSError:
                    continue
                if old or (pid.isdigit() and not _pid_alive(int(pid))):
                    out.append((name, "a temp file of a save that was cut off"))
            elif name.endswith(RAW_SUFFIX) and not name.startswith("."):
                if _stem(name, RAW_SUFFIX) + DOC_SUFFIX not in present:
                    out.append((name, "a raw stream without its document (a save was cut "
                                      "off)"))
            elif name.endswith(JOURNAL_SUFFIX) and not name.startswith("."):
                if _stem(name, JOURNAL_SUFFIX) + DOC_SUFFIX in present \
                        and not held_by_writer(self.dir / name):
                    out.append((name, "the journal of a run that was saved"))
        return out

    def _tidy_locked(self, names: Sequence[str]) -> list[str]:
        removed = []
        for name, reason in self._leftovers(names):
            try:
                os.unlink(self.dir / name)
            except FileNotFoundError:
                continue
            except OSError:
                continue
            removed.append(f"removed {shown_name(name)}: {reason}")
        if removed:
            fsync_dir(self.dir)
        return removed

    # -- reading ---------------------------------------------------------------------------
    def _names(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.dir)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read data directory {self.dir}: {why(exc)}") from None

    def _doc_names(self) -> list[str]:
        return [n for n in self._names() if _is_doc_name(n)]

    def resolve(self, ref: str) -> str:
        """A run id, or a unique prefix of one, to the full id; RunNotFound otherwise."""
        ref = ref.strip()
        if ref.endswith(DOC_SUFFIX):
            ref = Path(ref).name[: -len(DOC_SUFFIX)]
        return self._match(ref, [_stem(n, DOC_SUFFIX) for n in self._doc_names()], "run")

    def _match(self, ref: str, ids: list[str], what: str) -> str:
        if not is_run_id(ref):
            raise RunNotFound(f"no {what} {ref!r} in {self.dir} (see `gpubench list`)")
        if ref in ids:
            return ref
        matches = sorted(i for i in ids if i.startswith(ref))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
            raise RunNotFound(f"{what} id {ref!r} is ambiguous: matches {shown}")
        raise RunNotFound(f"no {what} {ref!r} in {self.dir} (see `gpubench list`)")

    def _read_path(self, path: Path, label: str | None) -> dict:
        """A document file, checked: readable JSON, a schema this version knows, every
        field of the right type (results/structure.py) and an `id` equal to the file name
        (a document is data: its content never names where it is or where output goes).
        Errors read "LABEL: NAME is corrupt (...)", or "file is corrupt (...)" without a
        label (the listing names the file itself)."""
        name = shown_name(path.name)
        subject = f"{label}: {name}" if label else "file"
        data = read_stored(path, subject)
        if not data.strip():
            raise DocumentError(f"{subject} is empty")
        try:
            doc = json.loads(data)
        except UnicodeDecodeError:
            raise DocumentError(f"{subject} is corrupt (not UTF-8 text)") from None
        except RecursionError:
            raise DocumentError(f"{subject} is corrupt (nested too deeply)") from None
        except json.JSONDecodeError as exc:
            tail = data.rstrip()
            truncated = data.lstrip()[:1] == b"{" and (not tail.endswith(b"}")
                                                       or exc.pos >= len(tail) - 1)
            what = "truncated" if truncated else "corrupt"
            raise DocumentError(f"{subject} is {what} (invalid JSON at line "
                                f"{exc.lineno}, column {exc.colno})") from None
        check_document(doc, f"{label}: {name}" if label else "")
        if doc["id"] != _stem(path.name, DOC_SUFFIX):
            raise DocumentError(f"{subject} holds run id {doc['id']!r}, which is not its file "
                                f"name: not used (a run's id must be its file name)")
        return doc

    def load(self, ref: str) -> dict:
        run_id = self.resolve(ref)
        return self._read_path(self.doc_path(run_id), f"run {run_id}")

    def raw_lines(self, ref: str) -> list[str]:
        run_id = self.resolve(ref)
        try:
            with gzip.open(self.raw_path(run_id), "rt", encoding="utf-8") as fh:
                return [ln.rstrip("\n") for ln in fh if ln.strip()]
        except FileNotFoundError:
            raise RunNotFound(f"run {run_id}: no raw stream was kept") from None
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise DocumentError(f"run {run_id}: raw stream is corrupt ({exc})") from None

    def list_runs(self) -> Listing:
        """Every readable run's summary, oldest first; unreadable files as warnings; runs
        with a journal but no document (cut off, or running now) as `unfinished`.

        Uses the index for files whose size and mtime are unchanged, so listing
        1,000 runs stats 1,000 files but parses none of them.
        """
        self.tidy()   # what killed writers left is no run: removed without a word
        warnings: list[str] = []
        all_names = self._names()
        names = [n for n in all_names if _is_doc_name(n)]
        index = self._read_index()
        fresh: dict[str, dict] = {}
        changed = False
        for name in names:
            path = self.dir / name
            try:
                st = path.stat()
            except FileNotFoundError:  # deleted while we listed
                changed = True
                continue
            entry = index.get(name)
            if entry is not None and entry.get("size") == st.st_size \
                    and entry.get("mtime_ns") == st.st_mtime_ns and _entry_ok(name, entry):
                fresh[name] = entry
                continue
            changed = True
            try:
                summary = summary_of(self._read_path(path, None))
                fresh[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "summary": summary}
            except (DocumentError, RunNotFound) as exc:
                fresh[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "error": str(exc)}
        if changed or len(fresh) != len(index):
            try:
                with self._locked_index(replace=fresh):
                    pass
            except OSError:
                pass  # read-only data dir: the listing is still right
        runs = []
        for name, entry in fresh.items():
            if "summary" in entry:
                runs.append(entry["summary"])
            else:
                warnings.append(f"skipped {shown_name(name)}: {entry.get('error', 'unreadable')}")
        unfinished, problems = self._unfinished(all_names)
        runs.sort(key=lambda s: (s.get("created") or "", s.get("id") or ""))
        warnings = sorted(warnings + problems)
        return Listing(runs, warnings, unfinished)

    def _unfinished(self, names: Sequence[str]) -> tuple[list[dict], list[str]]:
        present = set(names)
        runs, problems = [], []
        for name in sorted(names):
            if not name.endswith(JOURNAL_SUFFIX) or name.startswith(".") \
                    or _stem(name, JOURNAL_SUFFIX) + DOC_SUFFIX in present:
                continue
            try:
                runs.append(read_journal(self.dir / name).summary())
            except (DocumentError, RunNotFound) as exc:
                problems.append(f"skipped {shown_name(name)}: {exc}")
        runs.sort(key=lambda s: (s.get("created") or "", s.get("id") or ""))
        return runs, problems

    def resolve_unfinished(self, ref: str) -> str:
        """A cut-off run's id (or a unique prefix) among the journals without a document."""
        ids = [_stem(n, JOURNAL_SUFFIX) for n in self._names()
               if n.endswith(JOURNAL_SUFFIX) and not n.startswith(".")]
        ids = [i for i in ids if not self.doc_path(i).exists()]
        return self._match(ref.strip(), ids, "unfinished run")

    def delete(self, ref: str) -> str:
        run_id = self.resolve(ref)
        path = self.doc_path(run_id)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete run {run_id}: {why(exc)}") from None
        for leftover in (self.raw_path(run_id), self.journal_path(run_id)):
            try:
                leftover.unlink()
            except OSError:
                pass
        fsync_dir(self.dir)
        try:
            with self._locked_index() as index:
                index.pop(path.name, None)
        except OSError:
            pass
        return run_id

    # -- index -----------------------------------------------------------------------------
    def _read_index(self) -> dict[str, dict]:
        try:
            data = json.loads(self.index_path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return {}
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION \
                or not isinstance(data.get("entries"), dict):
            return {}
        return data["entries"]

    @contextmanager
    def _locked_index(self, replace: dict | None = None) -> Iterator[dict]:
        """Read-modify-write the index under an exclusive lock; written atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            index = dict(replace) if replace is not None else self._read_index()
            yield index
            data = json.dumps({"version": INDEX_VERSION, "entries": index},
                              separators=(",", ":"), ensure_ascii=False)
            atomic_write(self.index_path, data.encode("utf-8"))
        finally:
            os.close(fd)


def _entry_ok(name: str, entry: dict) -> bool:
    """An index entry is only a cache: one that is not what summary_of writes for this file
    name (a damaged or planted index) is not trusted, the document is read again."""
    if "error" in entry:
        return isinstance(entry["error"], str)
    summary = entry.get("summary")
    return SUMMARY.problem(summary, "") is None and summary["id"] == _stem(name, DOC_SUFFIX)


def filter_runs(runs: list[dict], *, scenario: str | None = None, host: str | None = None,
                label: str | None = None, since: str | None = None,
                until: str | None = None) -> list[dict]:
    """Filter index summaries: exact scenario, host substring, label substring, and an
    ISO date/time window on `created` (UTC; `until` is inclusive of the whole day given)."""
    out = []
    for s in runs:
        if scenario and s.get("scenario") != scenario:
            continue
        if host and host.lower() not in str(s.get("host") or "").lower():
            continue
        if label and label.lower() not in str(s.get("label") or "").lower():
            continue
        created = s.get("created") or ""
        if since and created < since:
            continue
        if until and created[: len(until)] > until:
            continue
        out.append(s)
    return out


def summary_flags(summary: dict) -> list[str]:
    """What `list` and History say beside a run's summary: imported, incomplete (and why),
    or, for a run that has only a journal (results/journal.py), running or cut off."""
    flags = ["imported"] if summary.get("imported") else []
    done, planned = summary.get("trials_done"), summary.get("trials_planned")
    if summary.get("unfinished") == "running":
        flags.append(f"running ({done} of {planned} trials, pid {summary.get('pid')})")
    elif summary.get("unfinished"):
        flags.append(f"incomplete, not saved: cut off after {done} of {planned} trials "
                     f"(gpubench recover {summary.get('id')})")
    elif summary.get("complete") is False or summary.get("outcome") in (INCOMPLETE, CANCELLED):
        reason = summary.get("incomplete_reason")
        flags.append(f"incomplete: {reason}" if reason else "incomplete")
    return flags
