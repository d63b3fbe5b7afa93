"""results.rates, the one place that decides a result's rate and unit: tokens/s for a decode or
prefill step, ops/s for every other workload, and never ops/s for a step that lacks tokens."""
from __future__ import annotations

import math

from results.document import SessionRecord, build_document, summary_of
from results.rates import rate_of, variant_rate
from tests.support import synth


def test_a_step_reads_in_tokens_everything_else_in_ops():
    assert (rate_of("decode", 900.0, 7200.0).text(), rate_of("prefill", 10.0, 640.0).unit) == \
        ("7,200 tokens/s", "tokens/s")
    assert rate_of("roundtrip", 6977.0, 5.0).text() == "6,977 ops/s"
    # a step without tokens (or with a figure that cannot be) says steps, never ops
    assert rate_of("decode", 900.0, None).text() == "900.0 steps/s"
    assert rate_of("decode", 900.0, math.nan).unit == "steps/s"
    assert rate_of("launch", None).text() == "—"


def test_a_variant_and_a_runs_summary_carry_the_tokens_of_their_valid_results():
    recs = [SessionRecord(synth.decode_session_lines(0, batches=(8,), repeats=3))]
    doc = build_document(recs, {"name": "bare-metal"})
    (wl,) = doc["workloads"]
    wl["trials"][0]["valid"] = False
    wl["trials"][0]["tokens_per_s"] = 1e12          # an invalid result's figure is left out
    rate = variant_rate(wl)
    tokens = sorted(t["tokens_per_s"] for t in wl["trials"][1:])
    assert rate.unit == "tokens/s" and rate.value == sum(tokens) / 2
    head = summary_of(doc)["headline"]
    assert head["tokens_per_s"] == rate.value and head["workload"] == "decode"
