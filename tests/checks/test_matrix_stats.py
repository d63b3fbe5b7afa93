"""The interference matrix's maths on fixed inputs: Jain's index, the ratio of medians with its
bootstrap CI, the windows that count beside the other side, a cell's figures, its text and
colour band, and NVML's split against the measured one."""
from __future__ import annotations

import pytest

from gpubench.checks.matrix import apart_why, beside, build_cell, normalised, nvml_cell
from gpubench.checks.matrix_nvml import ProcessUtilisation
from results.matrix_stats import alone_stability, jain_index, ratio_ci, split_agreement
from results.matrix_table import cell_text, inflation_band, layer_notes


def test_jain_index_of_fixed_throughputs():
    assert jain_index([1.0, 1.0]) == pytest.approx(1.0)
    assert jain_index([1.0, 0.0]) == pytest.approx(0.5)           # one side keeps it all: 1/n
    assert jain_index([0.9, 0.3]) == pytest.approx(1.2 ** 2 / (2 * (0.81 + 0.09)))
    assert jain_index([2.0, 1.0, 1.0]) == pytest.approx(16 / (3 * 6))
    assert jain_index([]) is None and jain_index([0.0, 0.0]) is None
    assert jain_index([1.0, None]) is None and jain_index([1.0, -1.0]) is None


def test_ratio_ci_is_the_ratio_of_medians_with_an_ordered_ci():
    alone = [100.0, 101.0, 99.0, 100.5, 100.2, 99.8]
    together = [150.0, 148.0, 155.0, 151.0, 149.0, 152.0]
    r = ratio_ci(alone, together, seed=3)
    assert r["ratio"] == pytest.approx(150.5 / 100.1)
    assert r["lo"] <= r["ratio"] <= r["hi"]
    assert 1.4 < r["lo"] and r["hi"] < 1.6
    assert (r["n_alone"], r["n_together"]) == (6, 6)
    assert ratio_ci(alone, together, seed=3) == r                  # seeded: reproducible
    same = ratio_ci(alone, alone, seed=1)
    assert same["ratio"] == 1.0 and same["lo"] <= 1.0 <= same["hi"]


def test_ratio_ci_without_figures_and_with_one_value_a_side():
    assert ratio_ci([], [1.0]) is None and ratio_ci([None, 0.0], [2.0]) is None
    one = ratio_ci([2.0], [3.0])
    assert one["ratio"] == one["lo"] == one["hi"] == 1.5


def test_a_victim_whose_speed_alone_moved_between_processes_says_its_cells_are_not_evidence():
    # the H100's decode victim alone: 5.4 ms in its first process, 3.3 ms after the pairs
    before = [5400.0, 5420.0, 5390.0, 5410.0, 5405.0]
    after = [3300.0, 3310.0, 3290.0, 3305.0, 3298.0]
    moved = alone_stability(before, after, seed=1)
    assert not moved["stable"] and moved["hi"] < 0.9 and moved["limit"] == 0.10
    held = alone_stability(before, [5350.0, 5440.0, 5380.0, 5425.0, 5400.0], seed=1)
    assert held["stable"]
    # a move inside the limit is not flagged even with a CI that excludes 1
    small = alone_stability(before, [x * 1.05 for x in before], seed=1)
    assert small["lo"] > 1.0 and small["stable"]
    assert alone_stability([], after) is None
    check = {"layers": [{"label": "MPS 50%", "status": "MEASURED", "cells": [],
                         "alone_stability": {"decode": moved}},
                        {"label": "none (time-slicing)", "status": "MEASURED", "cells": [],
                         "alone_stability": {"decode": held}}]}
    assert layer_notes(check) == [
        f"MPS 50%: decode alone moved p50 ×{moved['ratio']:.2f} [{moved['lo']:.2f}, "
        f"{moved['hi']:.2f}] between its runs before and after the pairs (over ±10%): its "
        "cells are not evidence of interference"]


def test_bands_and_cell_text():
    assert [inflation_band(x) for x in (1.0, 1.099, 1.1, 1.49, 1.5, 3.0, None)] == \
        ["green", "green", "yellow", "yellow", "red", "red", None]
    assert cell_text({"ratio": 1.66, "lo": 1.4, "hi": 1.9}) == "p99 ×1.66 [1.40, 1.90]"
    assert cell_text(None, "p50") == "p50 —"


def test_split_agreement():
    got = split_agreement([0.5, 0.5], [40.0, 40.0], 0.1)
    assert got["agree"] and got["max_difference"] == 0
    got = split_agreement([0.9, 0.1], [20.0, 80.0], 0.1)
    assert not got["agree"] and got["max_difference"] == pytest.approx(0.7)
    assert split_agreement([0.5, 0.5], [40.0, None], 0.1) is None


def _w(start, length, ops, p50=10.0, p99=20.0, variant="decode/x"):
    return {"variant": variant, "start": start, "end": start + length, "ops_per_s": ops,
            "p50_us": p50, "p99_us": p99, "valid": True}


def test_only_windows_beside_the_other_side_count():
    other = [_w(10.0, 1.0, 1), _w(11.0, 1.0, 1)]                  # span 10-12
    mine = [_w(8.0, 1.0, 1), _w(9.6, 1.0, 1), _w(10.5, 1.0, 1), _w(11.7, 1.0, 1)]
    assert [w["start"] for w in beside(mine, other)] == [9.6, 10.5]
    assert beside(mine, []) == []


