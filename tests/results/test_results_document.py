"""results.document: a run document from raw protocol lines."""
from __future__ import annotations

import json

import numpy as np

from results.document import SessionRecord, archive_lines, build_document, summary_of
from results.schema import SCHEMA_VERSION, check_document
from tests.support import synth

SCENARIO = {"name": "bare-metal-proxy", "title": "3. With GPU Proxy", "launcher": "local",
            "host": "local", "target": "proxy", "target_pct": 5.0, "baseline": "bare-metal",
            "details": {"proxy": {"preload": "/usr/local/vgpu/libvgpu.so",
                                  "env": {"CUDA_DEVICE_SM_LIMIT": "50"}}}}


def records(n=3, **kw):
    rng = np.random.default_rng(0)
    return [SessionRecord(synth.session_lines(rng, **kw), trial=i, started="2026-11-25T10:00:00Z")
            for i in range(n)]


def test_document_holds_everything_the_design_lists():
    recs = records(3, workloads=("roundtrip", "h2d"), repeats=2, throttle=["hw_slowdown"])
    group = {"id": "g-1", "seed": 7, "order": [["bare-metal-proxy", 0]]}
    doc = build_document(recs, SCENARIO, tool_version="0.1.0", git_commit="abc1234",
                         group=group, label="nightly", notes="after driver update")
    check_document(doc)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["created"].endswith("Z")
    assert doc["id"].split("-")[2:5] == ["bare", "metal", "proxy"]
    assert doc["tool"] == {"name": "gpubench", "version": "0.1.0", "engine_version": "0.1.0",
                           "git_commit": "abc1234"}
    assert doc["scenario"]["details"]["proxy"]["env"] == {"CUDA_DEVICE_SM_LIMIT": "50"}
    assert doc["scenario"]["target_pct"] == 5.0 and doc["group"] == group
    assert doc["hello"]["device"]["name"] == synth.H100 and doc["backend"] == "cupy"
    assert doc["hello"]["plan"]["repeats"] == 3
    # every result line is a trial of its workload variant
    n_results = sum(1 for r in recs for ln in r.lines if '"type":"result"' in ln)
    assert sum(len(w["trials"]) for w in doc["workloads"]) == n_results == 3 * 2 * 2
    assert [(w["workload"], w["variant"]) for w in doc["workloads"]] == \
        [("roundtrip", "pinned-64KiB"), ("h2d", "pinned-256MiB")]
    # throttle names arrive as trial validity reasons in the fixture and as telemetry events
    tel = doc["telemetry"]
    assert tel["readings"]["power_w"] == {"min": 310.0, "mean": 310.0, "max": 310.0,
                                          "n": tel["count"]}
    assert tel["throttle_event_count"] == tel["count"] > 0
    assert tel["throttle_events"][0]["names"] == ["hw_slowdown"]
    assert [s["outcome"] for s in doc["sessions"]] == ["completed"] * 3
    assert doc["label"] == "nightly" and doc["notes"] == "after driver update"
    assert doc["imported"] is False and doc["complete"] is True
    json.dumps(doc, allow_nan=False)


def test_layer_reasons_make_the_run_and_its_trials_invalid():
    recs = records(2)
    recs[1] = SessionRecord(recs[1].lines, trial=1, layer_reasons=["proxy library not mapped"])
    doc = build_document(recs, SCENARIO)
    assert doc["validity"]["status"] == "INVALID"
    assert doc["validity"]["reasons"] == ["layer: proxy library not mapped"]
    bad = [t for w in doc["workloads"] for t in w["trials"] if t["session"] == 1]
    assert bad and all(not t["valid"] and "layer: proxy library not mapped" in
                       t["validity_reasons"] for t in bad)
    assert all(t["valid"] for w in doc["workloads"] for t in w["trials"] if t["session"] == 0)


def test_failed_and_cut_sessions_are_recorded_not_fatal():
    rng = np.random.default_rng(1)
    recs = [SessionRecord(synth.session_lines(rng), trial=0),
            SessionRecord([], outcome="failed", message="ssh: connection refused", trial=1),
            SessionRecord(synth.session_lines(rng, status="cut"), outcome="incomplete",
                          message="stream ended before 'done'", trial=2)]
    doc = build_document(recs, SCENARIO)
    assert [s["outcome"] for s in doc["sessions"]] == ["completed", "failed", "incomplete"]
    assert doc["sessions"][1]["message"] == "ssh: connection refused"
    assert doc["outcome"] == "incomplete" and doc["validity"]["status"] == "VALID"
    assert "1 of 3 sessions failed" in doc["validity"]["notes"]
    all_failed = build_document([recs[1]], SCENARIO)
    assert all_failed["outcome"] == "failed" and all_failed["validity"]["status"] == "INVALID"
    assert all_failed["validity"]["reasons"] == ["no results were measured"]


def test_interrupted_plan_is_marked_incomplete():
    doc = build_document(records(1), SCENARIO, complete=False)
    assert doc["complete"] is False and doc["outcome"] == "incomplete"
    assert "plan was interrupted: results are incomplete" in doc["validity"]["notes"]


def test_malformed_lines_are_skipped_with_a_warning_and_dicts_accepted():
    lines = synth.session_lines(np.random.default_rng(2), repeats=1)
    mixed = [lines[0], "{not json", '{"v": 9, "type": "hello"}', *[json.loads(x) for x in lines[1:]]]
    doc = build_document([SessionRecord(mixed)], SCENARIO)
    assert len(doc["stream_warnings"]) == 2 and "not JSON" in doc["stream_warnings"][0]
    assert sum(len(w["trials"]) for w in doc["workloads"]) == 2
    assert len(archive_lines([SessionRecord(mixed)])) == len(lines)


def test_sessions_on_different_drivers_make_the_run_invalid():
    rng = np.random.default_rng(3)
    recs = [SessionRecord(synth.session_lines(rng)),
            SessionRecord(synth.session_lines(rng, driver="575.57"), trial=1)]
    doc = build_document(recs, SCENARIO)
    assert doc["validity"]["reasons"] == ["sessions differ in driver: 580.159.04 vs 575.57"]


def test_summary_for_the_index():
    doc = build_document(records(2), SCENARIO, label="x")
    s = summary_of(doc)
    # the host as every view names it: the configured name, the machine's hostname beside it
    assert s["scenario"] == "bare-metal-proxy" and s["host"] == "local (gpu-node-1)"
    # trials are engine sessions' trials (as `run --trials` counts), results the result lines
    assert s["validity"] == "VALID" and s["trials"] == 2 and s["results"] == 12
    assert s["label"] == "x"
    vals = sorted(t["ops_per_s"] for t in doc["workloads"][0]["trials"])
    assert s["headline"]["ops_per_s"] == (vals[2] + vals[3]) / 2
