"""Legacy text results: import the seed's text files, export text the seed's grep reads.

The seed project kept one text file per scenario (`baseline_results.txt`, ...) and
compared them with `grep "Throughput:"`. Its lines:

    Throughput: 6,977 ops/sec
    Average Latency: 0.14 ms (140 microseconds)
    p99 Latency: 0.198 ms
    Memory Bandwidth: 4.31 GB/s (H2D), 4.53 GB/s (D2H)

`kubectl logs` output holding the same lines (with or without `--timestamps`, or
with colour codes) imports too. Several `Throughput:` lines become several trials.
An imported run has `imported: true`, workload variants named `legacy` (the throughput
is the round trip, with its copy size when the user gave it) and no engine facts; `export_text` writes the same lines back (plus details that never
start with `Throughput:`), so the seed's script keeps working on exported runs.
"""
from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from .document import build_document, utc_now
from .labels import NOT_GPU, backend_mark, doc_backend, is_cpu
from .rates import TOKENS, variant_rate
from .schema import ResultError
from .stats import finite_median
from .steps import is_step, step_text
from .trial_counts import headline_workload, valid_trials

LEGACY_VARIANT = "legacy"
_NUMBER = r"([0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_THROUGHPUT = re.compile(r"\bThroughput:\s*" + _NUMBER + r"\s*(?:ops?|operations|iterations|it)"
                         r"\s*(?:/|per\s*)\s*(?:sec(?:ond)?|s)\b", re.I)
_LATENCY_UNIT = r"\s*(ms|msec|milliseconds?|us|µs|μs|usec|microseconds?|ns|s|sec|seconds?)\b"
_AVG = re.compile(r"\b(?:Average|Avg|Mean)\s+Latency:\s*" + _NUMBER + _LATENCY_UNIT, re.I)
_P99 = re.compile(r"\bp99(?:\.0)?\s+Latency:\s*" + _NUMBER + _LATENCY_UNIT, re.I)
_P50 = re.compile(r"\b(?:p50|median)\s+Latency:\s*" + _NUMBER + _LATENCY_UNIT, re.I)
_BANDWIDTH = re.compile(r"\b(?:Memory\s+)?Bandwidth:\s*(.*)$", re.I)
_BW_ITEM = re.compile(_NUMBER + r"\s*GB/s\s*\(\s*(H2D|D2H|D2D)\s*\)", re.I)
_BW_PREFIXED = re.compile(r"\b(H2D|D2H|D2D)\s+Bandwidth:\s*" + _NUMBER + r"\s*GB/s", re.I)


class LegacyFormatError(ResultError):
    """A text file that holds no seed-format result."""


def _to_float(text: str) -> float:
    return float(text.replace(",", ""))


def _to_us(value: float, unit: str) -> float:
    unit = unit.lower()
    if unit.startswith("ms") or unit.startswith("msec") or unit.startswith("milli"):
        return value * 1000.0
    if unit in ("ns",):
        return value / 1000.0
    if unit in ("s", "sec", "second", "seconds"):
        return value * 1e6
    return value  # us, µs, usec, microseconds


def parse_legacy_text(text: str) -> dict[str, list[float]]:
    """The figures in a seed-style text: lists of ops/s, mean/p50/p99 µs, H2D/D2H/D2D GB/s."""
    found: dict[str, list[float]] = {"ops_per_s": [], "mean_us": [], "p50_us": [], "p99_us": [],
                                     "h2d": [], "d2h": [], "d2d": []}
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).strip()
        if not line:
            continue
        if m := _THROUGHPUT.search(line):
            found["ops_per_s"].append(_to_float(m.group(1)))
        if m := _AVG.search(line):
            found["mean_us"].append(_to_us(_to_float(m.group(1)), m.group(2)))
        if m := _P99.search(line):
            found["p99_us"].append(_to_us(_to_float(m.group(1)), m.group(2)))
        if m := _P50.search(line):
            found["p50_us"].append(_to_us(_to_float(m.group(1)), m.group(2)))
        if m := _BW_PREFIXED.search(line):
            found[m.group(1).lower()].append(_to_float(m.group(2)))
        elif m := _BANDWIDTH.search(line):
            for value, kind in _BW_ITEM.findall(m.group(1)):
                found[kind.lower()].append(_to_float(value))
    return found