def test_normalised_per_variant():
    alone = [_w(0, 1, 100.0, variant="gemm/fp32"), _w(1, 1, 1000.0, variant="gemm/fp16")]
    together = [_w(0, 1, 50.0, variant="gemm/fp32"), _w(1, 1, 250.0, variant="gemm/fp16"),
                _w(2, 1, 9.0, variant="gemm/other")]
    assert normalised(together, alone) == [0.5, 0.25]


def test_build_cell_from_fixed_windows():
    v_alone = [_w(i, 1.0, 1000.0, p50=10.0, p99=20.0 + i) for i in range(6)]
    a_alone = [_w(i, 1.0, 500.0, variant="gemm/fp16") for i in range(8)]
    v_tog = [_w(100 + i, 1.0, 500.0, p50=12.0, p99=40.0 + i) for i in range(6)]
    a_tog = [_w(99 + i, 1.0, 250.0, variant="gemm/fp16") for i in range(9)]
    cell = build_cell("decode", "gemm", v_alone, a_alone, v_tog, a_tog, seed=1,
                      nvml={"unavailable": "the CPU backend: no GPU"})
    assert cell["status"] == "MEASURED"
    assert cell["p99"]["ratio"] == pytest.approx(42.5 / 22.5)
    assert cell["p50"]["ratio"] == pytest.approx(1.2)
    assert cell["victim_share"]["ratio"] == pytest.approx(0.5)
    assert cell["aggressor_share"]["ratio"] == pytest.approx(0.5)
    assert cell["jain"] == pytest.approx(1.0)
    assert cell["windows"] == {"victim": 6, "victim_run": 6, "aggressor": 6, "aggressor_run": 9}
    assert cell["nvml"] == {"status": "NOT AVAILABLE", "why": "the CPU backend: no GPU"}
    apart = build_cell("decode", "gemm", v_alone, a_alone, v_tog, [_w(0, 1.0, 250.0)])
    assert apart["status"] == "FAILED" and "did not overlap" in apart["why"]


def test_a_pair_that_never_overlapped_says_when_each_side_measured():
    """As HAMi-core SM 50 % did on an H100: the launch storm measured 1.2-4.7 s, the decode
    victim only from 6.0 s; which side came late is worth reading, so the reason says it."""
    victim = [_w(106.0 + i / 2, 0.5, 110.0) for i in range(5)]
    aggressor = [_w(101.2 + i / 2, 0.5, 2e5, variant="launch/async") for i in range(7)]
    cell = build_cell("decode", "launch", victim, aggressor, victim, aggressor)
    assert cell["status"] == "FAILED"
    assert cell["why"] == ("the victim's and the aggressor's windows did not overlap: the "
                           "aggressor measured 0.0-3.5 s, the victim measured 4.8-7.3 s (from "
                           "the first window's start)")
    assert apart_why([], aggressor).endswith(": the victim measured no window")


def test_nvml_cell_compares_the_split():
    share = {"ratio": 0.5, "lo": 0.4, "hi": 0.6}
    agree = nvml_cell({"unavailable": None, "victim_sm": 45.0, "aggressor_sm": 50.0},
                      share, share, 0.15)
    assert agree["status"] == "AGREE" and agree["victim_sm"] == 45.0
    disagree = nvml_cell({"unavailable": None, "victim_sm": 5.0, "aggressor_sm": 90.0},
                         share, share, 0.15)
    assert disagree["status"] == "DISAGREE"
    none = nvml_cell({"unavailable": None, "victim_sm": None, "aggressor_sm": 90.0},
                     share, share, 0.15)
    assert none["status"] == "NOT AVAILABLE" and "MPS server" in none["why"]


class _Sample:
    def __init__(self, pid, ts, sm):
        self.pid, self.timeStamp, self.smUtil = pid, ts, sm


class NVMLError_NotFound(Exception):
    pass


class _FakeNvml:
    """pynvml's calls the sampler makes (the real one needs a GPU: tests/checks/test_gpu_matrix.py)."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.asked_since = []

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"gpu{index}"

    def nvmlDeviceGetProcessUtilization(self, handle, since):
        self.asked_since.append(since)
        if not self.batches:
            raise NVMLError_NotFound()
        return self.batches.pop(0)


def test_process_utilisation_keeps_each_pids_samples_and_asks_only_for_newer_ones():
    fake = _FakeNvml([[_Sample(11, 5, 40.0), _Sample(12, 6, 50.0)], [_Sample(11, 9, 60.0)]])
    with ProcessUtilisation(0, module=fake) as nv:
        nv._read()
        nv._read()
        nv._read()                                     # NotFound: nothing new, no error
    assert nv.mean_sm(11) == 50.0 and nv.mean_sm(12) == 50.0 and nv.mean_sm(13) is None
    assert fake.asked_since[:3] == [0, 6, 9] and nv.unavailable is None
    assert nv.pids() == [11, 12]


def test_process_utilisation_without_nvml_says_why():
    class Broken(_FakeNvml):
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    with ProcessUtilisation(0, module=Broken([])) as nv:
        pass
    assert nv.unavailable == "NVML: RuntimeError: NVML Shared Library Not Found"
    assert nv.mean_sm(1) is None
