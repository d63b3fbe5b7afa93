"""How `gpubench show` prints one stored run: its header lines, the per-workload figures (per
GPU and summed when it ran one engine per GPU), its isolation checks and telemetry."""
from __future__ import annotations

from gpubench.cli.tables import VERDICT_STYLES, print_table
from results.check_tables import check_detail_tables
from results.check_verdicts import CHECK_COLUMNS, check_rows, check_table
from results.comparison import cuda_version_text
from results.format import EMPTY, fmt_value
from results.labels import (CPU_MARK, backend_mark, doc_backend, doc_host, is_cpu, result_count,
                            trial_count)
from results.per_gpu import aggregate_workloads, doc_gpus, gpu_workloads, is_per_gpu
from results.rates import rate_of
from results.stats import cv_pct, finite_median, mad_outliers, median
from results.steps import STEP_COLUMNS, step_rows
from results.trial_counts import doc_counts, metrics_line, status_line


def _device_line(doc: dict) -> str:
    dev = (doc.get("hello") or {}).get("device") or {}
    if is_cpu(doc_backend(doc)):
        return f"{dev.get('name')} ({CPU_MARK})"
    return (f"{dev.get('name')} (driver {dev.get('driver') or '?'}, CUDA "
            f"{cuda_version_text(dev.get('cuda_driver')) or '?'}, backend {doc.get('backend')})")


def _outcome_text(doc: dict) -> str:
    """How the run ended, and why it is incomplete when it is (said once: an outcome that is
    itself `incomplete` is not followed by the word again)."""
    outcome, reason = f"{doc.get('outcome')}", doc.get("incomplete_reason")
    if reason:
        return f"{outcome}: {reason}" if outcome == "incomplete" else \
            f"{outcome}, incomplete: {reason}"
    return outcome + (", plan interrupted" if doc.get("complete") is False else "")


def _show_rows(workloads: list, gpu: str) -> list[list]:
    """`show` rows (workload, variant, gpu, valid/results, throughput, mean, p99, GB/s, CV,
    outliers). The throughput cell carries its unit: tokens/s for decode/prefill, ops/s else
    (the rows mix workloads); CV and outliers are the same in either unit."""
    rows = []
    for wl in workloads:
        trials = wl.get("trials") or []
        valid = [t for t in trials if t.get("valid", True)]
        shown = f"{len(valid)}/{len(trials)}"
        if not valid and trials:  # all invalid: show their figures, marked
            valid, shown = trials, f"0/{len(trials)} (figures of invalid results)"
        ops = [t.get("ops_per_s") for t in valid if t.get("ops_per_s")]
        cv = cv_pct(ops) if len(ops) >= 2 else None
        rows.append([wl["workload"], wl.get("variant"), gpu, shown,
                     rate_of(wl["workload"], finite_median(ops),
                             finite_median([t.get("tokens_per_s") for t in valid])).text(),
                     fmt_value(finite_median([(t.get("latency_us") or {}).get("mean")
                                              for t in valid])),
                     fmt_value(finite_median([(t.get("latency_us") or {}).get("p99")
                                              for t in valid])),
                     fmt_value(finite_median([t.get("gbps") for t in valid])),
                     EMPTY if cv is None else f"{cv:.1f}%",
                     len(mad_outliers(ops)) if len(ops) >= 3 else 0])
    return rows


STARTUP_STEPS = (("to_running_s", "Running"), ("to_hello_s", "engine hello"),
                 ("to_first_sample_s", "first sample"))


def _startup_lines(sessions: list, launcher: str | None) -> list[tuple[str, str]]:
    """`show` lines for the sessions' start-up timings (sessions[].details.startup, k8s):
    from the pod's creation to Running, the engine's hello and its first sample; the median
    and range when there are several sessions; the nodes the pods ran on."""
    startups = [((s.get("details") or {}).get("startup") or {}) for s in sessions]
    startups = [st for st in startups if isinstance(st, dict) and st]
    out: list[tuple[str, str]] = []
    if startups:
        origin = "pod creation" if launcher == "k8s" else "launch"
        parts, last = [], None
        for key, name in STARTUP_STEPS:
            vals = sorted(v for v in (st.get(key) for st in startups)
                          if isinstance(v, (int, float)) and not isinstance(v, bool))
            if vals:
                parts.append(f"{name} {median(vals):.2f} s")
                last = (name, vals)
        if parts:
            text = f"{origin} → " + " → ".join(parts)
            if len(startups) > 1 and last is not None:
                name, vals = last
                text += (f" (medians of {len(vals)} sessions; {name} "
                         f"{vals[0]:.2f}–{vals[-1]:.2f} s)")
            out.append(("startup", text))
    nodes: dict[str, int] = {}
    for s in sessions:
        node = (s.get("details") or {}).get("node")
        if node:
            nodes[str(node)] = nodes.get(str(node), 0) + 1
    if nodes:
        out.append(("nodes", ", ".join(f"{n} ({c} session{'s' if c > 1 else ''})"
                                       for n, c in nodes.items())))
    return out


