"""The words every layer shares are the engine's: no layer spells them differently."""
from __future__ import annotations

from engine import vocabulary
from engine.plan import build_parser
from engine.protocol import BACKENDS
from results import schema
from scenarios import bench_defaults, events


def test_session_outcomes_are_one_set_of_words():
    assert vocabulary.OUTCOMES == ("completed", "failed", "incomplete", "cancelled")
    assert (events.COMPLETED, events.FAILED, events.INCOMPLETE, events.CANCELLED) == \
        vocabulary.OUTCOMES
    assert schema.OUTCOMES == vocabulary.OUTCOMES


def test_backend_and_workload_words_are_the_engines():
    backend = next(a for a in build_parser()._actions if a.dest == "backend")
    assert tuple(backend.choices) == vocabulary.BACKEND_CHOICES == ("auto", *BACKENDS)
    assert bench_defaults.WORKLOADS is vocabulary.WORKLOADS   # what a config may name
