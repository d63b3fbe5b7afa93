"""A Kubernetes API *emulator* for gpubench's tests and benchmarks (kmock 0.8, patched).

This is not a cluster. kmock's KubernetesEmulator is an in-memory object store
behind a real HTTP server on 127.0.0.1; the official `kubernetes` client talks to
it exactly as it would to a kube-apiserver. There is no scheduler, no kubelet and
no GPU device plugin: pod phases, container states, events and logs are scripted
by `FakeKubelet` below, following a `PodScript` the test chooses.

`GpubenchEmulator` fills the gaps of kmock 0.8 that ../shared/TEST-FACTS.md lists:
- create fills metadata.namespace, uid, resourceVersion, creationTimestamp and a
  name from generateName, and pods get status.phase = Pending (without the
  namespace kmock's watches never report MODIFIED/DELETED);
- every change bumps metadata.resourceVersion;
- list and watch honour equality label selectors (a=b, a==b, a!=b, a, !a) and
  equality field selectors on any dotted path (metadata.name=x,
  involvedObject.name=y); watch honours timeoutSeconds;
- the bundled resource definitions are loaded, so events (and batch/v1 jobs) exist;
- GET .../pods/NAME/log is served as text/plain, streamed in chunks while
  `follow=true`, ending when the scripted container ends or the pod is deleted
  (kmock itself answers it with the pod's JSON); `timestamps=true` and
  `sinceSeconds` behave like the kubelet's, and a script can drop the stream;
- kmock matches each request against every request it has ever recorded
  (quadratic: seconds per request after a few thousand); only the requests still
  being handled are kept;
- container statuses carry `imageID`: the client's pydantic models refuse them
  without it;
- a stand-in Job controller makes one pod per Job, and deleting a Job deletes
  its pods (garbage collection).

`EmulatorThread` runs it on its own event loop in its own thread, so blocking
client calls from tests or benchmarks never stall the server.
"""
from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import random
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp.web
import kmock
from kmock._internal import k8s as kmock_k8s

PODS = kmock.resource("", "v1", "pods")
EVENTS = kmock.resource("", "v1", "events")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
NODES = kmock.resource("", "v1", "nodes")
JOBS = kmock.resource("batch", "v1", "jobs")


def _now() -> str:
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def parse_selector(text: str | None) -> list[tuple[str, str, str | None]]:
    """'a=b,c!=d,e,!f' -> [(key, op, value)]; set-based selectors are refused."""
    out: list[tuple[str, str, str | None]] = []
    for term in (text or "").split(","):
        term = term.strip()
        if not term:
            continue
        if " in " in term or " notin " in term or "(" in term:
            raise kmock_k8s.KubernetesError(status=400, reason="BadRequest",
                                            message=f"emulator: set-based selector {term!r} unsupported")
        if "!=" in term:
            key, value = term.split("!=", 1)
            out.append((key.strip(), "!=", value.strip()))
        elif "==" in term:
            key, value = term.split("==", 1)
            out.append((key.strip(), "=", value.strip()))
        elif "=" in term:
            key, value = term.split("=", 1)
            out.append((key.strip(), "=", value.strip()))
        elif term.startswith("!"):
            out.append((term[1:].strip(), "absent", None))
        else:
            out.append((term, "exists", None))
    return out


def _labels_match(labels: dict, selector: list) -> bool:
    for key, op, value in selector:
        have = labels.get(key)
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "absent" and key in labels:
            return False
    return True


def _fields_match(obj: dict, selector: list) -> bool:
    for key, op, value in selector:
        have = _dig(obj, key)
        have = "" if have is None else str(have)
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
    return True


def _matches(obj: dict, params: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return (_labels_match(labels, parse_selector(params.get("labelSelector")))
            and _fields_match(obj, parse_selector(params.get("fieldSelector"))))


# ---------------------------------------------------------------------------------------------
# The scripted stand-in for a kubelet
# ---------------------------------------------------------------------------------------------

@dataclass
class PodScript:
    """What the fake kubelet does with a created pod.

    outcome: succeeded | failed | oom | evicted | unschedulable | image_pull | rejected | hang
    `lines` is the container's log (the engine's stdout and stderr), written one
    line every `line_interval_s`; `stop_after` cuts it short for failed/oom/evicted.
    `on_delete` is what the engine writes when the pod is deleted while running
    (SIGTERM: a partial result and `done` interrupted).
    """
    lines: list[str] = field(default_factory=list)
    outcome: str = "succeeded"
    exit_code: int = 0
    start_delay_s: float = 0.02
    line_interval_s: float = 0.0
    stop_after: int | None = None
    on_delete: list[str] = field(default_factory=list)
    status_lag_s: float = 0.02         # container exit (log EOF) -> status update, as on a real node
    node_name: str = "gpu-node-1"
    drop_log_after: int | None = None  # the API server drops the first log stream after N lines


def _kubelet_stamp(t: float) -> str:
    """RFC3339Nano as the kubelet writes it: nanoseconds, trailing zeros dropped."""
    dt = datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc)
    frac = f"{dt.microsecond:06d}{int(t * 1e9) % 1000:03d}".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


