"""The self-test's delay mechanisms: what each session's environment asks the delay for, and
what the delay really cost as its reports tell (the engine's wait on the CPU, the interposer
on the GPU); the C side of the interposer is tests/selftest/test_interposer.py."""
from __future__ import annotations

import pytest

from gpubench.selftest.mechanism import Mechanism
from gpubench.selftest.options import Options


def test_every_cpu_session_runs_the_wait_and_reports_it():
    mech = Mechanism("numpy-cpu", Options())
    base, level = mech.arm("launch", "baseline", None, 0), mech.arm("launch", "L50", 50.0, 613)
    assert base.env == {"GPUBENCH_CPU_DELAY_NS": "0"} and level.env == {"GPUBENCH_CPU_DELAY_NS": "613"}
    assert base.report_env == level.report_env == "GPUBENCH_CPU_DELAY_REPORT"
    reports = [{"calls": 10, "timed_calls": 8, "spent_ns_total": 8 * 650},
               {"calls": 5, "timed_calls": 4, "spent_ns_total": 4 * 656}]
    assert mech.spent_per_call_ns("launch", reports, 613) == pytest.approx(652.0)


def test_a_gpu_base_wait_goes_to_slot_sessions_and_the_truth_is_on_beyond_off(monkeypatch):
    """`--base-wait`: the interposer's wait before each delay, on and off alike; what the delay
    cost is what on-slot calls spent beyond off-slot ones (interposer reports of two
    sessions, built here: the probe of the C side is tests/selftest/test_interposer.py)."""
    monkeypatch.setattr("gpubench.interposer.library_path", lambda: "/x/libinterpose.so")
    mech = Mechanism("cupy", Options(base_wait_ns=5000))
    assert mech.env_for("roundtrip", 2000, slot_ns=250_000_000, seed=1)[
        "GPUBENCH_INTERPOSE_BASE_WAIT_NS"] == "5000"
    assert "GPUBENCH_INTERPOSE_BASE_WAIT_NS" not in mech.env_for("roundtrip", 0)  # calibration
    def report(on_calls, on_ns, off_calls, off_ns):
        return {"categories": {"sync": {"calls": on_calls + off_calls, "delayed_calls": on_calls,
                                        "delay_ns_total": on_ns, "off_waited_calls": off_calls,
                                        "off_wait_ns_total": off_ns}}}
    reports = [report(100, 100 * 7100, 100, 100 * 5050), report(50, 50 * 7130, 50, 50 * 5060)]
    on = (100 * 7100 + 50 * 7130) / 150
    off = (100 * 5050 + 50 * 5060) / 150
    assert mech.spent_per_call_ns("roundtrip", reports, 2000) == pytest.approx(on - off)
    # without a base wait the reports have no off-slot waits: the on-calls' cost alone
    assert mech.spent_per_call_ns("roundtrip", [report(10, 10 * 2080, 0, 0)], 2000) == 2080