def import_legacy(text: str, scenario: dict, *, source: str = "", label: str = "",
                  notes: str = "", roundtrip_size: tuple[int, str] | None = None) -> dict:
    """A result document (imported: true) from seed-format text; LegacyFormatError when
    the text has no `Throughput: N ops/sec` line. The throughput is the seed's round trip
    (workload `roundtrip`); `roundtrip_size`, (bytes, as written) of each copy when known,
    lets it pair with a measured round trip of that size (results/legacy_pairs.py)."""
    figures = parse_legacy_text(text)
    where = source or "input"
    if not figures["ops_per_s"]:
        raise LegacyFormatError(f"{where}: no 'Throughput: N ops/sec' line found "
                                f"(not a seed-format result or kubectl log)")
    doc = build_document([], scenario, label=label, notes=notes, imported=True, source=source,
                         created=utc_now())
    trials = []
    for i, ops in enumerate(figures["ops_per_s"]):
        lat: dict[str, float] = {}
        for key, name in (("mean_us", "mean"), ("p50_us", "p50"), ("p99_us", "p99")):
            if i < len(figures[key]):
                lat[name] = figures[key][i]
        trials.append({"session": None, "trial": 0, "repeat": i, "ops_per_s": ops,
                       "latency_us": lat, "valid": True, "validity_reasons": []})
    params = {} if roundtrip_size is None else {"size_bytes": roundtrip_size[0],
                                                "size": roundtrip_size[1]}
    workloads: list[dict[str, Any]] = [
        {"workload": "roundtrip", "variant": LEGACY_VARIANT, "params": params,
         "trials": trials}]
    for kind in ("h2d", "d2h", "d2d"):
        if figures[kind]:
            workloads.append({"workload": kind, "variant": LEGACY_VARIANT, "params": {},
                              "trials": [{"session": None, "trial": 0, "repeat": i, "gbps": v,
                                          "latency_us": {}, "valid": True,
                                          "validity_reasons": []}
                                         for i, v in enumerate(figures[kind])]})
    n = sum(len(w["trials"]) for w in workloads)
    doc.update(workloads=workloads, outcome="completed", complete=True)
    doc["validity"] = {"status": "VALID", "reasons": [],
                       "notes": ["imported from legacy text: engine facts unknown"],
                       "invalid_trials": 0, "trials": n}
    return doc


# ---- export --------------------------------------------------------------------------------

def _bandwidth_workload(doc: dict, kind: str) -> dict | None:
    best, best_key = None, None
    for w in doc.get("workloads") or []:
        if w["workload"] != kind or finite_median([t.get("gbps") for t in valid_trials(w)]) is None:
            continue
        params = w.get("params") or {}
        key = (params.get("memory", "pinned") == "pinned", params.get("size_bytes") or 0)
        if best_key is None or key > best_key:
            best, best_key = w, key
    return best


