"""How every output names what made a figure and where: the backend mark, the host's name, and
the counts of trials (engine sessions) and results (result lines). One wording, used by the CLI,
the exports, comparison.md and the app.

    backend_mark("numpy-cpu")                  'CPU (numpy-cpu) — not a GPU figure'
    backend_mark("cupy")                       'GPU (cupy)'
    backend_cell("numpy-cpu")                  'CPU (numpy-cpu)'     (a table cell)
    pair_mark("cupy", "numpy-cpu")             'MIXED backends: baseline GPU (cupy), candidate
                                                CPU (numpy-cpu) — not a GPU figure'
    host_display("local", "vm")                'local (vm)'
    doc_host(doc)                              the same, from a result document
    trial_count(doc), result_count(doc)        engine sessions' trials, result lines
"""
from __future__ import annotations

from typing import Any

CPU_BACKEND = "numpy-cpu"
NOT_GPU = "not a GPU figure"
CPU_CELL = f"CPU ({CPU_BACKEND})"
CPU_MARK = f"{CPU_CELL} — {NOT_GPU}"
UNKNOWN_BACKEND = "backend unknown"


def is_cpu(backend: Any) -> bool:
    return backend == CPU_BACKEND


def backend_cell(backend: Any) -> str:
    """The backend in a table cell: 'CPU (numpy-cpu)', 'GPU (cupy)', or 'unknown' (an imported
    figure, whose backend was never recorded)."""
    if is_cpu(backend):
        return CPU_CELL
    return f"GPU ({backend})" if backend else "unknown"


def backend_mark(backend: Any) -> str:
    """The backend in a sentence or a heading: a CPU figure always says it is not a GPU one."""
    if is_cpu(backend):
        return CPU_MARK
    return f"GPU ({backend})" if backend else UNKNOWN_BACKEND


def pair_mark(base_backend: Any, cand_backend: Any) -> str:
    """What made the two sides of a comparison: one mark when both sides share a backend,
    'MIXED backends: ...' naming each side's when they do not."""
    if base_backend == cand_backend:
        return backend_mark(base_backend)
    cpu = is_cpu(base_backend) or is_cpu(cand_backend)
    return (("MIXED backends: " if is_mixed(base_backend, cand_backend) else "")
            + f"baseline {backend_cell(base_backend)}, candidate {backend_cell(cand_backend)}"
            + (f" — {NOT_GPU}" if cpu else ""))


def is_mixed(base_backend: Any, cand_backend: Any) -> bool:
    """Both sides' backends known and different (an imported figure's is unknown)."""
    return bool(base_backend and cand_backend and base_backend != cand_backend)


def doc_backend(doc: dict) -> str | None:
    return doc.get("backend") or (doc.get("hello") or {}).get("backend")


def host_display(name: Any, hostname: Any = None) -> str:
    """A host as every view names it: the configured name (`local` for this machine, a
    [hosts] or [clusters] name), with the machine's hostname beside it when it differs."""
    name = str(name or "").strip()
    hostname = str(hostname or "").strip()
    if not name:
        return hostname
    return f"{name} ({hostname})" if hostname and hostname != name else name


def doc_host(doc: dict) -> str:
    """A run's host as the live grid and Hosts name it, from its document: the scenario's
    host (a local scenario without one ran on `local`) with the engine's hostname beside it,
    or `k8s:CLUSTER` (a pod's hostname is its pod name, new for every session: left out)."""
    scen = doc.get("scenario") or {}
    name = configured_host(scen.get("launcher"), scen.get("host"), scen.get("cluster"))
    if scen.get("launcher") == "k8s":
        return name
    hostname = ((doc.get("hello") or {}).get("host") or {}).get("hostname")
    return host_display(name, hostname)


def configured_host(launcher: Any, host: Any, cluster: Any) -> str | None:
    """A scenario's host by its configured name: `k8s:CLUSTER`, its [hosts] name, or `local`
    for a local scenario that names none (None for an imported run's scenario: unknown)."""
    if launcher == "k8s":
        return f"k8s:{cluster}" if cluster else None
    if host:
        return str(host)
    return "local" if launcher == "local" else None


def trial_count(doc: dict) -> int:
    """Trials (what `run --trials` counts): the engine sessions' trial indexes, each once; a
    per-GPU trial runs several sessions. An imported figure has none."""
    return len({s.get("trial") for s in doc.get("sessions") or []})


def result_count(doc: dict) -> int:
    """Result lines: one per workload variant per repeat of every session."""
    return sum(len(wl.get("trials") or []) for wl in doc.get("workloads") or [])


def summary_counts(summary: dict) -> tuple[int | None, int | None]:
    """(trials, results) of a stored summary. Summaries written before `results` existed
    counted result lines under `trials`: read as (None, that count)."""
    if "results" not in summary:
        return None, summary.get("trials")
    return summary.get("trials"), summary.get("results")
