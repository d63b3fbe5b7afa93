"""`k8s`: the engine as a Kubernetes pod, its stdout followed through the pod log.

    launcher = K8sLauncher.from_config(cluster, scenario)
    session = await launcher.start(request)      # ConfigMap (once per engine version) + Pod
    async for event in session.events(): ...      # pod phases as Status, then the engine's stream

Life of a session: the engine's sources go into a ConfigMap of this launcher's own,
named by their content hash and the launcher's id (or the image has the engine baked
in); a Pod asks for `nvidia.com/gpu`, optionally a runtimeClassName (hypervisor layer),
node selector, tolerations and the GPU proxy's hostPath library with LD_PRELOAD
(proxy layer). A watch on the
run's label follows the pod; when it runs, its log is followed and every line
goes to the stream parser. Pending too long (Unschedulable), image pull
failures, OOMKilled, a failed container and eviction end the session with a
one-line message that quotes the pod's events. Whatever the outcome, the Pod
(and the ConfigMap, when none of this launcher's sessions still uses it)
is deleted before the session reports its end; `cancel()` deletes the running
pod (SIGTERM: the engine writes its partial result) and then makes sure it is gone.

The kubernetes client blocks: every call runs in a worker thread
(`asyncio.to_thread`); the watch and each log stream have a thread of their own
that posts what arrives to the event loop with `call_soon_threadsafe`, and is
stopped by shutting its socket down. Responses are read as raw JSON
(`_preload_content=False`): no model deserialisation, which keeps 100 pods cheap.

Every object created carries its owner and a heartbeat that `launcher.heartbeat` renews
from its own thread (k8s_heartbeat.py), so that `gpubench cleanup` (k8s_cleanup.py) can
tell a live run's objects from leftovers.

`K8sLauncher(..., workload="job")` wraps the pod in a batch/v1 Job (backoffLimit 0) and
follows the pod the Job creates. `run_on_nodes()` runs one pod per GPU node (nodeName per pod, one watch for all)
and returns their sessions.
"""
from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import re
import socket
import threading
from typing import Any, Callable

from scenarios.config import ClusterConfig, ScenarioConfig

from ..base import ENGINE_DIR, LaunchError, LaunchRequest, Launcher, Session
from ..events import FAILED, Hello, Sample
from .heartbeat import RENEW_TIMEOUT_S, Heartbeat
from .spec import (CONFIGMAP_LIMIT_BYTES, CONTAINER, NODE_LABEL, RUN_LABEL, SCENARIO_LABEL,
                       EngineBundle, label_value, job_manifest, new_run_id, pod_manifest,
                       pod_name)
from ..stream import LineSplitter

CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 30.0          # one ordinary API call
WATCH_TIMEOUT_S = 60           # server-side watch timeout; the watch is then reopened
POLL_S = 5.0                   # with no watch news for this long, read the pod directly
LOG_STALL_S = 300.0            # no log output for this long while Running: the engine hangs
LOG_DRAIN_S = 5.0              # pod ended or gone: time for its log stream to finish
FINAL_STATE_WAIT_S = 10.0      # log ended: time for the pod's status to show how it ended
INTERRUPT_GRACE_S = 5          # cancel: the pod's grace period (SIGTERM, then SIGKILL)
GONE_WAIT_S = 10.0             # cleanup: how long to wait for a deleted pod to disappear
EVENTS_QUOTED = 6
MAX_LOG_RESUMES = 5            # log stream dropped while the pod runs: reopen this many times
# Container waiting reasons that will not resolve by waiting.
FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                 "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                 "CrashLoopBackOff")


class K8sError(LaunchError):
    """A Kubernetes API or configuration problem, phrased as one line."""


# ---------------------------------------------------------------------------------------------
# Blocking API access (worker threads only)
# ---------------------------------------------------------------------------------------------

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def describe_error(exc: BaseException, server: str) -> str:
    """One line for an exception from the kubernetes client or urllib3."""
    from kubernetes.client.exceptions import ApiException
    import urllib3.exceptions as ue

    if isinstance(exc, ApiException):
        message = ""
        try:
            body = json.loads(exc.body) if exc.body else {}
            message = body.get("message") or ""
        except (ValueError, TypeError, AttributeError):
            message = (exc.body or "")[:200] if isinstance(exc.body, str) else ""
        if exc.status == 0:
            return f"Kubernetes API {server}: {exc.reason}"
        return f"Kubernetes API {server} answered {exc.status} {exc.reason}" + (
            f": {message}" if message else "")
    if isinstance(exc, ue.MaxRetryError):
        reason = exc.reason
        text = str(reason)
        m = _ERRNO.search(text)
        if m:  # NewConnectionError subclasses ConnectTimeoutError: check the errno first
            why = m.group(1).strip().rstrip(".").lower()
        elif isinstance(reason, ue.ConnectTimeoutError) or "timed out" in text:
            why = "connection timed out"
        else:
            why = type(reason).__name__ if reason is not None else "no answer"
        return f"cannot reach the Kubernetes API server {server}: {why}"
    if isinstance(exc, (ue.ReadTimeoutError, socket.timeout, TimeoutError)):
        return f"Kubernetes API server {server} did not answer in time"
    if isinstance(exc, ue.HTTPError):
        return f"Kubernetes API server {server}: {type(exc).__name__}: {exc}"
    return f"Kubernetes API {server}: {type(exc).__name__}: {exc}"


