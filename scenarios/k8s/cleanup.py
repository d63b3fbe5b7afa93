"""`gpubench cleanup`: remove what gpubench left on a cluster, never a live run's objects.

Every Job, pod and ConfigMap labelled `app.kubernetes.io/managed-by=gpubench` in the
cluster's namespace is judged by its own owner and heartbeat annotations
(heartbeat.judge): a gone run's objects are removed; a live run's are kept and
reported, one line per run; an object whose liveness cannot be told (no heartbeat, or
one that does not parse) is kept and reported, one line each. A ConfigMap that a kept
pod mounts is kept too. `everything=True` (`--all`) removes all of them regardless.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from scenarios.config import ClusterConfig

from .api import K8sError, make_api
from .heartbeat import Verdict, judge, this_machine
from .spec import MANAGED_SELECTOR

NAMES_SHOWN = 5     # a kept line names this many objects, then counts the rest
GONE = Verdict(False, "--all", "")


@dataclass
class CleanupReport:
    removed: list[str] = field(default_factory=list)   # 'pod/NAME' ... (dry run: would be)
    kept: list[str] = field(default_factory=list)      # one line per live run or unknown object
    kept_objects: int = 0


def _names(items: list[str]) -> str:
    more = len(items) - NAMES_SHOWN
    return ", ".join(items[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _mounted_configmaps(pod: dict) -> set[str]:
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return {str((v.get("configMap") or {}).get("name")) for v in volumes
            if isinstance(v, dict) and isinstance(v.get("configMap"), dict)}


def cleanup_leftovers(cluster: ClusterConfig, *, everything: bool = False,
                      dry_run: bool = False, now: float | None = None) -> CleanupReport:
    """Judge and delete (unless `dry_run`) gpubench's Jobs, pods and ConfigMaps in the
    cluster's namespace. Blocking (for the CLI); raises K8sError (one line) when the API
    cannot be reached."""
    try:
        api = make_api(cluster)
    except K8sError as exc:
        raise K8sError(f"k8s {cluster.name}: {exc}") from None
    ns = cluster.namespace
    now = time.time() if now is None else now
    machine = this_machine()
    report = CleanupReport()
    try:
        try:
            jobs = api.list_jobs(ns, MANAGED_SELECTOR)
        except K8sError as exc:
            if "404" not in str(exc):   # a server without batch/v1: nothing to clean there
                raise
            jobs = []
        found = [("job", o) for o in jobs]
        found += [("pod", o) for o in api.list_pods(ns, MANAGED_SELECTOR)]
        verdicts = {}
        for kind, obj in found:
            verdicts[kind, obj["metadata"]["name"]] = (
                GONE if everything else judge(obj["metadata"], now, machine))
        in_use = set()
        for kind, obj in found:
            if kind == "pod" and verdicts[kind, obj["metadata"]["name"]].alive is not False:
                in_use |= _mounted_configmaps(obj)
        for obj in api.list_configmaps(ns, MANAGED_SELECTOR):
            name = obj["metadata"]["name"]
            found.append(("configmap", obj))
            verdict = GONE if everything else judge(obj["metadata"], now, machine)
            if verdict.alive is False and name in in_use:
                verdict = Verdict(True, "mounted by a pod that is kept", "")
            verdicts["configmap", name] = verdict
        delete = {"job": api.delete_job, "pod": lambda n, name: api.delete_pod(n, name, grace=1),
                  "configmap": api.delete_configmap}
        # one line per live run, keyed by owner alone: the heartbeats of one run's objects
        # were renewed seconds apart, so their ages differ (the line shows the first's)
        alive: dict[str, tuple[str, list[str]]] = {}
        for kind, obj in found:   # Jobs first: their pods go with them
            name = obj["metadata"]["name"]
            verdict = verdicts[kind, name]
            if verdict.alive is False:
                if dry_run or delete[kind](ns, name):
                    report.removed.append(f"{kind}/{name}")
                continue
            report.kept_objects += 1
            if verdict.alive is None:
                report.kept.append(f"{kind}/{name}: {verdict.why}: kept, as its run may be "
                                   f"alive; --all removes it")
            else:   # owner "": ConfigMaps kept for the pods mounting them
                alive.setdefault(verdict.owner, (verdict.why, []))[1].append(f"{kind}/{name}")
        for owner, (why, items) in alive.items():
            head = f"run of {owner} alive ({why})" if owner else f"in use ({why})"
            report.kept.append(f"{head}, skipped {_names(items)}; --all removes "
                               f"{'it' if len(items) == 1 else 'them'}")
    except K8sError as exc:
        raise K8sError(f"k8s {cluster.name} namespace {ns}: {exc}") from None
    finally:
        api.client.close()
    return report
