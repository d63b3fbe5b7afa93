"""The memory limit judged per allocation path (the probe is memory_probe.py): one verdict per
path and the check's verdict, the worst path's.

  ENFORCED       refused at or under the limit with CUDA_ERROR_OUT_OF_MEMORY
  WRONG ERROR    refused at or under the limit, but with another code (named)
  NOT ENFORCED   allocated past the limit
  NOT SUPPORTED  the driver has no such entry point, or answers CUDA_ERROR_NOT_SUPPORTED
A probe answer that contradicts itself (negative bytes, refused with success, more held than
the probe asks for) is not judged: its path says so in one line and the check cannot pass.
"""
from __future__ import annotations

from typing import Any

from results.check_verdicts import (ENFORCED, NOT_APPLICABLE, NOT_ENFORCED, NOT_SUPPORTED,
                                    WRONG_ERROR)
from results.format import fmt_size

from .memory_probe import CUBLAS_PATH

CUDA_ERROR_OUT_OF_MEMORY = 2
CUDA_ERRORS = {1: "CUDA_ERROR_INVALID_VALUE", 2: "CUDA_ERROR_OUT_OF_MEMORY",
               3: "CUDA_ERROR_NOT_INITIALIZED", 201: "CUDA_ERROR_INVALID_CONTEXT",
               400: "CUDA_ERROR_INVALID_HANDLE", 500: "CUDA_ERROR_NOT_FOUND",
               700: "CUDA_ERROR_ILLEGAL_ADDRESS", 801: "CUDA_ERROR_NOT_SUPPORTED",
               999: "CUDA_ERROR_UNKNOWN"}
# worst first: the check's verdict is the first of these that a path has
SEVERITY = (NOT_ENFORCED, WRONG_ERROR, NOT_APPLICABLE, ENFORCED, NOT_SUPPORTED)
PATH_LABELS = {"cuMemAllocAsync": "cuMemAllocAsync (default pool)",
               "cuMemAllocFromPoolAsync": "cuMemAllocFromPoolAsync (cuMemPoolCreate pool)",
               "cuMemCreate": "cuMemCreate + cuMemMap (VMM)"}


def path_label(path: str) -> str:
    return PATH_LABELS.get(path, path)


def cuda_error(rc: Any) -> str:
    if rc == 0:
        return "CUDA_SUCCESS"
    name = CUDA_ERRORS.get(rc)
    if name:
        return f"{name} ({rc})"
    return f"code {rc}" + (" (not a CUDA error code)" if isinstance(rc, int) and rc < 0 else "")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _lie(r: dict) -> str | None:
    """What makes a probe answer impossible, or None."""
    if not _is_int(r.get("allocated")) or not _is_int(r.get("allocations")):
        return "no whole byte and allocation counts"
    if r["allocated"] < 0 or r["allocations"] < 0:
        return f"negative figures (allocated {r['allocated']}, allocations {r['allocations']})"
    if not isinstance(r.get("refused"), bool):
        return "no refused flag"
    if r.get("path") == CUBLAS_PATH:
        return None
    if r["refused"] and r.get("rc") == 0:
        return f"refused and allocated at once (refused with CUDA_SUCCESS at {r['allocated']} B)"
    if not r["refused"] and r.get("rc") not in (0, None):
        return f"not refused, yet the last call failed with {cuda_error(r.get('rc'))}"
    if not r["refused"] and r.get("supported", True) is False and r["allocated"]:
        return "an absent path that allocated"
    step, stop = r.get("step"), r.get("stop_at")
    if _is_int(step) and _is_int(stop) and r["allocated"] > stop + step:
        return f"{r['allocated']} B held, more than the probe asks for ({stop} B)"
    return None


def judge_memory_path(r: dict, limit: int, bare: dict | None = None) -> dict:
    """One path's verdict from its probe answer (`bare`: the cuBLAS workspace measured
    without the proxy)."""
    path = r.get("path") or "?"
    label = path_label(path)
    row: dict[str, Any] = {"path": path, "label": label, "probe": r}
    if "error" in r:
        return {**row, "verdict": NOT_APPLICABLE, "observed": "probe failed",
                "summary": f"{label}: {r['error']}"}
    lie = _lie(r)
    if lie:
        return {**row, "verdict": NOT_APPLICABLE, "observed": "answer rejected",
                "summary": f"{label}: the probe's answer contradicts itself: {lie}; not judged"}
    if r.get("supported") is False or (r["refused"] and r.get("rc") == 801 and not r["allocated"]):
        why = f"no {r['absent']} in the driver" if r.get("absent") else cuda_error(r.get("rc"))
        return {**row, "verdict": NOT_SUPPORTED, "observed": "not supported",
                "summary": f"{label}: not supported ({why})"}
    if path == CUBLAS_PATH:
        return {**row, **_judge_cublas(r, limit, bare)}
    judged = _judge_steps(r, limit, label)
    if _is_int(r.get("free_errors")) and r["free_errors"] > 0:   # memory the path kept
        judged["summary"] += (f"; {r['free_errors']} of its frees failed with "
                              f"{cuda_error(r.get('free_rc'))}")
    return {**row, **judged}


