"""The result store: one JSON document per run in a data directory, plus an index.

Layout of `data_dir` (from config.toml `[store] data_dir`, default `results/data`):

    <run id>.json        the document (results/schema.py)
    <run id>.jsonl.gz    the raw engine stream of that run, for replay
    index.json           a cache: per document file its size, mtime and summary
    .lock                flock'ed while the index is rewritten

Writes are atomic: a temporary file (`.<name>.tmp-<pid>`, hidden from listings),
fsync, rename, fsync of the directory. A crash or a full disk mid-save leaves the
old documents as they were and no partial document visible. The index is only a
cache: a document added, changed or removed behind its back is noticed from the
directory listing (name, size, mtime) and re-read; a corrupt index is rebuilt.
"""
from __future__ import annotations

import errno
import fcntl
import gzip
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .document import summary_of
from .schema import DocumentError, RunNotFound, StoreError, check_document

INDEX_NAME = "index.json"
STALE_TEMP_S = 3600.0     # temp files of a save that crashed are removed after an hour
INDEX_VERSION = 1
DOC_SUFFIX = ".json"
RAW_SUFFIX = ".jsonl.gz"


@dataclass(frozen=True)
class Listing:
    runs: list[dict]          # summaries, oldest first
    warnings: list[str]       # one line per skipped file


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or str(exc)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _is_doc_name(name: str) -> bool:
    return name.endswith(DOC_SUFFIX) and not name.startswith(".") and name != INDEX_NAME


class Store:
    def __init__(self, data_dir: str | os.PathLike):
        self.dir = Path(data_dir)

    # -- paths -----------------------------------------------------------------------------
    def doc_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}{DOC_SUFFIX}"

    def raw_path(self, run_id: str) -> Path:
        return self.dir / f"{run_id}{RAW_SUFFIX}"

    @property
    def index_path(self) -> Path:
        return self.dir / INDEX_NAME

    # -- saving ----------------------------------------------------------------------------
    def save(self, doc: dict, raw_lines: Sequence[str] | None = None) -> Path:
        """Save a document (and its raw stream); return the document's path.

        Raises StoreError with one line (e.g. "no space left on device") and leaves
        every other document untouched; nothing partial stays visible.
        """
        check_document(doc, f"run {doc.get('id')!r}" if isinstance(doc, dict) else "run")
        run_id = doc["id"]
        if "/" in run_id or run_id.startswith(".") or not run_id:
            raise StoreError(f"cannot save run {run_id!r}: not a valid run id")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data directory {self.dir}: {_why(exc)}") from None
        self._remove_stale_temps()
        raw_written = False
        try:
            if raw_lines:
                body = ("\n".join(raw_lines) + "\n").encode("utf-8")
                atomic_write(self.raw_path(run_id), gzip.compress(body, compresslevel=6, mtime=0))
                raw_written = True
                doc = dict(doc, raw=self.raw_path(run_id).name)
            try:
                data = json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False)
            except ValueError as exc:
                raise StoreError(f"cannot save run {run_id}: {exc}") from None
            path = self.doc_path(run_id)
            atomic_write(path, data.encode("utf-8"))
        except OSError as exc:
            if raw_written:
                try:
                    self.raw_path(run_id).unlink()
                except OSError:
                    pass
            raise StoreError(f"cannot save run {run_id} in {self.dir}: {_why(exc)}; "
                             f"nothing was written, earlier runs are intact") from None
        try:  # the index is a cache: a failure here is repaired by the next listing
            st = path.stat()
            with self._locked_index() as index:
                index[path.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                    "summary": summary_of(doc)}
        except OSError:
            pass
        return path

    def _remove_stale_temps(self) -> None:
        """A writer killed mid-save leaves a hidden `.<name>.tmp-<pid>`; never visible as a
        run, removed here once it is old enough not to belong to a save in progress."""
        now = time.time()
        try:
            entries = list(os.scandir(self.dir))
        except OSError:
            return
        for e in entries:
            if e.name.startswith(".") and ".tmp-" in e.name:
                try:
                    if now - e.stat().st_mtime > STALE_TEMP_S:
                        os.unlink(e.path)
                except OSError:
                    pass

    # -- reading ---------------------------------------------------------------------------
    def _doc_names(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.dir) if _is_doc_name(e.name)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read data directory {self.dir}: {_why(exc)}") from None

    def resolve(self, ref: str) -> str:
        """A run id, or a unique prefix of one, to the full id; RunNotFound otherwise."""
        ref = ref.strip()
        if ref.endswith(DOC_SUFFIX):
            ref = Path(ref).name[: -len(DOC_SUFFIX)]
        if not ref or "/" in ref:
            raise RunNotFound(f"no run {ref!r} in {self.dir} (see `gpubench list`)")
        if not ref.startswith(".") and self.doc_path(ref).is_file():
            return ref
        ids = [n[: -len(DOC_SUFFIX)] for n in self._doc_names()]
        if ref in ids:
            return ref
        matches = sorted(i for i in ids if i.startswith(ref))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
            raise RunNotFound(f"run id {ref!r} is ambiguous: matches {shown}")
        raise RunNotFound(f"no run {ref!r} in {self.dir} (see `gpubench list`)")

    def _read_path(self, path: Path, label: str) -> dict:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RunNotFound(f"{label}: file disappeared") from None
        except OSError as exc:
            raise DocumentError(f"{label}: cannot read {path.name}: {_why(exc)}") from None
        if not data.strip():
            raise DocumentError(f"{label}: {path.name} is empty")
        try:
            doc = json.loads(data)
        except UnicodeDecodeError:
            raise DocumentError(f"{label}: {path.name} is corrupt (not UTF-8 text)") from None
        except json.JSONDecodeError as exc:
            tail = data.rstrip()
            truncated = data.lstrip()[:1] == b"{" and (not tail.endswith(b"}")
                                                       or exc.pos >= len(tail) - 1)
            what = "truncated" if truncated else "corrupt"
            raise DocumentError(f"{label}: {path.name} is {what} (invalid JSON at line "
                                f"{exc.lineno}, column {exc.colno})") from None
        return check_document(doc, f"{label}")

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
        """Every readable run's summary, oldest first; unreadable files as warnings.

        Uses the index for files whose size and mtime are unchanged, so listing
        1,000 runs stats 1,000 files but parses none of them.
        """
        names = self._doc_names()
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
                    and entry.get("mtime_ns") == st.st_mtime_ns:
                fresh[name] = entry
                continue
            changed = True
            try:
                summary = summary_of(self._read_path(path, name[: -len(DOC_SUFFIX)]))
                fresh[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "summary": summary}
            except (DocumentError, RunNotFound) as exc:
                fresh[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "error": str(exc)}
        if changed or len(fresh) != len(index):
            try:
                with self._locked_index(replace=fresh):
                    pass
            except OSError:
                pass  # read-only data dir: the listing is still right
        runs, warnings = [], []
        for name, entry in fresh.items():
            if "summary" in entry:
                runs.append(entry["summary"])
            else:
                warnings.append(f"skipped {name}: {entry.get('error', 'unreadable')}")
        runs.sort(key=lambda s: (s.get("created") or "", s.get("id") or ""))
        warnings.sort()
        return Listing(runs, warnings)

    def delete(self, ref: str) -> str:
        run_id = self.resolve(ref)
        path = self.doc_path(run_id)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete run {run_id}: {_why(exc)}") from None
        try:
            self.raw_path(run_id).unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass
        _fsync_dir(self.dir)
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
        except (OSError, ValueError):
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