class _PodLog:
    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []   # (time written, line)
        self.closed = False
        self.changed = asyncio.Event()
        self.drop_after: int | None = None        # cut the first reader off after N lines

    def write(self, line: str) -> None:
        self.lines.append((time.time(), line))
        self.changed.set()

    def close(self) -> None:
        self.closed = True
        self.changed.set()


class FakeKubelet:
    """Scripted pod life cycle: scheduled, pulled, started, log lines, terminated.

    Runs on the emulator's loop. `script_for(pod)` picks the script: the test sets
    `default` or a function of the pod dict.
    """

    def __init__(self, emulator: "GpubenchEmulator") -> None:
        self.emu = emulator
        self.default = PodScript()
        self.script_for: Callable[[dict], PodScript] | None = None
        self.logs: dict[tuple[str, str], _PodLog] = {}
        self.deleted: dict[tuple[str, str], asyncio.Event] = {}
        self.tasks: set[asyncio.Task] = set()

    def pod_created(self, pod: dict) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        self.deleted[key] = asyncio.Event()
        script = self.script_for(pod) if self.script_for else self.default
        task = asyncio.get_running_loop().create_task(self._run(key, pod, script))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def pod_deleted(self, namespace: str, name: str) -> None:
        ev = self.deleted.get((namespace, name))
        if ev is not None:
            ev.set()

    async def _sleep_or_deleted(self, key, seconds: float) -> bool:
        """Sleep; True when the pod was deleted meanwhile."""
        ev = self.deleted[key]
        if seconds <= 0:
            await asyncio.sleep(0)
            return ev.is_set()
        try:
            await asyncio.wait_for(ev.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def _run(self, key, pod: dict, s: PodScript) -> None:
        ns, name = key
        emu = self.emu
        container = pod["spec"]["containers"][0]["name"]
        image = pod["spec"]["containers"][0].get("image", "")
        if await self._sleep_or_deleted(key, s.start_delay_s):
            return
        if s.outcome == "unschedulable":
            msg = ("0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes "
                   "are available: 4 No preemption victims found for incoming pod.")
            await emu.patch_object(PODS, ns, name, {"status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": msg}]}})
            await emu.add_event(ns, name, "Warning", "FailedScheduling", msg, "default-scheduler")
            return
        node = pod["spec"].get("nodeName") or s.node_name
        await emu.patch_object(PODS, ns, name, {"spec": {"nodeName": node}, "status": {
            "conditions": [{"type": "PodScheduled", "status": "True"}]}})
        await emu.add_event(ns, name, "Normal", "Scheduled",
                            f"Successfully assigned {ns}/{name} to {node}", "default-scheduler")
        if s.outcome == "rejected":   # kubelet admission: no free GPU on a node named by nodeName
            msg = ("Pod was rejected: Allocate failed due to requested number of devices unavailable "
                   "for nvidia.com/gpu. Requested: 1, Available: 0, which is unexpected")
            await emu.add_event(ns, name, "Warning", "UnexpectedAdmissionError", msg, "kubelet")
            await emu.patch_object(PODS, ns, name, {"status": {
                "phase": "Failed", "reason": "UnexpectedAdmissionError", "message": msg}})
            return
        if s.outcome == "image_pull":
            err = (f'Failed to pull image "{image}": rpc error: code = NotFound desc = '
                   f'failed to pull and unpack image "{image}": not found')
            await emu.patch_object(PODS, ns, name, {"status": {"containerStatuses": [
                {"name": container, "ready": False, "restartCount": 0, "image": image, "imageID": "",
                 "state": {"waiting": {"reason": "ErrImagePull", "message": err}}}]}})
            await emu.add_event(ns, name, "Warning", "Failed", err, "kubelet")
            if await self._sleep_or_deleted(key, 0.05):
                return
            await emu.patch_object(PODS, ns, name, {"status": {"containerStatuses": [
                {"name": container, "ready": False, "restartCount": 0, "image": image, "imageID": "",
                 "state": {"waiting": {"reason": "ImagePullBackOff",
                                       "message": f'Back-off pulling image "{image}"'}}}]}})
            await emu.add_event(ns, name, "Normal", "BackOff", f'Back-off pulling image "{image}"',
                                "kubelet")
            return
        await emu.add_event(ns, name, "Normal", "Pulled", f'Container image "{image}" already present',
                            "kubelet")
        await emu.add_event(ns, name, "Normal", "Started", f"Started container {container}", "kubelet")
        log = self.logs[key] = _PodLog()
        log.drop_after = s.drop_log_after
        await emu.patch_object(PODS, ns, name, {"status": {
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.1.0.7", "startTime": _now(),
            "containerStatuses": [{"name": container, "ready": True, "restartCount": 0,
                                   "image": image, "imageID": "", "state": {"running": {"startedAt": _now()}}}]}})
        if s.outcome == "hang":   # writes its lines, then nothing until the pod is deleted
            for line in s.lines:
                log.write(line)
            await self.deleted[key].wait()
            log.close()
            return
        for i, line in enumerate(s.lines):
            if s.stop_after is not None and i >= s.stop_after:
                break
            log.write(line)
            if await self._sleep_or_deleted(key, s.line_interval_s):
                for extra in s.on_delete:
                    log.write(extra)
                log.close()
                return
        log.close()   # the container exits: its log ends; the status follows a moment later
        if await self._sleep_or_deleted(key, s.status_lag_s):
            return

        def terminated(code: int, reason: str, message: str = "") -> dict:
            state = {"exitCode": code, "reason": reason, "startedAt": _now(), "finishedAt": _now()}
            if message:
                state["message"] = message
            return {"containerStatuses": [{"name": container, "ready": False, "restartCount": 0,
                                           "image": image, "imageID": "", "state": {"terminated": state}}]}

        if s.outcome == "succeeded":
            await emu.patch_object(PODS, ns, name, {"status": {"phase": "Succeeded",
                                                               **terminated(0, "Completed")}})
        elif s.outcome == "failed":
            await emu.patch_object(PODS, ns, name, {"status": {"phase": "Failed",
                                                               **terminated(s.exit_code, "Error")}})
        elif s.outcome == "oom":
            await emu.patch_object(PODS, ns, name, {"status": {"phase": "Failed",
                                                               **terminated(137, "OOMKilled")}})
        elif s.outcome == "evicted":
            msg = ("The node was low on resource: memory. Threshold quantity: 100Mi, available: "
                   "51200Ki. Container engine was using 14Gi, request is 0, has larger consumption "
                   "of memory.")
            await emu.add_event(ns, name, "Warning", "Evicted", msg, "kubelet")
            await emu.patch_object(PODS, ns, name, {"status": {
                "phase": "Failed", "reason": "Evicted", "message": msg,
                "conditions": [{"type": "DisruptionTarget", "status": "True",
                                "reason": "TerminationByKubelet", "message": msg}],
                **terminated(137, "ContainerStatusUnknown")}})


