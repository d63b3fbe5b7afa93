"""Build a result document from the engine's raw protocol lines.

Input is what each engine session printed (protocol v1 lines, as text or decoded
dicts) plus how the session ended; nothing here knows about launchers or event
classes, so the same code serves the runner, the TUI, replays and tests.

    doc = build_document([SessionRecord(lines, outcome="completed", trial=0)],
                         scenario={"name": "bare-metal", "title": "...", "launcher": "local"})
    store.save(doc, raw_lines=archive_lines(records))
"""
from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from engine.plausibility import judge_session
from engine.protocol import ProtocolError, validate_line
from engine.redact import redact_env_tables, redact_hello
from engine.throttle import BENIGN_THROTTLE

from .labels import doc_host, is_cpu, result_count, trial_count
from .schema import (CANCELLED, COMPLETED, FAILED, INCOMPLETE, INVALID, SCHEMA_VERSION, VALID)
from .stats import finite_median, finite_number
from .trial_counts import (FEW_RESULTS, doc_counts, headline_workload, status_line, status_word,
                           valid_trials, validity_counts)

try:  # the engine package ships beside us; its version is the tool's measuring version
    from engine import __version__ as ENGINE_VERSION
except Exception:  # pragma: no cover - engine always importable in this repo
    ENGINE_VERSION = None

MAX_THROTTLE_EVENTS = 200
TRIAL_FIELDS = ("repeat", "ops", "duration_s", "ops_per_s", "latency_us", "gbps", "tflops",
                "bytes", "valid", "validity_reasons", "interrupted", "t", "window",
                "tokens_per_s", "jitter", "flops_per_step", "device_latency_us")
IDENTITY_DEVICE_KEYS = ("name", "uuid", "driver", "cuda_driver", "cuda_runtime")


def harmful_throttle(names) -> list[str]:
    """The throttle reasons among `names` that slow a measurement (sorted, each once): idle,
    boost and clock-setting reasons are the GPU's normal states, not a threat to the figure."""
    return sorted({str(n) for n in names or () if str(n) not in BENIGN_THROTTLE})


@dataclass
class SessionRecord:
    """One engine session: its lines and how it ended (outcome words as scenarios.events)."""
    lines: Sequence[str | dict] = ()
    outcome: str = COMPLETED
    message: str = ""
    exit_code: int | None = None
    trial: int = 0
    layer_reasons: Sequence[str] = ()     # from layer verification (proxy not mapped, ...)
    layer_notes: Sequence[str] = ()       # what layer verification could not prove (a note)
    started: str | None = None            # UTC ISO time the session started
    warnings: Sequence[str] = ()          # stream warnings (malformed lines) seen by the reader
    gpu: dict | None = None               # per-GPU runs: {index, uuid, name, mig_instance}
    gpu_mode: str | None = None           # per-GPU runs: concurrent | sequential
    # what the launcher said about the session (scenarios.events.SessionEnded.details): k8s
    # gives `startup` {to_running_s, to_hello_s, to_first_sample_s} (seconds from the pod's
    # create call), `pod`, `node`, ...; stored as sessions[].details when not empty
    details: dict | None = None


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(scenario: str, created: str | None = None) -> str:
    """`20261125-203541-bare-metal-3f9a1c`: sortable by time, readable, unique."""
    stamp = (created or utc_now()).replace("-", "").replace(":", "")
    stamp = stamp.replace("T", "-").rstrip("Z")[:15]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario).strip("._") or "run"
    return f"{stamp}-{safe[:40]}-{secrets.token_hex(3)}"


def decode_lines(lines: Iterable[str | dict]) -> tuple[list[dict], list[str], list[str]]:
    """(valid decoded lines, their text, warnings); bad lines are skipped with a warning."""
    decoded: list[dict] = []
    texts: list[str] = []
    warnings: list[str] = []
    for n, item in enumerate(lines, 1):
        if isinstance(item, str):
            text = item.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                warnings.append(f"line {n}: not JSON ({exc.msg})")
                continue
        else:
            obj, text = item, None
        try:
            validate_line(obj)
        except ProtocolError as exc:
            warnings.append(f"line {n}: {exc}")
            continue
        if (redacted := redact_hello(obj)) is not None:  # kept, archived: never a secret
            obj, text = redacted, None
        decoded.append(obj)
        texts.append(text if text is not None else json.dumps(obj, separators=(",", ":")))
    return decoded, texts, warnings


