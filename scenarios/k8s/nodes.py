"""A fleet on Kubernetes: find the GPU nodes and run one engine pod on each."""
from __future__ import annotations

import asyncio

from scenarios.config import ClusterConfig, ScenarioConfig

from ..base import LaunchError, LaunchRequest, Session
from ..events import FAILED
from .api import K8sError
from .launcher import K8sLauncher
from .spec import new_run_id

DEFAULT_GPU_NODE_SELECTOR = "nvidia.com/gpu.present=true"   # set by NVIDIA's GPU feature discovery


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


async def list_nodes(launcher: K8sLauncher, selector: str) -> list[str]:
    """The names of the nodes matching a label selector, sorted."""
    await launcher.connect()
    nodes = await asyncio.to_thread(launcher.api.list_nodes, selector)
    return sorted(n["metadata"]["name"] for n in nodes)


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
            node_names = await list_nodes(launcher, selector or DEFAULT_GPU_NODE_SELECTOR)
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