def _is_timeout(exc: BaseException) -> bool:
    import urllib3.exceptions as ue
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (ue.ReadTimeoutError, socket.timeout, TimeoutError)):
            return True
        if isinstance(exc, ue.ProtocolError) and "timed out" in str(exc):
            return True
        exc = exc.__context__ or exc.__cause__ or (exc.args[1] if isinstance(exc, ue.ProtocolError)
                                                   and len(exc.args) > 1 else None)
        seen += 1
    return False


_TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def _ts_key(stamp: str) -> str | None:
    """RFC3339Nano (trailing zeros dropped, as the kubelet writes it) -> a sortable string."""
    m = _TS.match(stamp)
    if m is None:
        return None
    return f"{m.group(1)}.{(m.group(2) or '').ljust(9, '0')}"


def _status_of(exc: BaseException) -> int | None:
    from kubernetes.client.exceptions import ApiException
    return exc.status if isinstance(exc, ApiException) else None


class _Api:
    """Thin blocking wrapper: raw JSON in and out, errors as K8sError."""

    def __init__(self, api_client, server: str):
        from kubernetes import client
        self.client = api_client
        self.server = server
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    def _call(self, fn: Callable, *args, ok_missing: bool = False, ok_conflict: bool = False,
              timeout: float = CALL_TIMEOUT_S, **kwargs) -> Any:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=(CONNECT_TIMEOUT_S, timeout),
                      **kwargs)
        except Exception as exc:
            status = _status_of(exc)
            if ok_missing and status == 404:
                return None
            if ok_conflict and status == 409:
                return False
            raise K8sError(describe_error(exc, self.server)) from None
        try:
            data = resp.data
        finally:
            resp.release_conn()
        return json.loads(data) if data else {}

    # objects
    def create_pod(self, ns: str, body: dict) -> dict:
        return self._call(self.core.create_namespaced_pod, ns, body)

    def read_pod(self, ns: str, name: str) -> dict | None:
        return self._call(self.core.read_namespaced_pod, name, ns, ok_missing=True)

    def delete_pod(self, ns: str, name: str, grace: int | None = None) -> bool:
        kw = {} if grace is None else {"grace_period_seconds": grace}
        return self._call(self.core.delete_namespaced_pod, name, ns, ok_missing=True, **kw) is not None

    def list_pods(self, ns: str, selector: str) -> list[dict]:
        return self._call(self.core.list_namespaced_pod, ns, label_selector=selector)["items"]

    def create_configmap(self, ns: str, body: dict) -> bool:
        """True when created, False when it already existed."""
        return self._call(self.core.create_namespaced_config_map, ns, body, ok_conflict=True) is not False

    def delete_configmap(self, ns: str, name: str) -> bool:
        return self._call(self.core.delete_namespaced_config_map, name, ns, ok_missing=True) is not None

    def list_configmaps(self, ns: str, selector: str) -> list[dict]:
        return self._call(self.core.list_namespaced_config_map, ns, label_selector=selector)["items"]

    def create_job(self, ns: str, body: dict) -> dict:
        return self._call(self.batch.create_namespaced_job, ns, body)

    def list_jobs(self, ns: str, selector: str) -> list[dict]:
        return self._call(self.batch.list_namespaced_job, ns, label_selector=selector)["items"]

    def delete_job(self, ns: str, name: str) -> bool:
        return self._call(self.batch.delete_namespaced_job, name, ns, ok_missing=True,
                          propagation_policy="Background") is not None

    def patch_annotations(self, ns: str, kind: str, name: str, annotations: dict) -> bool:
        """Merge annotations into a pod, job or configmap; False when it is gone."""
        fn = {"pod": self.core.patch_namespaced_pod, "job": self.batch.patch_namespaced_job,
              "configmap": self.core.patch_namespaced_config_map}[kind]
        return self._call(fn, name, ns, {"metadata": {"annotations": annotations}},
                          ok_missing=True, timeout=RENEW_TIMEOUT_S) is not None

    def list_nodes(self, selector: str) -> list[dict]:
        return self._call(self.core.list_node, label_selector=selector)["items"]

    def events_for(self, ns: str, name: str) -> list[dict]:
        items = self._call(self.core.list_namespaced_event, ns,
                           field_selector=f"involvedObject.name={name}")["items"]
        # Filter here too: not every server (or emulator) honours field selectors.
        items = [e for e in items if (e.get("involvedObject") or {}).get("name") == name]
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or
                   (e.get("metadata") or {}).get("creationTimestamp") or "")
        return items

    # streams (raw urllib3 responses; the caller reads and closes them)
    def open_watch(self, ns: str, selector: str):
        try:
            return self.core.list_namespaced_pod(
                ns, label_selector=selector, watch=True, timeout_seconds=WATCH_TIMEOUT_S,
                allow_watch_bookmarks=False, _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT_S, WATCH_TIMEOUT_S + 30))
        except Exception as exc:
            raise K8sError(describe_error(exc, self.server)) from None

    def open_log(self, ns: str, name: str, stall_s: float = LOG_STALL_S,
                 since_s: int | None = None):
        kw = {} if since_s is None else {"since_seconds": max(1, since_s)}
        try:
            return self.core.read_namespaced_pod_log(
                name, ns, container=CONTAINER, follow=True, timestamps=True,
                _preload_content=False, _request_timeout=(CONNECT_TIMEOUT_S, stall_s), **kw)
        except Exception as exc:
            raise K8sError(describe_error(exc, self.server)) from None