def _judge_steps(r: dict, limit: int, label: str) -> dict:
    got = r["allocated"]
    row: dict[str, Any] = {"observed_bytes": got}
    steps = f"{fmt_size(r.get('step'))} steps"
    if got > limit:
        tail = (f", then refused with {cuda_error(r.get('rc'))}" if r["refused"]
                else " without one refusal")
        return {**row, "verdict": NOT_ENFORCED,
                "observed": f"{fmt_size(got)} allocated" + ("" if r["refused"] else
                                                              ", never refused"),
                "summary": f"{label}: allocated {fmt_size(got)} in {steps}, past the configured "
                           f"{fmt_size(limit)}{tail}"}
    if not r["refused"]:
        return {**row, "verdict": NOT_APPLICABLE, "observed": f"{fmt_size(got)} allocated",
                "summary": f"{label}: the probe stopped at {fmt_size(got)}, before the limit"}
    at = f"at {fmt_size(got)} of the configured {fmt_size(limit)} ({steps}"
    at += f", by {r['call']})" if r.get("call") and r["call"] != r["path"] else ")"
    early = " — far under the limit" if got < limit / 2 else ""
    if r.get("rc") == CUDA_ERROR_OUT_OF_MEMORY:
        return {**row, "verdict": ENFORCED, "observed": f"refused at {fmt_size(got)}",
                "summary": f"{label}: refused with CUDA_ERROR_OUT_OF_MEMORY {at}{early}"}
    return {**row, "verdict": WRONG_ERROR,
            "observed": f"refused at {fmt_size(got)}, {cuda_error(r.get('rc'))}",
            "summary": f"{label}: refused with {cuda_error(r.get('rc'))} instead of "
                       f"CUDA_ERROR_OUT_OF_MEMORY {at}{early}"}


def _judge_cublas(r: dict, limit: int, bare: dict | None) -> dict:
    held = r["allocated"]
    if not r.get("fill_refused"):
        return {"verdict": NOT_ENFORCED, "observed": f"{fmt_size(held)} allocated",
                "observed_bytes": held,
                "summary": f"{CUBLAS_PATH}: cudaMalloc filled {fmt_size(held)} past the "
                           f"configured {fmt_size(limit)} without a refusal"}
    need = (bare or {}).get("workspace_bytes")
    if bare is not None and "error" in bare:
        return {"verdict": NOT_APPLICABLE, "observed": "bare probe failed",
                "summary": f"{CUBLAS_PATH}: without the proxy: {bare['error']}"}
    if not need:
        return {"verdict": NOT_SUPPORTED, "observed": "no workspace",
                "summary": f"{CUBLAS_PATH}: cuBLAS took no device memory for a fresh handle's "
                           "first GEMM here: nothing for the limit to refuse"}
    full = f"with the limit full ({fmt_size(held)} held, under 1 MiB left)"
    err = r.get("gemm_error")
    if err is None:
        return {"verdict": NOT_ENFORCED, "observed": "GEMM ran at the limit",
                "observed_bytes": held + need,
                "summary": f"{CUBLAS_PATH}: a fresh handle's GEMM ran {full}; without the proxy "
                           f"it takes {fmt_size(need)}"}
    oom = any(k in err for k in ("OUT_OF_MEMORY", "ALLOC_FAILED", "OutOfMemory"))
    return {"verdict": ENFORCED if oom else WRONG_ERROR, "observed": "GEMM refused",
            "observed_bytes": held,
            "summary": f"{CUBLAS_PATH}: a fresh handle's GEMM ({fmt_size(need)} without the "
                       f"proxy) was refused {full}: {err}"}


def memory_verdict(paths: list[dict]) -> tuple[str, list[str]]:
    """The check's verdict (the worst path's) and its reasons, worst paths first."""
    ranked = sorted(paths, key=lambda p: SEVERITY.index(p["verdict"]))
    if not ranked or all(p["verdict"] == NOT_SUPPORTED for p in ranked):
        return NOT_APPLICABLE, [p["summary"] for p in ranked] or ["no allocation path probed"]
    return ranked[0]["verdict"], [p["summary"] for p in ranked]


def memory_observed(paths: list[dict]) -> str:
    """The check's observed figure: how many paths got each verdict."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p["verdict"]] = counts.get(p["verdict"], 0) + 1
    return ", ".join(f"{counts[v]} {v}" for v in SEVERITY if v in counts)
