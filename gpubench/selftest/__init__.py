"""`gpubench selftest`: prove the tool resolves a known, injected overhead.

Plan
  1. Calibrate: per workload (roundtrip, launch), engine sessions without delay give the
     baseline p50 per-op latency.
  2. Size the delays: delay = level % x baseline p50 (per delayed call on the timed path).
  3. Verify: blocks of sessions, each block holding every arm once (A/A twin, each injected
     level, per workload) in a seeded random order, so drift hits every arm alike.
  4. Judge each arm with results/stats.py (median, seeded bootstrap CI, PASS/FAIL/INCONCLUSIVE
     against each target) and by one rule against the injected truth: PASSED, FAILED or NOT
     RESOLVED (judging.py), the run's state and exit code from its arms'.

The modules, each one job:
  options.py          options, defaults per design and backend, arms
  mechanism.py        how a delay is injected (interposer on the GPU, the engine's wait on
                      the CPU) and what it really cost: the truth
  engine_session.py   one engine session of an arm, read into p50s, samples and the report
  samples.py          samples on CLOCK_MONOTONIC and the slot that holds each
  experiment.py       the run: sessions checked, blocks of arms, the summary
  design_slots.py     the default design: the delay toggles within each session
  design_sessions.py  one delay per session
  judging.py          an arm's measured overhead and CI against its truth, its verdicts and
                      state, and the run's state
  store.py            every arm saved as a run
  report.py           the summary as text
  command.py          the `gpubench selftest` command
"""
