"""The slots design's slot and sample lengths: per backend by default (the CPU's shorter, its
per-op level jumps every 0.1-1 s), and refused in one line where a slot cannot hold a sample."""
from __future__ import annotations

import pytest

from gpubench.selftest.options import Options, SelftestError, settle
from gpubench.selftest.samples import classify_samples


def test_the_cpu_slots_are_shorter_than_the_gpu_ones():
    cpu, gpu = Options(), Options()
    settle(cpu, gpu=False)
    settle(gpu, gpu=True)
    assert (cpu.slot_s, cpu.sample_interval) == (0.1, 0.02)
    assert (gpu.slot_s, gpu.sample_interval) == (0.25, 0.05)


def test_a_slot_asked_for_is_kept():
    opts = Options(slot_s=0.5, sample_interval=0.1)
    settle(opts, gpu=False)
    assert (opts.slot_s, opts.sample_interval) == (0.5, 0.1)


@pytest.mark.parametrize("gpu", [False, True])
def test_every_default_slot_holds_whole_samples(gpu):
    """Samples back to back, in any phase against the slots: each slot keeps at least one."""
    opts = Options()
    settle(opts, gpu=gpu)
    every_ns = int(opts.sample_interval * 1e9)
    slot_ns = int(opts.slot_s * 1e9)
    for phase in range(0, every_ns, every_ns // 7):
        samples = [{"t": (phase + i * every_ns) / 1e9, "secs": opts.sample_interval}
                   for i in range(1, 200)]
        kept = {k for _, k in classify_samples(samples, 10 * slot_ns, slot_ns)}
        first, last = min(kept), max(kept)
        assert kept == set(range(first, last + 1))


def test_a_slot_too_short_for_a_sample_is_one_line():
    with pytest.raises(SelftestError) as err:
        settle(Options(slot_s=0.02, sample_interval=0.02), gpu=False)
    assert str(err.value) == ("a slot of 0.02 s cannot hold a whole 0.02 s sample (with its "
                              "margins 0.032 s): use a longer --slot")
    assert "\n" not in str(err.value)


def test_the_sessions_design_needs_no_slot():
    opts = Options(design="sessions", slot_s=0.001)
    settle(opts, gpu=False)   # slots are not used: nothing to refuse


@pytest.mark.parametrize("slot, every, said", [
    (float("nan"), 0.02, "--slot must be a finite number (got nan)"),
    (0.1, 0.0, "--sample-interval must be at least 0.001 (got 0.0)"),
    (600.0, 0.02, "--slot must be at most 60 (got 600.0)"),
])
def test_options_that_skipped_the_command_line_meet_its_ranges(slot, every, said):
    """Options built in code (the app's self-test) are held to the CLI's ranges too."""
    with pytest.raises(SelftestError) as err:
        settle(Options(slot_s=slot, sample_interval=every), gpu=False)
    assert str(err.value) == said
