"""A session's pod on the cluster: its state in words, waiting until it starts, its events,
deleting it. `PodSession` is the part of a `K8sSession` that knows the pod; the engine's
stream through the pod log is session.py's.

The watch (streams.PodWatch) feeds `pod_update`; with no news for POLL_S the pod is read
directly. Every API call runs in a worker thread, and a cleanup step finishes even when
the awaiting task is cancelled.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..base import LaunchError, LaunchRequest, Session
from .api import K8sError
from .spec import CONTAINER

if TYPE_CHECKING:
    from .launcher import K8sLauncher
    from .streams import PodWatch

POLL_S = 5.0                   # with no watch news for this long, read the pod directly
INTERRUPT_GRACE_S = 5          # cancel: the pod's grace period (SIGTERM, then SIGKILL)
GONE_WAIT_S = 10.0             # cleanup: how long to wait for a deleted pod to disappear
EVENTS_QUOTED = 6
# Container waiting reasons that will not resolve by waiting.
FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                 "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                 "CrashLoopBackOff")


def container_status(pod: dict) -> dict:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return cs
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def terminated(pod: dict) -> dict | None:
    return (container_status(pod).get("state") or {}).get("terminated")


def waiting(pod: dict) -> dict | None:
    return (container_status(pod).get("state") or {}).get("waiting")


def phase(pod: dict | None) -> str:
    return ((pod or {}).get("status") or {}).get("phase") or "Pending"


def condition(pod: dict, kind: str) -> dict | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def pending_reason(pod: dict) -> str:
    """Why a pod is not running yet, e.g. 'Unschedulable: 0/4 nodes are available: ...'."""
    sched = condition(pod, "PodScheduled")
    if sched and sched.get("status") == "False":
        return f"{sched.get('reason') or 'not scheduled'}: {sched.get('message') or ''}".rstrip(": ")
    state = waiting(pod)
    if state:
        return f"{state.get('reason') or 'waiting'}" + (
            f": {state['message']}" if state.get("message") else "")
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


async def shielded(aw):
    """Finish a cleanup step even when the awaiting task is being cancelled."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        return await task


class PodSession(Session):
    def __init__(self, launcher: "K8sLauncher", request: LaunchRequest, pod: str, run_id: str,
                 node_name: str | None = None, job: str | None = None):
        super().__init__(request, f"k8s {launcher.cluster.name}/{job or pod}")
        self.launcher = launcher
        self.job_name = job                   # Job mode: the pod's name comes from the Job controller
        self.pod_name = pod
        self.pod_known = job is None
        self.run_id = run_id
        self.node_name = node_name
        self.namespace = launcher.namespace
        self.pod: dict | None = None          # latest state seen
        self.pod_gone = False                 # DELETED seen (or 404 on read)
        self.created = False                  # the create call succeeded (set by the launcher)
        self.created_at: float | None = None  # loop time of the create call (start-up timing)
        self.holds_engine = False             # counted among the engine ConfigMap's users
        self.watch: PodWatch | None = None
        self._deleted_by_us = False
        self._updates: asyncio.Queue[None] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._last_status = ""
        self._details: dict[str, Any] = {"pod": pod, "namespace": self.namespace,
                                         "cluster": launcher.cluster.name, "run_id": run_id}

    # -- fed by the watch (on the loop) --------------------------------------------------------
    def adopt(self, pod: str | None) -> bool:
        """Job mode: the first pod the Job created is ours (a replacement is not followed)."""
        if self.pod_known or not pod:
            return False
        self.pod_name, self.pod_known = pod, True
        self._details["pod"] = pod
        self.launcher.heartbeat.track("pod", pod)
        return True

    def pod_update(self, kind: str | None, obj: dict) -> None:
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
        if not self.pod_known:
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
            if self.pod_known:
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

    def _mark_startup(self, key: str) -> None:
        """Seconds from the pod's create call to this point (init cost of the isolation layer)."""
        startup = self._details.setdefault("startup", {})
        if self.created_at is not None and key not in startup:
            startup[key] = round(asyncio.get_running_loop().time() - self.created_at, 3)

    # -- waiting until it starts --------------------------------------------------------------
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
                now = phase(pod)
                node = (pod.get("spec") or {}).get("nodeName")
                if node:
                    self._details["node"] = node
                state = waiting(pod)
                if state and state.get("reason") in FATAL_WAITING:
                    reason = state.get("reason")
                    what = ("image pull failed" if "Image" in reason else "container cannot start")
                    msg = f": {state['message']}" if state.get("message") else ""
                    self._details["reason"] = reason
                    raise LaunchError(
                        f"pod {self.pod_name}: {what} ({reason}{msg}); image "
                        f"{self.launcher.cluster.image!r}; events: {await self._events_text()}")
                if now in ("Running", "Succeeded", "Failed"):
                    self._say(f"pod {self.pod_name} {now}" + (f" on {node}" if node else ""))
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

    # -- deletion -----------------------------------------------------------------------------
    async def _cleanup(self) -> None:
        """Delete the pod (and wait until it is gone), stop watching it, release the ConfigMap."""
        launcher = self.launcher
        try:
            if self.job_name and self.created:   # first, so that it starts no replacement pod
                await shielded(asyncio.to_thread(launcher.api.delete_job, self.namespace,
                                                 self.job_name))
            if self.created and self.pod_known and not self.pod_gone:
                await shielded(asyncio.to_thread(
                    launcher.api.delete_pod, self.namespace, self.pod_name,
                    1 if self._cancelled else None))
                self._deleted_by_us = True
                await self._wait_gone()
        except K8sError as exc:
            self._details["cleanup_error"] = str(exc)
            self._status(f"could not delete pod {self.pod_name}: {exc} "
                         f"(`gpubench cleanup` removes leftovers)")
        finally:
            launcher.unsubscribe(self)
            if self.holds_engine:
                self.holds_engine = False
                try:
                    await shielded(launcher.release_engine())
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
        if self.job_name and self.created:
            try:
                await shielded(asyncio.to_thread(self.launcher.api.delete_job, self.namespace,
                                                 self.job_name))
            except K8sError as exc:
                self._status(f"could not delete job {self.job_name}: {exc}")
        if self.created and self.pod_known and not self.pod_gone and not self._deleted_by_us:
            self._deleted_by_us = True
            try:
                await shielded(asyncio.to_thread(self.launcher.api.delete_pod, self.namespace,
                                                 self.pod_name, INTERRUPT_GRACE_S))
            except K8sError as exc:
                self._status(f"could not delete pod {self.pod_name}: {exc}")