# ---------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------

class GpubenchEmulator(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator with the TEST-FACTS workarounds and a fake kubelet."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources.load_bundled()
        self._rv = itertools.count(1000)
        self._inflight: set = set()
        self.kubelet = FakeKubelet(self)

    # -- helpers for scripts (run on the emulator's loop) ---------------------------------
    def _fill(self, obj: dict, namespace: str | None, resource) -> None:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choices(string.ascii_lowercase + string.digits, k=5))
        if namespace and not meta.get("namespace"):
            meta["namespace"] = namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = str(next(self._rv))
        meta.setdefault("creationTimestamp", _now())
        if resource == PODS:
            obj.setdefault("status", {}).setdefault("phase", "Pending")

    async def patch_object(self, resource, namespace: str | None, name: str, patch: dict) -> bool:
        """Patch a stored object as the API would and tell the watchers (MODIFIED)."""
        async with self._lock:
            key = (resource, namespace, name)
            if key not in self._objects or self._objects[key].deleted:
                return False
            patch = dict(patch)
            patch.setdefault("metadata", {})
            patch["metadata"] = dict(patch["metadata"], resourceVersion=str(next(self._rv)))
            self._objects[key].patch(patch)
            raw = self._objects[key].raw
            await self._buses[resource].put({"type": "MODIFIED", "object": raw})
            return True

    async def put_object(self, resource, namespace: str | None, obj: dict) -> dict:
        """Create an object server-side (nodes, events) and tell the watchers (ADDED)."""
        self._fill(obj, namespace, resource)
        async with self._lock:
            key = (resource, namespace, obj["metadata"]["name"])
            if key in self._objects and not self._objects[key].deleted:
                self._objects[key].patch(obj)
            elif key in self._objects:
                self._objects[key].create(obj)
            else:
                self._objects[key] = obj
            raw = self._objects[key].raw
            await self._buses[resource].put({"type": "ADDED", "object": raw})
            return raw

    async def add_event(self, namespace: str, pod: str, type_: str, reason: str, message: str,
                        component: str = "kubelet") -> None:
        await self.put_object(EVENTS, namespace, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{pod}."},
            "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod},
            "type": type_, "reason": reason, "message": message, "count": 1,
            "source": {"component": component}, "firstTimestamp": _now(), "lastTimestamp": _now(),
        })

    def live(self, resource, namespace: str | None = None) -> dict[str, dict]:
        """name -> object for the objects of a resource that are not deleted."""
        out = {}
        for (res, ns, name), obj in self._objects.items():
            if res == resource and not obj.deleted and (namespace is None or ns == namespace):
                out[name] = obj.raw
        return out

    # -- request handling -------------------------------------------------------------------
    async def _handle(self, request):
        res = request.resource
        if res == PODS and request.subresource == "log" and request.method.value == "GET":
            self._requests.remove(request)
            return await self._serve_log(request)
        # kmock matches a request by testing `request in view` over every request it has
        # ever seen: quadratic, 0.5 s per request after a few thousand. Keep only those
        # still being handled (the DSL has matched the others already).
        self._inflight.add(request)
        if len(self._requests) > 2 * len(self._inflight) + 16:
            self._requests[:] = [r for r in self._requests if r in self._inflight]
        try:
            return await self._handle_k8s(request, res)
        finally:
            self._inflight.discard(request)

    async def _handle_k8s(self, request, res):
        if res is not None and request.subresource is None:
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                self._fill(request.data, request.namespace, res)
            elif request.action == kmock.action.UPDATE and isinstance(request.data, dict):
                meta = request.data.setdefault("metadata", {})
                meta["resourceVersion"] = str(next(self._rv))
        response = await super()._handle(request)
        if res == PODS and request.subresource is None and response.status < 300:
            if request.action == kmock.action.CREATE:
                self.kubelet.pod_created(request.data)
            elif request.action == kmock.action.DELETE and request.name:
                self.kubelet.pod_deleted(request.namespace, request.name)
        if res == JOBS and request.subresource is None and response.status < 300:
            if request.action == kmock.action.CREATE:
                await self._job_created(request.data)
            elif request.action == kmock.action.DELETE and request.name:
                await self._job_deleted(request.namespace, request.name)
        return response

    # A stand-in for the Job controller (one pod per Job) and the garbage collector.
    async def _job_created(self, job: dict) -> None:
        meta, tpl = job["metadata"], job["spec"]["template"]
        name = meta["name"]
        labels = dict((tpl.get("metadata") or {}).get("labels") or {})
        labels.update({"job-name": name, "batch.kubernetes.io/job-name": name,
                       "controller-uid": meta["uid"]})
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"generateName": f"{name}-", "labels": labels,
                            "annotations": dict((tpl.get("metadata") or {}).get("annotations") or {}),
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                                 "name": name, "uid": meta["uid"],
                                                 "controller": True}]},
               "spec": dict(tpl["spec"])}
        raw = await self.put_object(PODS, meta["namespace"], pod)
        self.kubelet.pod_created(raw)

    async def _job_deleted(self, namespace: str, job: str) -> None:
        async with self._lock:
            doomed = [name for (res, ns, name), obj in self._objects.items()
                      if res == PODS and ns == namespace and not obj.deleted
                      and (obj.raw.get("metadata", {}).get("labels") or {}).get("job-name") == job]
            for name in doomed:
                obj = self._objects[PODS, namespace, name]
                obj.delete()
                await self._buses[PODS].put({"type": "DELETED", "object": obj.last.raw})
        for name in doomed:
            self.kubelet.pod_deleted(namespace, name)

    async def _serve_list(self, request):
        result = await super()._serve_list(request)
        result["items"] = [o for o in result["items"] if _matches(o, request.params)]
        result["metadata"] = {"resourceVersion": str(next(self._rv))}
        return result

    async def _serve_watch(self, request):
        params = request.params
        parse_selector(params.get("labelSelector"))   # 400 before streaming, like the API
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        source = super()._serve_watch(request).__aiter__()
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    item = await asyncio.wait_for(source.__anext__(), remaining)
                except (StopAsyncIteration, asyncio.TimeoutError):
                    return
                if isinstance(item, dict):
                    if not _matches(item.get("object") or {}, params):
                        continue
                yield item
        finally:
            try:
                await source.aclose()
            except Exception:
                pass

    async def _serve_log(self, request) -> aiohttp.web.StreamResponse:
        ns, name = request.namespace, request.name
        raw = request._raw_request
        async with self._lock:
            key = (PODS, ns, name)
            exists = key in self._objects and not self._objects[key].deleted
        if not exists:
            raise kmock.KubernetesObjectNotFoundError(message=f'pods "{name}" not found')
        log = self.kubelet.logs.get((ns, name))
        if log is None:
            raise kmock_k8s.KubernetesError(
                status=400, reason="BadRequest",
                message=f'container "engine" in pod "{name}" is waiting to start: ContainerCreating')
        params = request.params
        follow = params.get("follow") == "true"
        stamps = params.get("timestamps") == "true"
        sent = 0
        if params.get("sinceSeconds"):
            cutoff = time.time() - float(params["sinceSeconds"])
            while sent < len(log.lines) and log.lines[sent][0] < cutoff:
                sent += 1
        drop_after, log.drop_after = log.drop_after, None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(raw)
        try:
            while True:
                log.changed.clear()
                if sent < len(log.lines):
                    batch = log.lines[sent:]
                    if drop_after is not None:
                        batch = batch[:max(0, drop_after - sent)]
                    chunk = "".join((f"{_kubelet_stamp(t)} " if stamps else "") + line + "\n"
                                    for t, line in batch)
                    sent += len(batch)
                    if chunk:
                        await response.write(chunk.encode())
                    if drop_after is not None and sent >= drop_after:
                        raw.transport.close()     # the connection drops mid-stream
                        return response
                    continue
                if log.closed or not follow:
                    break
                await log.changed.wait()
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response