class _QuietRetries(logging.Filter):
    """urllib3 logs each retry and each full pool as a WARNING, which without logging set
    up lands on stderr around our one-line error. The error says it; drop the noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith("Retrying (") or msg.startswith("Connection pool is full"))


_QUIET = _QuietRetries()


def _make_api(cluster: ClusterConfig, pool_size: int = 64) -> _Api:
    """Build the client (blocking: reads the kubeconfig)."""
    from kubernetes import client, config as kconfig

    pool_log = logging.getLogger("urllib3.connectionpool")
    if _QUIET not in pool_log.filters:
        pool_log.addFilter(_QUIET)

    cfg = client.Configuration()
    cfg.connection_pool_maxsize = pool_size
    if cluster.api_url:
        cfg.host = cluster.api_url.rstrip("/")
        return _Api(client.ApiClient(cfg), cfg.host)
    path = os.path.expanduser(cluster.kubeconfig) if cluster.kubeconfig else None
    where = f"kubeconfig {cluster.kubeconfig or '~/.kube/config'}"
    if path and not os.path.isfile(path):
        raise K8sError(f"cluster {cluster.name}: {where}: file not found")
    try:
        api_client = kconfig.new_client_from_config(config_file=path, context=cluster.context,
                                                    persist_config=False, client_configuration=cfg)
    except Exception as exc:  # ConfigException, YAML errors, missing context
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise K8sError(f"cluster {cluster.name}: {where}: {detail}") from None
    return _Api(api_client, api_client.configuration.host)


# ---------------------------------------------------------------------------------------------
# Streams read in threads
# ---------------------------------------------------------------------------------------------

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


class _HttpStream:
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

    def start(self) -> "_HttpStream":
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
                for chunk in resp.stream(65536, decode_content=True):
                    if self._closed:
                        break
                    if chunk:
                        _post_threadsafe(self._loop, self._on_chunk, chunk)
        except BaseException as exc:  # noqa: BLE001 - reported to the loop
            error = None if self._closed else exc
        finally:
            if resp is not None:
                try:
                    resp.close()
                    resp.release_conn()
                except Exception:
                    pass
            _post_threadsafe(self._loop, self._on_end, error)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            resp = self._resp
        _shutdown(resp)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


class _PodWatch:
    """One watch per run label, shared by that run's sessions (one per pod).

    Each update goes to the subscribed session's `_pod_update`. The watch is
    reopened when the server ends it; without a resourceVersion the server starts
    with the current state of every pod, so nothing is missed but deletions
    inside the gap, which the sessions' periodic reads catch.
    """

    def __init__(self, launcher: "K8sLauncher", selector: str):
        self.launcher = launcher
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
        api = self.launcher.api
        while not self._stop.is_set():
            error: BaseException | None = None
            resp = None
            try:
                resp = api.open_watch(self.launcher.namespace, self.selector)
                with self._lock:
                    self._resp = resp
                if self._stop.is_set():
                    break
                for chunk in resp.stream(65536, decode_content=True):
                    if self._stop.is_set():
                        break
                    if chunk:
                        _post_threadsafe(self._loop, self._on_chunk, chunk)
            except BaseException as exc:  # noqa: BLE001
                error = exc
            finally:
                with self._lock:
                    self._resp = None
                if resp is not None:
                    try:
                        resp.close()
                        resp.release_conn()
                    except Exception:
                        pass
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
                if session is not None and session._adopt(meta.get("name")):
                    self.sessions[meta["name"]] = session
                else:
                    session = None
            if session is not None:
                session._pod_update(kind, obj)

    def _on_error(self, error: BaseException | None) -> None:  # on the loop
        message = (str(error) if isinstance(error, K8sError)
                   else describe_error(error, self.launcher.api.server))
        for session in list(self.sessions.values()):
            session._status(f"pod watch interrupted ({message}); retrying")

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            resp = self._resp
        _shutdown(resp)


# ---------------------------------------------------------------------------------------------
# Pod state, in words
# ---------------------------------------------------------------------------------------------

def _container_status(pod: dict) -> dict:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return cs
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def _terminated(pod: dict) -> dict | None:
    return (_container_status(pod).get("state") or {}).get("terminated")


def _waiting(pod: dict) -> dict | None:
    return (_container_status(pod).get("state") or {}).get("waiting")


def _phase(pod: dict | None) -> str:
    return ((pod or {}).get("status") or {}).get("phase") or "Pending"


def _condition(pod: dict, kind: str) -> dict | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def pending_reason(pod: dict) -> str:
    """Why a pod is not running yet, e.g. 'Unschedulable: 0/4 nodes are available: ...'."""
    sched = _condition(pod, "PodScheduled")
    if sched and sched.get("status") == "False":
        return f"{sched.get('reason') or 'not scheduled'}: {sched.get('message') or ''}".rstrip(": ")
    waiting = _waiting(pod)
    if waiting:
        return f"{waiting.get('reason') or 'waiting'}" + (
            f": {waiting['message']}" if waiting.get("message") else "")
    return "waiting to be scheduled" if not (pod.get("spec") or {}).get("nodeName") else "starting"


def format_events(events: list[dict], limit: int = EVENTS_QUOTED) -> str:
    """'Warning FailedScheduling: 0/4 nodes ...; Normal BackOff: ...' (latest last)."""
    parts = []
    for e in events[-limit:]:
        message = " ".join(str(e.get("message") or "").split())
        count = e.get("count") or 1
        parts.append(f"{e.get('type') or 'Normal'} {e.get('reason') or '?'}"
                     + (f" (x{count})" if count and count > 1 else "") + f": {message}")
    return "; ".join(parts) if parts else "none"


# ---------------------------------------------------------------------------------------------
# Session
# ---------------------------------------------------------------------------------------------

class K8sSession(Session):
    def __init__(self, launcher: "K8sLauncher", request: LaunchRequest, pod: str, run_id: str,
                 node_name: str | None = None, job: str | None = None):
        super().__init__(request, f"k8s {launcher.cluster.name}/{job or pod}")
        self.launcher = launcher
        self.job_name = job                   # Job mode: the pod's name comes from the Job controller
        self.pod_name = pod
        self._pod_known = job is None
        self.run_id = run_id
        self.node_name = node_name
        self.namespace = launcher.namespace
        self.pod: dict | None = None          # latest state seen
        self.pod_gone = False                 # DELETED seen (or 404 on read)
        self._created = False
        self._holds_engine = False
        self._deleted_by_us = False
        self._updates: asyncio.Queue[None] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._log: _HttpStream | None = None
        self._log_done: asyncio.Future | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._splitter = LineSplitter()
        self._last_status = ""
        self._details: dict[str, Any] = {"pod": pod, "namespace": self.namespace,
                                         "cluster": launcher.cluster.name, "run_id": run_id}
        self._exit_code: int | None = None
        self._watch: _PodWatch | None = None
        self._stalled = False
        self._last_key: str | None = None     # timestamp of the last log line, normalised
        self._last_count = 0                  # lines received with exactly that timestamp
        self._last_line_at: float | None = None
        self._resume_key: str | None = None   # after a resume: skip up to here
        self._resume_skip = 0
        self._created_at: float | None = None # loop time of the create call (start-up timing)

    # -- fed by the watch (on the loop) --------------------------------------------------------
    def _adopt(self, pod: str | None) -> bool:
        """Job mode: the first pod the Job created is ours (a replacement is not followed)."""
        if self._pod_known or not pod:
            return False
        self.pod_name, self._pod_known = pod, True
        self._details["pod"] = pod
        self.launcher.heartbeat.track("pod", pod)
        return True

    def _pod_update(self, kind: str | None, obj: dict) -> None:
        if kind == "DELETED":
            self.pod_gone = True
        if obj.get("status") or self.pod is None:   # DELETED carries the last state too
            self.pod = obj
        self._updates.put_nowait(None)

    async def _next_update(self, until: float | None) -> bool:
        """Wait for news of the pod (or read it after POLL_S of silence). False at `until`."""
        loop = asyncio.get_running_loop()
        while True:
            wait = POLL_S if until is None else min(POLL_S, until - loop.time())
            if wait <= 0:
                return False
            try:
                await asyncio.wait_for(self._updates.get(), wait)
            except asyncio.TimeoutError:
                if until is not None and loop.time() >= until:
                    return False
                await self._read_pod()
            while not self._updates.empty():
                self._updates.get_nowait()
            return True

    async def _read_pod(self) -> None:
        if not self._pod_known:
            return
        try:
            pod = await asyncio.to_thread(self.launcher.api.read_pod, self.namespace, self.pod_name)
        except K8sError as exc:
            self._status(f"cannot read pod: {exc}")
            return
        if pod is None:
            self.pod_gone = True
        else:
            self.pod = pod

    async def _events_text(self) -> str:
        try:
            events = []
            if self.job_name:
                events += await asyncio.to_thread(self.launcher.api.events_for, self.namespace,
                                                  self.job_name)
            if self._pod_known:
                events += await asyncio.to_thread(self.launcher.api.events_for, self.namespace,
                                                  self.pod_name)
        except K8sError as exc:
            return f"(events unavailable: {exc})"
        self._details["events"] = [
            {k: e.get(k) for k in ("type", "reason", "message", "count")} for e in events]
        return format_events(events)

    def _say(self, message: str) -> None:
        if message != self._last_status:
            self._last_status = message
            self._status(message)

    # -- the life of the pod ------------------------------------------------------------------
    async def _run(self) -> int | None:
        try:
            if not await self._wait_started():
                return self._exit_code
            await self._follow_logs()
            return await self._finish()
        finally:
            await self._cleanup()

    async def _wait_started(self) -> bool:
        loop = asyncio.get_running_loop()
        timeout = self.launcher.cluster.pod_timeout_s
        deadline = loop.time() + timeout
        while True:
            if self._cancelled or self._stop.is_set():
                return False
            pod = self.pod
            if self.pod_gone:
                raise LaunchError(f"pod {self.pod_name} was deleted before it started; "
                                  f"events: {await self._events_text()}")
            if pod is None and self.job_name:
                self._say(f"job {self.job_name}: waiting for its pod")
            if pod is not None:
                phase = _phase(pod)
                node = (pod.get("spec") or {}).get("nodeName")
                if node:
                    self._details["node"] = node
                waiting = _waiting(pod)
                if waiting and waiting.get("reason") in FATAL_WAITING:
                    reason = waiting.get("reason")
                    what = ("image pull failed" if "Image" in reason else "container cannot start")
                    msg = f": {waiting['message']}" if waiting.get("message") else ""
                    self._details["reason"] = reason
                    raise LaunchError(
                        f"pod {self.pod_name}: {what} ({reason}{msg}); image "
                        f"{self.launcher.cluster.image!r}; events: {await self._events_text()}")
                if phase in ("Running", "Succeeded", "Failed"):
                    self._say(f"pod {self.pod_name} {phase}" + (f" on {node}" if node else ""))
                    self._mark_startup("to_running_s")
                    return True
                self._say(f"pod {self.pod_name} Pending: {pending_reason(pod)}")
            if not await self._next_update(deadline):
                why = (pending_reason(pod) if pod is not None else
                       f"job {self.job_name} created no pod" if self.job_name else "never seen")
                self._details["reason"] = "PendingTimeout"
                raise LaunchError(
                    f"pod {self.pod_name} still Pending after {timeout:g} s ({why}); "
                    f"events: {await self._events_text()}")

    def _on_log_chunk(self, chunk: bytes) -> None:  # on the loop
        for line in self._splitter.push(self._decoder.decode(chunk)):
            self._log_line(line)

    def _log_line(self, raw: str) -> None:
        raw = raw.rstrip("\r")
        # Lines come with the kubelet's timestamp ("2026-11-25T20:50:35.123456789Z text"), so
        # that a resumed stream can skip what was already received.
        stamp, _, text = raw.partition(" ")
        key = _ts_key(stamp)
        if key is None:
            text = raw
        else:
            if self._resume_key is not None:
                if key < self._resume_key:
                    return
                if key == self._resume_key and self._resume_skip > 0:
                    self._resume_skip -= 1
                    return
                self._resume_key = None
            if key == self._last_key:
                self._last_count += 1
            else:
                self._last_key, self._last_count = key, 1
            self._last_line_at = asyncio.get_running_loop().time()
        # The pod log interleaves the engine's stdout (protocol lines, always JSON objects)
        # and its stderr (for humans): route the latter to stderr_tail, not the parser.
        if text.lstrip().startswith("{"):
            self._line(text)
        else:
            self._stderr(text)

    def _on_log_end(self, error: BaseException | None) -> None:  # on the loop
        for line in self._splitter.push(self._decoder.decode(b"", final=True)) + self._splitter.flush():
            self._log_line(line)
        if self._log_done is not None and not self._log_done.done():
            self._log_done.set_result(error)

    async def _follow_logs(self) -> None:
        """Follow the pod's log to its end; resume (without repeating lines) when the stream
        drops while the pod still runs, e.g. an API server restart."""
        loop = asyncio.get_running_loop()
        since: int | None = None
        resumes = 0
        while True:
            await self._follow_once(since)
            if self._stop.is_set() or self._stalled or self.pod_gone:
                return
            if self.parser.done is not None or _phase(self.pod) in ("Succeeded", "Failed"):
                return
            await self._read_pod()
            if self.pod_gone or _phase(self.pod) != "Running" or resumes >= MAX_LOG_RESUMES:
                return
            resumes += 1
            if self._last_line_at is not None:
                since = int(loop.time() - self._last_line_at) + 10
                self._resume_key, self._resume_skip = self._last_key, self._last_count
            why = self._details.pop("log_error", None) or "server closed it"
            self._status(f"log stream of pod {self.pod_name} dropped ({why}); resuming "
                         f"({resumes}/{MAX_LOG_RESUMES})")
            self._splitter = LineSplitter()
            self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
            await asyncio.sleep(min(2.0, 0.1 * 2 ** resumes))

    async def _follow_once(self, since: int | None) -> BaseException | None:
        loop = asyncio.get_running_loop()
        api = self.launcher.api
        self._log_done = loop.create_future()
        stall = self.launcher.log_stall_s
        self._log = _HttpStream(loop, lambda: api.open_log(self.namespace, self.pod_name, stall,
                                                           since),
                                self._on_log_chunk, self._on_log_end,
                                name=f"k8s-log-{self.pod_name}").start()
        drain_until: float | None = None
        while not self._log_done.done():
            ended = self._stop.is_set() or self.pod_gone or _phase(self.pod) in ("Succeeded", "Failed")
            if ended and drain_until is None:
                grace = INTERRUPT_GRACE_S + 2 if self._stop.is_set() else LOG_DRAIN_S
                drain_until = loop.time() + grace
            if drain_until is not None and loop.time() >= drain_until:
                self._log.close()
                break
            waits = {self._log_done, asyncio.ensure_future(self._updates.get())}
            if not self._stop.is_set():   # once set it would wake us at once, every time
                waits.add(asyncio.ensure_future(self._stop.wait()))
            wait = 1.0 if drain_until is None else max(0.05, drain_until - loop.time())
            try:
                await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    if w is not self._log_done:
                        w.cancel()
        error = self._log_done.result() if self._log_done.done() else None
        if error is not None and _is_timeout(error):
            self._details["log_error"] = f"no engine output for {stall:g} s"
            self._stalled = True
        elif error is not None:
            self._details["log_error"] = (str(error) if isinstance(error, K8sError)
                                          else describe_error(error, api.server))
        return error

    async def _finish(self) -> int | None:
        loop = asyncio.get_running_loop()
        # A clean log EOF means the container exited: its status follows shortly. A stalled
        # or cancelled one will not change by waiting.
        until = loop.time() + (0.0 if self._stalled else 1.0 if self._cancelled
                               else FINAL_STATE_WAIT_S)
        while not self.pod_gone and _phase(self.pod) not in ("Succeeded", "Failed"):
            if not await self._next_update(until):
                await self._read_pod()
                break
        pod = self.pod or {}
        status = pod.get("status") or {}
        term = _terminated(pod) or {}
        if term.get("exitCode") is not None:
            self._exit_code = int(term["exitCode"])
        self._details.update(phase="Deleted" if self.pod_gone else _phase(pod),
                             node=(pod.get("spec") or {}).get("nodeName") or self._details.get("node"))
        if term.get("reason"):
            self._details["container_reason"] = term["reason"]
        if status.get("reason"):
            self._details["reason"] = status["reason"]
        if self._cancelled:
            return self._exit_code
        done = self.parser.done
        oom = term.get("reason") == "OOMKilled"
        if done is not None and not oom and done.status != "interrupted":
            return self._exit_code if self._exit_code is not None else done.exit_code
        # An interrupted engine (SIGTERM) or a stream cut short: say what happened to the pod.
        name = self.pod_name
        node = self._details.get("node")
        on_node = f" on node {node}" if node else ""
        code = self._exit_code
        if status.get("reason") == "Evicted":
            raise LaunchError(f"pod {name} evicted{on_node} mid-run: "
                              f"{' '.join(str(status.get('message') or '').split())}; "
                              f"events: {await self._events_text()}")
        if self.pod_gone and not self._deleted_by_us:
            disruption = _condition(pod, "DisruptionTarget") or {}
            why = f" ({disruption.get('reason')}: {disruption.get('message')})" if disruption else ""
            raise LaunchError(f"pod {name} was deleted while the engine ran{on_node}{why} "
                              f"(evicted or preempted?); events: {await self._events_text()}")
        if oom:
            raise LaunchError(f"pod {name}: container OOMKilled{on_node} (exit code {code}): it "
                              f"ran out of memory; raise its memory limit or use smaller sizes; "
                              f"events: {await self._events_text()}")
        if done is not None:   # interrupted, and nothing above explains it: the engine's word
            return self._exit_code if self._exit_code is not None else done.exit_code
        if _phase(pod) == "Failed" and not term:
            why = " ".join(f"{status.get('reason') or 'Failed'}: {status.get('message') or ''}".split())
            raise LaunchError(f"pod {name} failed{on_node} before its container ran ({why}); "
                              f"events: {await self._events_text()}")
        if _phase(pod) == "Failed":
            detail = self.stderr_tail[-1] if self.stderr_tail else (
                " ".join(str(term.get("message") or "").split())[-200:] or "no output")
            raise LaunchError(f"pod {name} failed{on_node}: container exited with code {code} "
                              f"({term.get('reason') or status.get('reason') or 'Error'}): {detail}; "
                              f"events: {await self._events_text()}")
        if _phase(pod) == "Running":
            why = self._details.get("log_error") or "no further output"
            if self._stalled:
                raise LaunchError(f"pod {name}{on_node}: {why} while Running: the engine hangs "
                                  f"(timeout {self.launcher.log_stall_s:g} s); pod deleted")
            raise LaunchError(f"pod {name}: log stream ended while the pod is still Running "
                              f"({why})")
        return code

    async def _cleanup(self) -> None:
        """Delete the pod (and wait until it is gone), stop its streams, release the ConfigMap."""
        if self._log is not None:
            self._log.close()
        launcher = self.launcher
        try:
            if self.job_name and self._created:   # first, so that it starts no replacement pod
                await _shielded(asyncio.to_thread(launcher.api.delete_job, self.namespace,
                                                  self.job_name))
            if self._created and self._pod_known and not self.pod_gone:
                await _shielded(asyncio.to_thread(
                    launcher.api.delete_pod, self.namespace, self.pod_name,
                    1 if self._cancelled else None))
                self._deleted_by_us = True
                await self._wait_gone()
        except K8sError as exc:
            self._details["cleanup_error"] = str(exc)
            self._status(f"could not delete pod {self.pod_name}: {exc} "
                         f"(`gpubench cleanup` removes leftovers)")
        finally:
            launcher._unsubscribe(self)
            if self._holds_engine:
                self._holds_engine = False
                try:
                    await _shielded(launcher._release_engine())
                except K8sError as exc:
                    self._details["cleanup_error"] = str(exc)

    async def _wait_gone(self) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + GONE_WAIT_S
        while loop.time() < until:
            pod = await asyncio.to_thread(self.launcher.api.read_pod, self.namespace, self.pod_name)
            if pod is None:
                self.pod_gone = True
                return
            await asyncio.sleep(0.5)

    async def _terminate(self) -> None:
        """Delete the pod: SIGTERM to the engine (partial result), SIGKILL after the grace."""
        self._stop.set()
        if self.job_name and self._created:
            try:
                await _shielded(asyncio.to_thread(self.launcher.api.delete_job, self.namespace,
                                                  self.job_name))
            except K8sError as exc:
                self._status(f"could not delete job {self.job_name}: {exc}")
        if self._created and self._pod_known and not self.pod_gone and not self._deleted_by_us:
            self._deleted_by_us = True
            try:
                await _shielded(asyncio.to_thread(self.launcher.api.delete_pod, self.namespace,
                                                  self.pod_name, INTERRUPT_GRACE_S))
            except K8sError as exc:
                self._status(f"could not delete pod {self.pod_name}: {exc}")

    def _mark_startup(self, key: str) -> None:
        """Seconds from the pod's create call to this point (init cost of the isolation layer)."""
        startup = self._details.setdefault("startup", {})
        if self._created_at is not None and key not in startup:
            startup[key] = round(asyncio.get_running_loop().time() - self._created_at, 3)

    def _put(self, event) -> None:
        if isinstance(event, Hello):
            self._mark_startup("to_hello_s")
        elif isinstance(event, Sample) and "to_first_sample_s" not in self._details.get("startup", {}):
            self._mark_startup("to_first_sample_s")
            first = self._details["startup"].get("to_first_sample_s")
            if first is not None:
                self._status(f"pod {self.pod_name}: first sample {first:.2f} s after creation")
        super()._put(event)

    def _end(self, outcome: str, message: str = "", exit_code: int | None = None,
             **details) -> None:
        merged = {**self._details, **details}
        super()._end(outcome, message, exit_code if exit_code is not None else self._exit_code,
                     **merged)