def device_identity(hello: dict | None) -> dict[str, Any]:
    """The facts that decide whether two runs are comparable."""
    if not hello:
        return {}
    device = hello.get("device") or {}
    ident = {k: device.get(k) for k in IDENTITY_DEVICE_KEYS}
    ident["engine_version"] = hello.get("engine_version")
    ident["backend"] = hello.get("backend")
    ident["hostname"] = (hello.get("host") or {}).get("hostname")
    return ident


class _TelemetryAccumulator:
    def __init__(self) -> None:
        self.count = 0
        self.stats: dict[str, list[float]] = {}   # name -> [min, sum, max, n]
        self.throttle_events: list[dict] = []
        self.throttle_total = 0

    def add(self, line: dict, session: int) -> None:
        self.count += 1
        readings = line.get("readings") or {}
        for name, value in readings.items():
            if name == "throttle_reasons":
                continue
            x = finite_number(value)
            if x is None:
                continue
            s = self.stats.get(name)
            if s is None:
                self.stats[name] = [x, x, x, 1]
            else:
                s[0] = min(s[0], x)
                s[1] += x
                s[2] = max(s[2], x)
                s[3] += 1
        names = readings.get("throttle_names") or []
        slow = harmful_throttle(names)
        if slow:
            self.throttle_total += 1
            if len(self.throttle_events) < MAX_THROTTLE_EVENTS:
                self.throttle_events.append({"session": session, "t": line.get("t"),
                                             "names": slow})

    def summary(self) -> dict:
        readings = {name: {"min": s[0], "mean": round(s[1] / s[3], 6), "max": s[2], "n": s[3]}
                    for name, s in sorted(self.stats.items())}
        return {"count": self.count, "readings": readings,
                "throttle_events": self.throttle_events,
                "throttle_event_count": self.throttle_total}


def _overall_outcome(outcomes: list[str], complete: bool) -> str:
    if not outcomes:
        return CANCELLED if not complete else FAILED
    if all(o == COMPLETED for o in outcomes):
        return COMPLETED if complete else INCOMPLETE
    if all(o == FAILED for o in outcomes):
        return FAILED
    if not complete and any(o == CANCELLED for o in outcomes) and \
            not any(o == COMPLETED for o in outcomes):
        return CANCELLED
    return INCOMPLETE


