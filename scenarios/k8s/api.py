"""Blocking access to the Kubernetes API: the client built from the cluster's configuration,
raw JSON in and out, and every error phrased as one line (`K8sError`).

Called from worker threads only (`asyncio.to_thread`, the stream threads): the kubernetes
client blocks. Responses are read as raw JSON (`_preload_content=False`): no model
deserialisation, which keeps 100 pods cheap. The `kubernetes` package takes seconds to
import: it is imported inside the functions that need it, so that importing this module
(the CLI, the registry, a launcher not yet connected) stays cheap.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
from typing import Any, Callable

from scenarios.config import ClusterConfig

from ..base import LaunchError
from .heartbeat import RENEW_TIMEOUT_S
from .spec import CONTAINER

CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 30.0          # one ordinary API call
WATCH_TIMEOUT_S = 60           # server-side watch timeout; the watch is then reopened


class K8sError(LaunchError):
    """A Kubernetes API or configuration problem, phrased as one line."""


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def describe_error(exc: BaseException, server: str) -> str:
    """One line for an exception from the kubernetes client or urllib3."""
    import urllib3.exceptions as ue   # with the kubernetes client: only where a cluster is used
    from kubernetes.client.exceptions import ApiException   # lazy: the client is heavy

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


def is_timeout(exc: BaseException) -> bool:
    """Whether a stream ended because its read timed out (the cause may be a few links down)."""
    import urllib3.exceptions as ue   # with the kubernetes client: only where a cluster is used
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


def _status_of(exc: BaseException) -> int | None:
    from kubernetes.client.exceptions import ApiException   # lazy: the client is heavy
    return exc.status if isinstance(exc, ApiException) else None


class Api:
    """Thin blocking wrapper: raw JSON in and out, errors as K8sError."""

    def __init__(self, api_client, server: str):
        from kubernetes import client   # lazy: the client is heavy
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

    def open_log(self, ns: str, name: str, stall_s: float, since_s: int | None = None):
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


def make_api(cluster: ClusterConfig, pool_size: int = 64) -> Api:
    """Build the client (blocking: reads the kubeconfig)."""
    from kubernetes import client, config as kconfig   # lazy: the client is heavy

    pool_log = logging.getLogger("urllib3.connectionpool")
    if _QUIET not in pool_log.filters:
        pool_log.addFilter(_QUIET)

    cfg = client.Configuration()
    cfg.connection_pool_maxsize = pool_size
    if cluster.api_url:
        cfg.host = cluster.api_url.rstrip("/")
        return Api(client.ApiClient(cfg), cfg.host)
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
    return Api(api_client, api_client.configuration.host)
