"""Manifests the `k8s` launcher creates: the engine ConfigMap, the Pod, the Job.

Pure functions over plain dicts (the JSON the API server receives), so the spec
can be checked without a cluster. Everything carries the label
`app.kubernetes.io/managed-by=gpubench` and `gpubench/run=<id>`, which is how
`gpubench cleanup` finds leftovers (and the owner and heartbeat annotations of
heartbeat.py, which is how it tells a live run's objects from leftovers).
"""
from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "gpubench"
MANAGED_SELECTOR = f"{MANAGED_BY}={MANAGED_BY_VALUE}"
RUN_LABEL = "gpubench/run"
SCENARIO_LABEL = "gpubench/scenario"
NODE_LABEL = "gpubench/node"
ENGINE_LABEL = "gpubench/engine"
CONTAINER = "engine"
ENGINE_ROOT = "/opt/gpubench"           # PYTHONPATH; the ConfigMap is mounted at ENGINE_ROOT/engine
CONFIGMAP_LIMIT_BYTES = 1_000_000       # the API server refuses larger ConfigMaps (1 MiB with overhead)

_DNS_BAD = re.compile(r"[^a-z0-9-]+")
_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def dns_label(text: str, max_len: int = 63) -> str:
    """A DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric."""
    s = _DNS_BAD.sub("-", text.lower()).strip("-")
    return s[:max_len].rstrip("-") or "x"


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends)."""
    s = _LABEL_BAD.sub("-", text)[:63]
    return s.strip("-._")


def new_run_id() -> str:
    return secrets.token_hex(4)


def pod_name(scenario: str, run_id: str, suffix: str = "") -> str:
    """gpubench-<scenario>-<run>[-<suffix>], unique per run, <= 63 characters."""
    tail = f"-{run_id}" + (f"-{dns_label(suffix, 20)}" if suffix else "")
    head = dns_label(f"gpubench-{scenario}", 63 - len(tail))
    return head + tail


# -- engine delivery ------------------------------------------------------------------------

def engine_sources(engine_dir: Path) -> dict[str, str]:
    """relative path -> source text for every engine module (engine/*.py, engine/workloads/*.py, ...)."""
    out: dict[str, str] = {}
    for path in sorted(engine_dir.rglob("*.py")):
        rel = path.relative_to(engine_dir)
        if "__pycache__" in rel.parts or rel.parts[0] in ("tests",):
            continue
        out[rel.as_posix()] = path.read_text(encoding="utf-8")
    return out


def configmap_key(rel_path: str) -> str:
    """ConfigMap keys may not contain '/': workloads/gemm.py -> workloads..gemm.py."""
    return rel_path.replace("/", "..")


class EngineBundle:
    """The engine's sources, their content hash and the ConfigMap that carries them.

    `run` given: the ConfigMap is that run's own (gpubench-engine-<hash>-<run>), so that
    no other run, in this process or another, ever deletes it from under its pods."""

    def __init__(self, sources: dict[str, str], run: str = ""):
        self.sources = sources
        self.run = run
        digest = hashlib.sha256()
        for rel, text in sorted(sources.items()):
            digest.update(rel.encode() + b"\0" + text.encode("utf-8") + b"\0")
        self.hash = digest.hexdigest()[:12]
        self.size = sum(len(t.encode("utf-8")) for t in sources.values())

    @classmethod
    def from_dir(cls, engine_dir: Path, run: str = "") -> "EngineBundle":
        return cls(engine_sources(engine_dir), run)

    @property
    def configmap_name(self) -> str:
        return f"gpubench-engine-{self.hash}" + (f"-{dns_label(self.run, 20)}" if self.run else "")

    def configmap(self, namespace: str, annotations: dict[str, str] | None = None) -> dict:
        meta: dict = {"name": self.configmap_name, "namespace": namespace,
                      "labels": {MANAGED_BY: MANAGED_BY_VALUE, ENGINE_LABEL: self.hash}}
        if annotations:
            meta["annotations"] = dict(annotations)
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                "data": {configmap_key(rel): text for rel, text in self.sources.items()}}

    def volume(self) -> dict:
        return {"name": "gpubench-engine", "configMap": {
            "name": self.configmap_name,
            "items": [{"key": configmap_key(rel), "path": rel} for rel in sorted(self.sources)]}}


# -- pod ------------------------------------------------------------------------------------

def pod_manifest(*, name: str, namespace: str, image: str, engine_args: tuple[str, ...] | list[str],
                 env: dict[str, str] | None = None, preload: str | None = None, gpus: int = 1,
                 runtime_class: str | None = None, node_selector: dict[str, str] | None = None,
                 tolerations: tuple[dict, ...] | list[dict] = (), node_name: str | None = None,
                 proxy_host_path: str | None = None, proxy_mount_path: str | None = None,
                 engine: EngineBundle | None = None, labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None) -> dict:
    """The engine's Pod. `engine` given: its ConfigMap is mounted and put on PYTHONPATH;
    None: the image has the engine baked in (`python3 -m engine` must import)."""
    env = dict(env or {})
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"       # the ConfigMap mount is read-only
    if preload:
        existing = env.get("LD_PRELOAD", "")
        env["LD_PRELOAD"] = f"{preload}:{existing}" if existing else preload
    volumes: list[dict] = []
    mounts: list[dict] = []
    if engine is not None:
        env["PYTHONPATH"] = ENGINE_ROOT + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else "")
        volumes.append(engine.volume())
        mounts.append({"name": "gpubench-engine", "mountPath": f"{ENGINE_ROOT}/engine",
                       "readOnly": True})
    if proxy_host_path:
        volumes.append({"name": "gpu-proxy", "hostPath": {"path": proxy_host_path,
                                                          "type": "Directory"}})
        mounts.append({"name": "gpu-proxy", "mountPath": proxy_mount_path or proxy_host_path,
                       "readOnly": True})
    env_list = [{"name": k, "value": str(v)} for k, v in sorted(env.items())]
    # Where the pod landed, in the engine's hello.host.env (it reports GPUBENCH_* variables).
    env_list += [{"name": "GPUBENCH_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 {"name": "GPUBENCH_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    container = {
        "name": CONTAINER, "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-u", "-m", "engine", *engine_args],
        "env": env_list,
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
        "volumeMounts": mounts,
        # On failure the last log lines become the container's termination message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec: dict = {"restartPolicy": "Never", "containers": [container], "volumes": volumes,
                  "terminationGracePeriodSeconds": 10, "enableServiceLinks": False}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    if node_name:
        spec["nodeName"] = node_name
    all_labels = {MANAGED_BY: MANAGED_BY_VALUE, **(labels or {})}
    meta: dict = {"name": name, "namespace": namespace, "labels": all_labels}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def job_manifest(pod: dict, *, ttl_s: int = 600) -> dict:
    """A batch/v1 Job around a pod manifest: one pod, backoffLimit 0 (a failed engine is a
    result, not something to retry), removed by the TTL controller if we cannot."""
    meta = pod["metadata"]
    template_meta = {"labels": dict(meta["labels"])}
    job_meta = {"name": meta["name"], "namespace": meta["namespace"], "labels": dict(meta["labels"])}
    if meta.get("annotations"):   # the owner and heartbeat: on the Job and on its pod
        template_meta["annotations"] = dict(meta["annotations"])
        job_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1,
                     "ttlSecondsAfterFinished": ttl_s,
                     "template": {"metadata": template_meta, "spec": dict(pod["spec"])}}}