def export_text(doc: dict) -> str:
    """Seed-format text: one `Throughput: N ops/sec` line (the headline: round trip if
    measured; `N tokens/sec` when the headline is decode or prefill), average and p99 latency
    in ms, H2D/D2H bandwidth, the decode/prefill step figures, then details."""
    head = headline_workload(doc.get("workloads") or [])
    if head is None:
        raise ResultError(f"run {doc.get('id')}: no throughput figure to export")
    scen = doc.get("scenario") or {}
    hello = doc.get("hello") or {}
    device = hello.get("device") or {}
    trials = valid_trials(head)
    ops = finite_median([t.get("ops_per_s") for t in trials])
    mean = finite_median([(t.get("latency_us") or {}).get("mean") for t in trials])
    p99 = finite_median([(t.get("latency_us") or {}).get("p99") for t in trials])
    backend = doc_backend(doc)
    title = f"CPU Benchmark Results ({NOT_GPU})" if is_cpu(backend) else "GPU Benchmark Results"
    out = [f"=== {title} (gpubench export) ===",
           f"Run: {doc.get('id')}",
           f"Scenario: {scen.get('title') or scen.get('name')} ({scen.get('name')})",
           f"Date: {doc.get('created')}",
           f"Device: {device.get('name') or 'unknown'} ({backend_mark(backend)})",
           f"Validity: {(doc.get('validity') or {}).get('status', 'unknown')}",
           f"Workload: {head['workload']} {head.get('variant', '')} "
           f"(median of {len(trials)} results)", ""]
    rate = variant_rate(head)     # the seed's grep reads this line: its unit says what it counts
    out.append(f"Throughput: {rate.value:,.0f} {rate.noun}/sec")
    if rate.noun == TOKENS:       # one step (op) makes a batch of tokens
        out.append(f"Step Rate: {ops:,.1f} steps/sec")
    if mean is not None:
        out.append(f"Average Latency: {mean / 1000.0:.3f} ms ({mean:.1f} microseconds)")
    if p99 is not None:
        out.append(f"p99 Latency: {p99 / 1000.0:.3f} ms")
    bw = []
    for kind in ("h2d", "d2h"):
        w = _bandwidth_workload(doc, kind)
        if w is not None:
            bw.append(f"{finite_median([t.get('gbps') for t in valid_trials(w)]):.2f} GB/s "
                      f"({kind.upper()})")
    if bw:
        out.append(f"Memory Bandwidth: {', '.join(bw)}")
    steps = [w for w in doc.get("workloads") or [] if is_step(w)]
    if steps:
        out += ["", "Steps (decode/prefill, medians over valid results):"]
        out += [step_text(w) for w in steps]
    out += ["", "Details (median over valid results):"]
    for w in doc.get("workloads") or []:
        t = valid_trials(w)
        parts = [f"  {w['workload']}/{w.get('variant', '')}: {len(t)} results"]
        if (rate := variant_rate(w)).value is not None:
            parts.append(f"{rate.value:,.1f} {rate.unit}")
        if (v := finite_median([(x.get("latency_us") or {}).get("p50") for x in t])) is not None:
            parts.append(f"p50 {v:.1f} us")
        if (v := finite_median([(x.get("latency_us") or {}).get("p99") for x in t])) is not None:
            parts.append(f"p99 {v:.1f} us")
        if (v := finite_median([x.get("gbps") for x in t])) is not None:
            parts.append(f"{v:.2f} GB/s")
        if (v := finite_median([x.get("tflops") for x in t])) is not None:
            parts.append(f"{v:.2f} TFLOP/s")
        out.append(", ".join(parts))
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("run_id", "scenario", "workload", "variant", "session", "trial", "repeat",
               "valid", "ops_per_s", "lat_mean_us", "lat_p50_us", "lat_p99_us", "gbps",
               "tflops", "validity_reasons", "backend")


def export_csv(doc: dict) -> str:
    """One row per result line of every workload variant, each with the backend that made it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    scen = (doc.get("scenario") or {}).get("name")
    backend = doc_backend(doc)
    for wl in doc.get("workloads") or []:
        for t in wl.get("trials") or []:
            lat = t.get("latency_us") or {}
            w.writerow([doc.get("id"), scen, wl["workload"], wl.get("variant"), t.get("session"),
                        t.get("trial"), t.get("repeat"), t.get("valid", True), t.get("ops_per_s"),
                        lat.get("mean"), lat.get("p50"), lat.get("p99"), t.get("gbps"),
                        t.get("tflops"), "; ".join(t.get("validity_reasons") or []), backend])
    return buf.getvalue()


def export_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
