"""The API's streaming responses, each read in a thread of its own: a pod's log, and the watch
on a run's pods. What arrives is posted to the event loop with `call_soon_threadsafe`; a
reader is stopped from any thread by shutting its socket down.
"""
from __future__ import annotations

import asyncio
import codecs
import json
import re
import socket
import threading
from typing import TYPE_CHECKING, Any, Callable

from ..stream import LineSplitter
from .api import Api, K8sError, describe_error

if TYPE_CHECKING:
    from .session import K8sSession


_TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def stamp_key(stamp: str) -> str | None:
    """A log line's kubelet timestamp, RFC3339Nano (trailing zeros dropped, as the kubelet
    writes it) -> a sortable string; None when it is not one."""
    m = _TS.match(stamp)
    if m is None:
        return None
    return f"{m.group(1)}.{(m.group(2) or '').ljust(9, '0')}"


def _shutdown(resp) -> None:
    """Unblock a thread reading `resp` (from any thread): shut its socket down, close it."""
    if resp is None:
        return
    conn = getattr(resp, "connection", None) or getattr(resp, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        resp.close()
    except Exception:
        pass


def _post_threadsafe(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # loop closed: nobody is listening any more
        pass


def _pump(resp, stopped: Callable[[], bool], loop: asyncio.AbstractEventLoop,
          on_chunk: Callable[[bytes], None]) -> None:
    """Post each chunk of `resp` to the loop until it ends or `stopped()` (in the reader thread)."""
    for chunk in resp.stream(65536, decode_content=True):
        if stopped():
            break
        if chunk:
            _post_threadsafe(loop, on_chunk, chunk)


def _release(resp) -> None:
    """Give a finished response's connection back to the pool (in the reader thread)."""
    if resp is not None:
        try:
            resp.close()
            resp.release_conn()
        except Exception:
            pass


class HttpStream:
    """Read one streaming HTTP response in a thread; post its chunks to the loop.

    `close()` from any thread shuts the socket down, which unblocks the reader.
    `on_end(error)` is posted once, error None for a clean end or after close().
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, opener: Callable[[], Any],
                 on_chunk: Callable[[bytes], None], on_end: Callable[[BaseException | None], None],
                 name: str):
        self._loop = loop
        self._opener = opener
        self._on_chunk = on_chunk
        self._on_end = on_end
        self._resp = None
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> "HttpStream":
        self._thread.start()
        return self

    def _main(self) -> None:
        error: BaseException | None = None
        resp = None
        try:
            resp = self._opener()
            with self._lock:
                self._resp = resp
                closed = self._closed
            if not closed:
                _pump(resp, lambda: self._closed, self._loop, self._on_chunk)
        except BaseException as exc:  # noqa: BLE001 - reported to the loop
            error = None if self._closed else exc
        finally:
            _release(resp)
            _post_threadsafe(self._loop, self._on_end, error)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            resp = self._resp
        _shutdown(resp)


class PodWatch:
    """One watch per run label, shared by that run's sessions (one per pod).

    Each update goes to the subscribed session's `pod_update`. The watch is
    reopened when the server ends it; without a resourceVersion the server starts
    with the current state of every pod, so nothing is missed but deletions
    inside the gap, which the sessions' periodic reads catch.
    """

    def __init__(self, api: Api, namespace: str, selector: str):
        self.api = api
        self.namespace = namespace
        self.selector = selector
        self.sessions: dict[str, "K8sSession"] = {}   # by pod name
        self.jobs: dict[str, "K8sSession"] = {}       # by Job name, until its pod is known
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._resp = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._splitter = LineSplitter()
        self._thread = threading.Thread(target=self._main, name=f"k8s-watch-{selector}",
                                        daemon=True)
        self._thread.start()

    def _main(self) -> None:
        failures = 0
        while not self._stop.is_set():
            error: BaseException | None = None
            resp = None
            try:
                resp = self.api.open_watch(self.namespace, self.selector)
                with self._lock:
                    self._resp = resp
                if self._stop.is_set():
                    break
                _pump(resp, self._stop.is_set, self._loop, self._on_chunk)
            except BaseException as exc:  # noqa: BLE001 - reported to the loop
                error = exc
            finally:
                with self._lock:
                    self._resp = None
                _release(resp)
            if self._stop.is_set():
                break
            failures = failures + 1 if error is not None else 0
            if failures:
                _post_threadsafe(self._loop, self._on_error, error)
                self._stop.wait(min(5.0, 0.2 * 2 ** failures))

    def _on_chunk(self, chunk: bytes) -> None:  # on the loop
        for line in self._splitter.push(self._decoder.decode(chunk)):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("type")
            if kind not in ("ADDED", "MODIFIED", "DELETED"):  # ERROR (410 Gone), BOOKMARK
                continue
            obj = event.get("object") or {}
            meta = obj.get("metadata") or {}
            session = self.sessions.get(meta.get("name"))
            if session is None and self.jobs:
                labels = meta.get("labels") or {}
                job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
                session = self.jobs.get(job)
                if session is not None and session.adopt(meta.get("name")):
                    self.sessions[meta["name"]] = session
                else:
                    session = None
            if session is not None:
                session.pod_update(kind, obj)

    def _on_error(self, error: BaseException | None) -> None:  # on the loop
        message = (str(error) if isinstance(error, K8sError)
                   else describe_error(error, self.api.server))
        for session in list(self.sessions.values()):
            session._status(f"pod watch interrupted ({message}); retrying")

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            resp = self._resp
        _shutdown(resp)