class EmulatorThread:
    """The emulator served on 127.0.0.1 from its own thread and event loop.

        with EmulatorThread() as emu:
            emu.url                       # http://127.0.0.1:PORT for ClusterConfig.api_url
            emu.kubelet.default = PodScript(lines=[...])
            emu.call(emu.emulator.patch_object(...))   # run a coroutine on its loop
    """

    def __init__(self) -> None:
        self.emulator: GpubenchEmulator | None = None
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="k8s-emulator", daemon=True)

    @property
    def kubelet(self) -> FakeKubelet:
        assert self.emulator is not None
        return self.emulator.kubelet

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with GpubenchEmulator() as emu, kmock.Server(emu) as server:
            self.emulator = emu
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
            for task in list(emu.kubelet.tasks):
                task.cancel()

    def start(self) -> "EmulatorThread":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"emulator failed to start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self) -> "EmulatorThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- cross-thread access ------------------------------------------------------------------
    def call(self, coro) -> Any:
        """Run a coroutine on the emulator's loop from another thread; return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def acall(self, coro) -> Any:
        """The same from an asyncio test (another loop)."""
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def live(self, resource, namespace: str | None = None) -> dict[str, dict]:
        async def get():
            async with self.emulator._lock:
                return self.emulator.live(resource, namespace)
        return self.call(get())

    def events_for(self, namespace: str, pod: str) -> list[dict]:
        return [e for e in self.live(EVENTS, namespace).values()
                if e.get("involvedObject", {}).get("name") == pod]

    def add_node(self, name: str, labels: dict[str, str] | None = None, gpus: int = 8) -> None:
        self.call(self.emulator.put_object(NODES, None, {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"capacity": {"nvidia.com/gpu": str(gpus)},
                       "allocatable": {"nvidia.com/gpu": str(gpus)}}}))


def engine_stream_lines(path) -> list[str]:
    """A recorded engine stream (JSON Lines) from the fixtures folder."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


__all__ = ["GpubenchEmulator", "EmulatorThread", "FakeKubelet", "PodScript", "PODS", "EVENTS",
           "CONFIGMAPS", "NODES", "JOBS", "parse_selector", "engine_stream_lines"]
