"""The plan's trial order: rounds in a seeded order, generated as the plan goes, so the largest
plan config.toml allows costs no memory before its first trial and stores only what ran."""
from __future__ import annotations

import tracemalloc

from scenarios import limits
from gpubench.plan_events import TrialFinished
from gpubench.runner import PlanOptions, PlanRunner
from gpubench.trial_order import TrialSlot, interleave_order
from results.store import Store
from tests.cli.test_cli_runner import make_config, replay_factory


def test_every_round_runs_each_scenario_once_in_a_seeded_order():
    names = ["a", "b", "c", "d"]
    order = interleave_order(names, 50, seed=7)
    slots = list(order)
    assert len(order) == len(slots) == 200
    for r in range(50):
        round_ = slots[4 * r: 4 * r + 4]
        assert sorted(s.scenario for s in round_) == names and {s.trial for s in round_} == {r}
    assert list(interleave_order(names, 50, seed=7)) == slots
    assert list(interleave_order(names, 50, seed=8)) != slots
    assert len({tuple(s.scenario for s in slots[4 * r: 4 * r + 4]) for r in range(50)}) > 1
    assert [order[i] for i in range(200)] == slots and order[-1] == slots[-1]
    assert order[3:9] == slots[3:9] and order == slots


def test_a_slot_deep_in_the_largest_plan_is_found_without_the_list():
    order = interleave_order(["a", "b"], limits.TRIALS.high, seed=3)
    tracemalloc.start()
    try:
        last = order[-1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last.trial == limits.TRIALS.high - 1 and last.scenario in ("a", "b")
    assert peak < 100_000, peak


async def test_the_largest_plan_allocates_no_list_before_it_starts_and_stores_what_ran(tmp_path):
    cfg = make_config(tmp_path)
    trials = limits.TRIALS.high
    tracemalloc.start()
    try:
        runner = PlanRunner(cfg, [cfg.scenarios["a"], cfg.scenarios["b"]],
                            PlanOptions(trials=trials, seed=4), Store(cfg.data_dir),
                            launcher_factory=replay_factory())

        def progress(ev):
            if isinstance(ev, TrialFinished) and ev.index == 2:
                runner.cancel()
        result = await runner.run(progress)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 200,000 slots as a list (and its copies in the events and the documents) take tens of MB
    assert peak < 10_000_000, peak
    assert not result.complete and len(result.order) == 2 * trials
    group = result.documents[0]["group"]
    assert group["planned"] == 2 * trials and group["executed"] == 3 and group["seed"] == 4
    ran = [TrialSlot(*slot) for slot in group["order"]]
    assert ran == result.order[:3]