def build_document(sessions: Sequence[SessionRecord], scenario: dict, *,
                   run_id: str | None = None, created: str | None = None,
                   tool_version: str | None = None, git_commit: str | None = None,
                   group: dict | None = None, label: str = "", notes: str = "",
                   extra_reasons: Sequence[str] = (), complete: bool = True,
                   incomplete_reason: str | None = None,
                   imported: bool = False, source: str | None = None) -> dict:
    """One run of one scenario: every session's trials, telemetry, validity and facts.

    `scenario` is a plain dict (name, title, launcher, host, cluster, target,
    target_pct, baseline, details); `group` ties the runs of one plan together
    (id, seed, order). `complete=False` marks a plan cut short (Ctrl-C, a crash recovered
    from its journal), `incomplete_reason` says how ("cut off after 3 of 10 trials").
    A run whose sessions were cut off (outcome incomplete or cancelled) is incomplete too.
    """
    created = created or utc_now()
    scen = {"name": scenario.get("name") or "unnamed", "title": scenario.get("title"),
            "launcher": scenario.get("launcher"), "host": scenario.get("host"),
            "cluster": scenario.get("cluster"), "target": scenario.get("target", "none"),
            "target_pct": scenario.get("target_pct"), "baseline": scenario.get("baseline"),
            "details": redact_env_tables(dict(scenario.get("details") or {}))}
    run_id = run_id or new_run_id(scen["name"], created)
    telemetry = _TelemetryAccumulator()
    workloads: dict[tuple[str, str], dict] = {}
    session_docs: list[dict] = []
    first_hello: dict | None = None
    identities: list[dict] = []
    reasons: list[str] = []
    stream_warnings: list[str] = []
    raw_pos = 0
    for index, rec in enumerate(sessions):
        lines, texts, warnings = decode_lines(rec.lines)
        stream_warnings.extend(f"session {index}: {w}" for w in (*rec.warnings, *warnings))
        layer = [str(r) for r in rec.layer_reasons]
        hello = next((ln for ln in lines if ln["type"] == "hello"), None)
        done = next((ln for ln in lines if ln["type"] == "done"), None)
        if hello is not None:
            first_hello = first_hello or hello
            identities.append(device_identity(hello))
        errors = [{"code": ln["code"], "message": ln["message"], "fatal": ln["fatal"]}
                  for ln in lines if ln["type"] == "error"]
        # the stream is not trusted: impossible figures and a stream that contradicts itself
        # make trials INVALID (engine/plausibility.py, the same judge as the live parser)
        result_problems, stream_problems = judge_session(
            lines, None if rec.outcome == CANCELLED else rec.exit_code)
        stream_reasons = [f"stream contradicts itself: {p}" for p in stream_problems]
        n_results = 0
        for ln in lines:
            if ln["type"] == "telemetry":
                telemetry.add(ln, index)
            elif ln["type"] == "result":
                problems = [p for p in result_problems[n_results] if p not in stream_problems]
                problems += stream_reasons
                n_results += 1
                key = (ln["workload"], ln["variant"])
                wl = workloads.get(key)
                if wl is None:
                    wl = workloads[key] = {"workload": ln["workload"], "variant": ln["variant"],
                                           "params": ln.get("params") or {}, "trials": []}
                trial = {"session": index, "trial": rec.trial}
                if rec.gpu is not None:
                    trial["gpu"] = gpu_tag(rec.gpu)
                for f in TRIAL_FIELDS:
                    if f in ln:
                        trial[f] = ln[f]
                trial_reasons = list(ln.get("validity_reasons") or [])
                trial_reasons += [p for p in problems if p not in trial_reasons]
                trial_reasons += [f"layer: {r}" for r in layer]
                trial["validity_reasons"] = trial_reasons
                trial["valid"] = ln.get("valid") is True and not problems and not layer
                wl["trials"].append(trial)
        session_docs.append({
            "index": index, "trial": rec.trial, "outcome": rec.outcome,
            "message": rec.message, "exit_code": rec.exit_code, "started": rec.started,
            "results": n_results, "errors": errors, "layer_reasons": layer,
            "done": done.get("status") if done else None,
            "device": device_identity(hello) if hello else None,
            "raw_lines": [raw_pos, raw_pos + len(texts)],
        })
        if stream_problems:
            session_docs[-1]["stream_problems"] = stream_problems
        if rec.layer_notes:
            session_docs[-1]["layer_notes"] = [str(n) for n in rec.layer_notes]
        if rec.details:
            session_docs[-1]["details"] = session_details(rec.details)
        if rec.gpu is not None:
            session_docs[-1]["gpu"] = gpu_tag(rec.gpu)
            session_docs[-1]["gpu_mode"] = rec.gpu_mode
        if hello is not None:
            identities[-1]["_gpu"] = (rec.gpu or {}).get("index")
        raw_pos += len(texts)
        reasons += [f"session {index}: {r}" for r in stream_reasons]
        for r in layer:
            if f"layer: {r}" not in reasons:
                reasons.append(f"layer: {r}")
    # -- run-level validity -----------------------------------------------------------------
    reasons.extend(str(r) for r in extra_reasons if str(r) not in reasons)
    by_gpu: dict[Any, list[dict]] = {}   # per-GPU runs: each GPU's sessions must agree
    for ident in identities:
        by_gpu.setdefault(ident.pop("_gpu", None), []).append(ident)
    for idents in by_gpu.values():
        distinct = {json.dumps({k: v for k, v in i.items() if k != "hostname"}, sort_keys=True)
                    for i in idents}
        if len(distinct) > 1:
            a, b = idents[0], next(i for i in idents if i != idents[0])
            diff = [k for k in a if a.get(k) != b.get(k) and k != "hostname"]
            key = diff[0] if diff else "device"
            reasons.append(f"sessions differ in {key}: {a.get(key)} vs {b.get(key)}")
            break
    all_trials = [t for wl in workloads.values() for t in wl["trials"]]
    invalid_trials = sum(1 for t in all_trials if not t["valid"])
    if not all_trials:
        reasons.append("no results were measured")
    elif invalid_trials == len(all_trials) and not reasons:
        reasons.append("every result is invalid")
    outcomes = [s["outcome"] for s in session_docs]
    failed = sum(1 for o in outcomes if o == FAILED)
    notes_validity = []
    if failed:
        notes_validity.append(f"{failed} of {len(outcomes)} sessions failed")
    if invalid_trials:
        causes = sorted({r for t in all_trials if not t["valid"] for r in t["validity_reasons"]})
        notes_validity.append(f"{invalid_trials} of {len(all_trials)} results invalid "
                              f"(excluded from statistics): {'; '.join(causes[:3])}")
    for note in (f"layer: {n}" for rec in sessions for n in rec.layer_notes):
        if note not in notes_validity:
            notes_validity.append(note)
    cut_off = sum(1 for o in outcomes if o in (INCOMPLETE, CANCELLED))
    why_incomplete = [incomplete_reason or "plan was interrupted"] if not complete else []
    if cut_off:
        why_incomplete.append(f"{cut_off} of {len(outcomes)} sessions cut off")
    if not complete:
        notes_validity.append(f"{why_incomplete[0]}: results are incomplete")
    if cut_off:
        notes_validity.append(f"{why_incomplete[-1]}: results are incomplete")
    status = INVALID if reasons else VALID
    counts = validity_counts(list(workloads.values()), status)
    if status_word(status, counts["headline"]) == FEW_RESULTS:
        notes_validity.append(f"{status_line(status, counts['headline'])}: its median is "
                              "one window's, not a figure to compare")
    gpus = sorted({json.dumps(gpu_tag(r.gpu), sort_keys=True) for r in sessions if r.gpu},
                  key=lambda t: json.loads(t)["index"])
    modes = sorted({r.gpu_mode for r in sessions if r.gpu and r.gpu_mode})
    hello_doc = None
    if first_hello is not None:
        hello_doc = {k: first_hello.get(k) for k in ("engine_version", "backend", "device",
                                                      "host", "plan")}
    return {
        "schema_version": SCHEMA_VERSION,
        "id": run_id,
        "created": created,
        "tool": {"name": "gpubench", "version": tool_version or ENGINE_VERSION,
                 "engine_version": first_hello.get("engine_version") if first_hello else None,
                 "git_commit": git_commit},
        "scenario": scen,
        "group": dict(group) if group else None,
        "backend": first_hello.get("backend") if first_hello else None,
        "hello": hello_doc,
        "gpus": [json.loads(g) for g in gpus] or None,
        "gpu_mode": modes[0] if len(modes) == 1 else (None if not modes else "mixed"),
        "partition": partition_facts(first_hello, scen.get("launcher"),
                                     [json.loads(g) for g in gpus]),
        "sessions": session_docs,
        "workloads": list(workloads.values()),
        "telemetry": telemetry.summary(),
        "validity": {"status": status, "reasons": reasons, "notes": notes_validity,
                     "invalid_trials": invalid_trials, "trials": len(all_trials), **counts},
        "stream_warnings": stream_warnings[:100],
        "complete": not why_incomplete,
        "incomplete_reason": "; ".join(why_incomplete) or None,
        "outcome": _overall_outcome(outcomes, complete),
        "label": label or "",
        "notes": notes or "",
        "imported": bool(imported),
        "source": source,
        "raw": None,
    }