async def _shielded(aw):
    """Finish a cleanup step even when the awaiting task is being cancelled."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        return await task


class _FailedSession(Session):
    """A node whose pod could not even be created (run_on_nodes keeps the others going)."""

    def __init__(self, request: LaunchRequest, name: str, message: str, node: str | None):
        super().__init__(request, name)
        self.node_name = node
        self._end(FAILED, message, None, node=node)

    async def _run(self) -> int | None:  # pragma: no cover - never started
        return None

    async def _terminate(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Launcher
# ---------------------------------------------------------------------------------------------

class K8sLauncher(Launcher):
    name = "k8s"

    def __init__(self, cluster: ClusterConfig, scenario: ScenarioConfig, *, pool_size: int = 64,
                 workload: str = "pod"):
        if workload not in ("pod", "job"):
            raise ValueError(f"workload must be 'pod' or 'job' (got {workload!r})")
        self.workload = workload                # job: a batch/v1 Job (backoffLimit 0) runs the pod
        self.cluster = cluster
        self.scenario = scenario
        self.namespace = cluster.namespace
        self._pool_size = pool_size
        self._api: _Api | None = None
        self._api_lock = asyncio.Lock()
        self._bundle: EngineBundle | None = None
        self._engine_lock = asyncio.Lock()
        self._engine_users = 0
        self.instance = new_run_id()            # names this launcher's own engine ConfigMap
        # interval_s / ttl_s are attributes: tests shorten them.
        self.heartbeat = Heartbeat(
            lambda kind, name, annotations: self.api.patch_annotations(
                self.namespace, kind, name, annotations), self._tell_sessions)
        self._watches: dict[str, _PodWatch] = {}
        self.log_stall_s = LOG_STALL_S     # no log output this long while Running: incomplete

    @classmethod
    def from_config(cls, cluster: ClusterConfig, scenario: ScenarioConfig) -> "K8sLauncher":
        if cluster.engine_delivery not in ("configmap", "image"):
            raise K8sError(f"cluster {cluster.name}: engine_delivery must be configmap or image "
                           f"(got {cluster.engine_delivery!r})")
        return cls(cluster, scenario)

    @property
    def api(self) -> _Api:
        assert self._api is not None, "K8sLauncher.connect() first"
        return self._api

    async def connect(self) -> _Api:
        async with self._api_lock:
            if self._api is None:
                self._api = await asyncio.to_thread(_make_api, self.cluster, self._pool_size)
        return self._api

    def _tell_sessions(self, message: str) -> None:
        for watch in self._watches.values():
            for session in {*watch.sessions.values(), *watch.jobs.values()}:
                session._status(message)

    # -- engine ConfigMap, shared by this launcher's sessions only -------------------------
    @property
    def bundle(self) -> EngineBundle:
        if self._bundle is None:
            self._bundle = EngineBundle.from_dir(ENGINE_DIR, run=self.instance)
        return self._bundle

    async def _acquire_engine(self) -> None:
        bundle = self.bundle
        if bundle.size > CONFIGMAP_LIMIT_BYTES:
            raise K8sError(f"engine source is {bundle.size // 1024} KiB, over the ConfigMap limit "
                           f"of about 1 MiB: set engine_delivery = \"image\" for cluster "
                           f"{self.cluster.name}")
        async with self._engine_lock:
            # Already there only if this launcher's last release failed to delete it: reused.
            if self._engine_users == 0:
                await asyncio.to_thread(self.api.create_configmap, self.namespace,
                                        bundle.configmap(self.namespace,
                                                         self.heartbeat.annotations()))
                self.heartbeat.track("configmap", bundle.configmap_name)
            self._engine_users += 1

    async def _release_engine(self) -> None:
        async with self._engine_lock:
            self._engine_users -= 1
            if self._engine_users == 0:
                self.heartbeat.untrack("configmap", self.bundle.configmap_name)
                await asyncio.to_thread(self.api.delete_configmap, self.namespace,
                                        self.bundle.configmap_name)

    # -- watches ---------------------------------------------------------------------------
    def _subscribe(self, session: K8sSession) -> None:
        selector = f"{RUN_LABEL}={session.run_id}"
        watch = self._watches.get(selector)
        if watch is None:
            watch = self._watches[selector] = _PodWatch(self, selector)
        if session.job_name and not session._pod_known:
            watch.jobs[session.job_name] = session
        else:
            watch.sessions[session.pod_name] = session
        session._watch = watch

    def _unsubscribe(self, session: K8sSession) -> None:
        watch = session._watch
        if watch is None:
            return
        session._watch = None
        self.heartbeat.untrack("pod", session.pod_name)
        if session.job_name:
            self.heartbeat.untrack("job", session.job_name)
        watch.sessions.pop(session.pod_name, None)
        if session.job_name:
            watch.jobs.pop(session.job_name, None)
        if not watch.sessions and not watch.jobs:
            watch.stop()
            self._watches.pop(watch.selector, None)

    # -- pods ------------------------------------------------------------------------------
    def pod_spec(self, request: LaunchRequest, name: str, run_id: str,
                 node_name: str | None = None) -> dict:
        s = self.scenario
        env = dict(s.env)
        preload = request.preload
        proxy = s.proxy
        if proxy is not None:
            env.update(proxy.env)
            preload = preload or proxy.preload
        env.update(request.env)
        labels = {RUN_LABEL: run_id, SCENARIO_LABEL: label_value(s.name)}
        annotations = {"gpubench/scenario": s.name, **self.heartbeat.annotations()}
        if request.label:
            annotations["gpubench/label"] = request.label
        if node_name:
            labels[NODE_LABEL] = label_value(node_name)
            annotations["gpubench/node"] = node_name
        return pod_manifest(
            name=name, namespace=self.namespace, image=self.cluster.image,
            engine_args=request.engine_args, env=env, preload=preload, gpus=s.gpus,
            runtime_class=s.hypervisor.runtime_class if s.hypervisor else None,
            node_selector=s.node_selector, tolerations=s.tolerations, node_name=node_name,
            proxy_host_path=proxy.host_path if proxy else None,
            proxy_mount_path=proxy.mount_path if proxy else None,
            engine=self.bundle if self.cluster.engine_delivery == "configmap" else None,
            labels=labels, annotations=annotations)

    async def start(self, request: LaunchRequest, *, node_name: str | None = None,
                    run_id: str | None = None, index: int | None = None) -> K8sSession:
        run_id = run_id or new_run_id()
        name = pod_name(self.scenario.name, run_id, "" if index is None else str(index))
        job = name if self.workload == "job" else None
        session = K8sSession(self, request, name, run_id, node_name, job=job)
        where = f"k8s {self.cluster.name}"
        try:
            await self.connect()
            if self.cluster.engine_delivery == "configmap":
                await self._acquire_engine()
                session._holds_engine = True
            manifest = self.pod_spec(request, name, run_id, node_name)
            self._subscribe(session)
            session._created_at = asyncio.get_running_loop().time()
            if job:
                session._status(f"creating job {job} in namespace {self.namespace}")
                await asyncio.to_thread(self.api.create_job, self.namespace,
                                        job_manifest(manifest))
            else:
                session._status(f"creating pod {name} in namespace {self.namespace}")
                await asyncio.to_thread(self.api.create_pod, self.namespace, manifest)
            session._created = True
            self.heartbeat.track("job" if job else "pod", job or name)
        except (K8sError, OSError) as exc:
            self._unsubscribe(session)
            hint = ""
            if "404" in str(exc) and f'namespaces "{self.namespace}" not found' in str(exc):
                hint = f" (create it: kubectl create namespace {self.namespace})"
            if session._holds_engine:
                session._holds_engine = False
                try:
                    await self._release_engine()
                except K8sError:
                    pass
            raise K8sError(f"{where}: {exc}{hint}") from None
        session._begin()
        return session

    async def list_nodes(self, selector: str) -> list[str]:
        await self.connect()
        nodes = await asyncio.to_thread(self.api.list_nodes, selector)
        return sorted(n["metadata"]["name"] for n in nodes)

    async def close(self) -> None:
        self.heartbeat.clear()
        for watch in list(self._watches.values()):
            watch.stop()
        self._watches.clear()
        if self._api is not None:
            await asyncio.to_thread(self._api.client.close)


# ---------------------------------------------------------------------------------------------
# Fleet: one pod per GPU node
# ---------------------------------------------------------------------------------------------

DEFAULT_GPU_NODE_SELECTOR = "nvidia.com/gpu.present=true"   # set by NVIDIA's GPU feature discovery


async def run_on_nodes(cluster: ClusterConfig, scenario: ScenarioConfig, request: LaunchRequest,
                       node_names: list[str] | None = None, *, selector: str | None = None,
                       concurrency: int = 16, launcher: K8sLauncher | None = None) -> list[Session]:
    """Start one engine pod per node (spec.nodeName) and return their sessions, in node order.

    `node_names` None: the nodes matching `selector` (default: NVIDIA GPU feature
    discovery's `nvidia.com/gpu.present=true`). All pods share one run id (one watch);
    each has `gpubench/node=<node>`. A pod that cannot be created becomes a session that
    has already FAILED with the reason; the other nodes go on. Each session deletes its
    pod when it ends; the ConfigMap goes with the last one.
    """
    launcher = launcher or K8sLauncher(cluster, scenario,
                                       pool_size=max(64, min(len(node_names or ()) * 2 + 8, 1024)))
    if node_names is None:
        try:
            node_names = await launcher.list_nodes(selector or DEFAULT_GPU_NODE_SELECTOR)
        except K8sError as exc:
            raise K8sError(f"k8s {cluster.name}: listing nodes: {exc}") from None
        if not node_names:
            raise K8sError(f"k8s {cluster.name}: no node matches {selector or DEFAULT_GPU_NODE_SELECTOR!r}")
    run_id = new_run_id()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(index: int, node: str) -> Session:
        async with gate:
            try:
                return await launcher.start(request, node_name=node, run_id=run_id, index=index)
            except LaunchError as exc:
                return _FailedSession(request, f"k8s {cluster.name}/{node}", str(exc), node)

    return list(await asyncio.gather(*(one(i, n) for i, n in enumerate(node_names))))


__all__ = ["K8sLauncher", "K8sSession", "K8sError", "run_on_nodes", "describe_error",
           "format_events", "pending_reason"]