def print_run(doc: dict) -> None:
    """The run's header lines, then its tables, on stdout."""
    lines = header_lines(doc)
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    print()
    _print_workloads(doc)
    steps = step_rows(doc.get("workloads") or [])
    if steps:
        print()
        print_table(STEP_COLUMNS, steps, title="decode/prefill steps: tokens/s, step latency, "
                    "jitter (p99 ÷ p50); medians of the valid results (of all when none is)")
    checks = check_rows(doc)
    if checks:
        print()
        print_table(CHECK_COLUMNS[2:], [r[2:] for r in check_table(checks)],
                    title="isolation checks", styles=VERDICT_STYLES)
    for title, columns, rows in (t for c in doc.get("checks") or [] for t in check_detail_tables(c)):
        print()
        print_table(columns, rows, title=title)
    tel = doc.get("telemetry") or {}
    if tel.get("count"):
        print()
        rows = [[name, fmt_value(r.get("min")), fmt_value(r.get("mean")), fmt_value(r.get("max"))]
                for name, r in (tel.get("readings") or {}).items()]
        print_table(("telemetry", "min", "mean", "max"), rows)
        if tel.get("throttle_event_count"):
            names = sorted({n for e in tel.get("throttle_events") or [] for n in e["names"]})
            print(f"throttle events: {tel['throttle_event_count']} ({', '.join(names)})")


def header_lines(doc: dict) -> list[tuple[str, str]]:
    """(name, text) lines about the run: scenario, host, device, tool, plan, outcome,
    validity, sessions and their start-up."""
    scen = doc.get("scenario") or {}
    hello = doc.get("hello") or {}
    val = doc.get("validity") or {}
    counts = doc_counts(doc)
    tool = doc.get("tool") or {}
    group = doc.get("group") or {}
    lines = [
        ("run", doc["id"]), ("created", doc.get("created")),
        ("scenario", f"{scen.get('name')} — {scen.get('title') or ''} "
                     f"(launcher {scen.get('launcher')}, target {scen.get('target')}"
                     + (f" < {scen['target_pct']:g}%" if scen.get("target_pct") is not None else "")
                     + ")"),
        ("host", doc_host(doc) or EMPTY),
        ("device", _device_line(doc) if hello else "unknown (imported)"),
        ("backend", backend_mark(doc_backend(doc))),
        ("trials", f"{trial_count(doc)} ({len(doc.get('sessions') or [])} engine sessions), "
                   f"{result_count(doc)} results"),
        ("tool", f"gpubench {tool.get('version')}, engine {tool.get('engine_version')}, "
                 f"commit {(tool.get('git_commit') or 'unknown')[:12]}"),
        ("group", f"{group.get('id')} (seed {group.get('seed')}, "
                  f"{group.get('executed')}/{group.get('planned', len(group.get('order') or []))}"
                  f" trials run)"
         if group else EMPTY),
        ("outcome", _outcome_text(doc)),
        ("validity", status_line(val.get("status"), counts["headline"]) + (
            ": " + "; ".join(val.get("reasons") or []) if val.get("reasons") else "")),
        ("counted", metrics_line(counts["metrics"]) or EMPTY),
        ("label", doc.get("label") or EMPTY), ("notes", doc.get("notes") or EMPTY),
    ]
    if doc.get("imported"):
        lines.append(("imported", f"yes, from {doc.get('source') or 'legacy text'}"))
    for note in val.get("notes") or []:
        lines.append(("note", note))
    sessions = doc.get("sessions") or []
    if sessions:
        counts: dict[str, int] = {}
        for s in sessions:
            counts[s.get("outcome")] = counts.get(s.get("outcome"), 0) + 1
        lines.append(("sessions", ", ".join(f"{n} {o}" for o, n in counts.items())))
        for s in sessions:
            if s.get("outcome") != "completed" and s.get("message"):
                lines.append((f"session {s['index']}", f"{s['outcome']}: {s['message']}"))
        lines += _startup_lines(sessions, scen.get("launcher"))
    return lines


def _print_workloads(doc: dict) -> None:
    title = f"figures by {backend_mark(doc_backend(doc))}"
    if is_per_gpu(doc):
        gpus = doc_gpus(doc)
        print(f"GPUs: {len(gpus)}, run {doc.get('gpu_mode') or 'concurrently'}: "
              + "; ".join(f"{i} {g.get('uuid') or ''} ({g.get('name') or '?'}"
                          + (", MIG instance" if g.get("mig_instance") else "") + ")"
                          for i, g in gpus.items()))
        part = doc.get("partition") or {}
        if part.get("kind"):
            print(f"partition: {part['kind']}, {part.get('visible_gpus')} GPU(s) visible"
                  + (f", NVML sees {part['nvml_gpus']}" if part.get("nvml_gpus") else ""))
        rows = []
        for i in gpus:
            rows += _show_rows(gpu_workloads(doc, i), str(i))
        rows += _show_rows(aggregate_workloads(doc), "all")
        print_table(("workload", "variant", "gpu", "valid/results", "throughput", "mean µs",
                     "p99 µs", "GB/s", "CV", "outliers"),
                    sorted(rows, key=lambda r: (r[0], r[1], r[2] == "all", r[2])), title=title)
        print("gpu all: throughput and GB/s summed across GPUs run concurrently (— when run one "
              "after the other), latency the median across GPUs")
    else:
        print_table(("workload", "variant", "valid/results", "throughput", "mean µs", "p99 µs",
                     "GB/s", "CV", "outliers"), [r[:2] + r[3:] for r in _show_rows(
                         doc.get("workloads") or [], "")], title=title)