MAX_DETAIL_ITEMS = 50


def session_details(details: dict) -> dict:
    """A session's launcher details as plain JSON data: anything else becomes its text,
    lists (a pod's events) keep their last MAX_DETAIL_ITEMS items."""
    def clean(x: Any) -> Any:
        if x is None or isinstance(x, (bool, int, str)):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in list(x)[-MAX_DETAIL_ITEMS:]]
        return str(x)
    return clean(dict(details))


def gpu_tag(gpu: dict) -> dict:
    """The GPU facts a per-GPU trial carries."""
    return {"index": gpu.get("index"), "uuid": gpu.get("uuid"), "name": gpu.get("name"),
            "mig_instance": bool(gpu.get("mig_instance"))}


def partition_facts(hello: dict | None, launcher: str | None, gpus: Sequence[dict] = ()) -> dict:
    """How the GPU was partitioned for this run, from the engine's hello: a MIG instance or a
    full GPU, how many GPUs the engine could see (and NVML, which may see more), and whether a
    k8s pod got exactly one GPU. Comparisons refuse to mix MIG instances with full GPUs."""
    if not hello:
        return {"kind": None, "mig_instance": None, "mig_mode": None, "visible_gpus": None,
                "nvml_gpus": None, "one_gpu_per_pod": None}
    device = hello.get("device") or {}
    host = hello.get("host") or {}
    visible = host.get("gpus")
    n_visible = len(visible) if isinstance(visible, list) else device.get("visible_devices")
    mig = bool(device.get("mig_instance")) or any(bool(g.get("mig_instance")) for g in gpus)
    if is_cpu(hello.get("backend")):
        kind = "cpu"
    else:
        kind = "mig-instance" if mig else "full-gpu"
    return {"kind": kind, "mig_instance": mig, "mig_mode": device.get("mig_mode"),
            "visible_gpus": n_visible, "nvml_gpus": host.get("nvml_gpu_count"),
            "one_gpu_per_pod": (launcher == "k8s" and n_visible == 1) if n_visible is not None
            else None}


