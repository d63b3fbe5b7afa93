"""`K8sLauncher`: starts engine sessions as pods (or Jobs) on one cluster.

It owns what its sessions share: the API client, the engine ConfigMap (created with the
first session that needs it, deleted with the last), one pod watch per run label, and the
heartbeat that renews the owner annotations of everything it keeps on the cluster.
"""
from __future__ import annotations

import asyncio

from scenarios.config import ClusterConfig, ScenarioConfig

from ..base import ENGINE_DIR, LaunchRequest, Launcher
from .api import Api, K8sError, make_api
from .heartbeat import Heartbeat
from .session import K8sSession
from .spec import (CONFIGMAP_LIMIT_BYTES, NODE_LABEL, RUN_LABEL, SCENARIO_LABEL, EngineBundle,
                   job_manifest, label_value, new_run_id, pod_manifest, pod_name)
from .streams import PodWatch

LOG_STALL_S = 300.0            # no log output for this long while Running: the engine hangs


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
        self._api: Api | None = None
        self._api_lock = asyncio.Lock()
        self._bundle: EngineBundle | None = None
        self._engine_lock = asyncio.Lock()
        self._engine_users = 0
        self.instance = new_run_id()            # names this launcher's own engine ConfigMap
        # interval_s / ttl_s are attributes: tests shorten them.
        self.heartbeat = Heartbeat(
            lambda kind, name, annotations: self.api.patch_annotations(
                self.namespace, kind, name, annotations), self._tell_sessions)
        self._watches: dict[str, PodWatch] = {}
        self.log_stall_s = LOG_STALL_S     # no log output this long while Running: incomplete

    @classmethod
    def from_config(cls, cluster: ClusterConfig, scenario: ScenarioConfig) -> "K8sLauncher":
        if cluster.engine_delivery not in ("configmap", "image"):
            raise K8sError(f"cluster {cluster.name}: engine_delivery must be configmap or image "
                           f"(got {cluster.engine_delivery!r})")
        return cls(cluster, scenario)

    @property
    def api(self) -> Api:
        assert self._api is not None, "K8sLauncher.connect() first"
        return self._api

    async def connect(self) -> Api:
        async with self._api_lock:
            if self._api is None:
                self._api = await asyncio.to_thread(make_api, self.cluster, self._pool_size)
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

    async def release_engine(self) -> None:
        """A session no longer needs the engine ConfigMap: the last one out deletes it."""
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
            watch = self._watches[selector] = PodWatch(self.api, self.namespace, selector)
        if session.job_name and not session.pod_known:
            watch.jobs[session.job_name] = session
        else:
            watch.sessions[session.pod_name] = session
        session.watch = watch

    def unsubscribe(self, session: K8sSession) -> None:
        """The session's pod is gone (or never made): stop renewing it, stop watching it."""
        watch = session.watch
        if watch is None:
            return
        session.watch = None
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
                session.holds_engine = True
            manifest = self.pod_spec(request, name, run_id, node_name)
            self._subscribe(session)
            session.created_at = asyncio.get_running_loop().time()
            if job:
                session._status(f"creating job {job} in namespace {self.namespace}")
                await asyncio.to_thread(self.api.create_job, self.namespace,
                                        job_manifest(manifest))
            else:
                session._status(f"creating pod {name} in namespace {self.namespace}")
                await asyncio.to_thread(self.api.create_pod, self.namespace, manifest)
            session.created = True
            self.heartbeat.track("job" if job else "pod", job or name)
        except (K8sError, OSError) as exc:
            self.unsubscribe(session)
            hint = ""
            if "404" in str(exc) and f'namespaces "{self.namespace}" not found' in str(exc):
                hint = f" (create it: kubectl create namespace {self.namespace})"
            if session.holds_engine:
                session.holds_engine = False
                try:
                    await self.release_engine()
                except K8sError:
                    pass
            raise K8sError(f"{where}: {exc}{hint}") from None
        session._begin()
        return session

    async def close(self) -> None:
        self.heartbeat.clear()
        for watch in list(self._watches.values()):
            watch.stop()
        self._watches.clear()
        if self._api is not None:
            await asyncio.to_thread(self._api.client.close)