def archive_lines(sessions: Sequence[SessionRecord]) -> list[str]:
    """The raw stream to keep beside the document: every session's valid lines, in order
    (each session starts with its own `hello`, so a replay sees the boundaries)."""
    out: list[str] = []
    for rec in sessions:
        out.extend(decode_lines(rec.lines)[1])
    return out


def summary_of(doc: dict) -> dict:
    """The small record the store's index keeps per run (what `list` shows and filters on)."""
    hello = doc.get("hello") or {}
    device = hello.get("device") or {}
    scen = doc.get("scenario") or {}
    workloads = doc.get("workloads") or []
    headline = None
    head = headline_workload(workloads)
    if head is not None:
        trials = valid_trials(head)
        headline = {"workload": head["workload"], "variant": head.get("variant"),
                    "ops_per_s": finite_median(t.get("ops_per_s") for t in trials),
                    "tokens_per_s": finite_median(t.get("tokens_per_s") for t in trials)}
    return {
        "id": doc.get("id"), "created": doc.get("created"),
        "scenario": scen.get("name"), "title": scen.get("title"),
        "launcher": scen.get("launcher"),
        "host": doc_host(doc) or None,
        "label": doc.get("label") or "", "backend": doc.get("backend"),
        "device": device.get("name"), "driver": device.get("driver"),
        "validity": (doc.get("validity") or {}).get("status"),
        "outcome": doc.get("outcome"), "complete": doc.get("complete"),
        "incomplete_reason": doc.get("incomplete_reason"),
        "imported": bool(doc.get("imported")),
        "group": (doc.get("group") or {}).get("id"),
        # trials are engine sessions' trials (as `run --trials` counts), results result lines
        "trials": trial_count(doc), "results": result_count(doc), "headline": headline,
        "counted": doc_counts(doc)["headline"],
    }

