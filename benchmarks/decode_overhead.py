#!/usr/bin/env python3
"""Does the engine's timing change a decode step? Engine step time ÷ a bare loop of the same
step, one process, one device (target: within 2 %, ratio <= 1.02).

For each decode variant (batch 1, 8, 64; eager, and graph where the captured graph is shown
to do its work — engine/workloads/step_graph.py — else the reason it is unsupported):
  engine: engine.measure.Runner.measure on the workload's own prepared step (per-step clock
          read, CUDA events around each step, telemetry thread running, lines written to
          /dev/null), as `python -m engine --workloads decode` runs it; its step time is the
          window over the steps;
  bare:   the same step object (same weights, caches, stream) called back to back with its
          synchronise in a plain loop, no clock per step, no events.
Trials alternate (the order rotates every round) so drift cancels; the ratio is the median
of the per-round ratios with a bootstrap 95 % CI; PASS when the whole CI is at most 1.02,
FAIL when it is wholly above, INCONCLUSIVE otherwise.

  python benchmarks/decode_overhead.py                # GPU (CuPy): 8b shape, ~2 min
  python benchmarks/decode_overhead.py --quick        # smoke test; runs on numpy-cpu too
  python benchmarks/decode_overhead.py --reanalyse run.json   # the table again from --json

On a shared CPU set OPENBLAS_NUM_THREADS=1: BLAS threads spinning against other processes
make a NumPy step's time a measure of the neighbours.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.engine_overhead import (Harness, bare_rate, describe, open_backend,  # noqa: E402
                                        rotate, verdict_at_most)
from engine.inline import make_bare  # noqa: E402
from engine.measure import NotApplicable, Runner  # noqa: E402
from engine.plan import build_variants, parse_args  # noqa: E402
from engine.workloads import decode  # noqa: E402
from results.inference import median_ci  # noqa: E402
from results.stats import median  # noqa: E402

TARGET = 1.02


def bare_loop(backend, prep, mode: str):
    """The prepared step's own objects in a loop with nothing else: bare(count)."""
    if mode == "graph":
        _, graph, stream = prep.keep
        return make_bare([(graph.launch, (stream,)), (stream.synchronize, ())])
    step = prep.keep[0]
    return make_bare([(step, ()), *backend.sync_calls()])


def measure_variant(h: Harness, backend, variant, plan, rounds: int, trial_s: float) -> dict:
    """Per-round step times (s) of the engine and of the bare loop, or why it cannot run."""
    try:
        prep = decode.prepare(backend, variant, plan)
    except NotApplicable as exc:
        return {"unsupported": str(exc)}
    bare = bare_loop(backend, prep, variant.params["mode"])
    Runner(h.plan, h.em, h.stop).warmup(prep, min(trial_s, 0.5))
    bare_rate(bare, min(trial_s, 0.5), batch=1)
    engine, plain = [], []
    for r in range(rounds):
        for side in rotate(["engine", "bare"], r):
            if side == "engine":
                res = h.engine_trial(variant, prep, telemetry=True, duration=trial_s)
                engine.append(res["duration_s"] / max(res["ops"], 1))
            else:
                plain.append(1.0 / bare_rate(bare, trial_s, batch=1))
    out = {"engine": engine, "bare": plain, "flops_per_step": variant.params["flops_per_step"]}
    check = prep.params.get("graph_check")
    if check:
        out["graph_check"] = check
    del prep, bare
    backend.release()
    return out


def analyse(out: dict) -> list[dict]:
    """The table's rows from a run's per-round figures (what --json writes)."""
    rows = []
    for name, fig in out["variants"].items():
        if "unsupported" in fig:
            rows.append({"what": name, "verdict": "UNSUPPORTED", "detail": fig["unsupported"]})
            continue
        ratios = [e / b for e, b in zip(fig["engine"], fig["bare"])]
        lo, hi = median_ci(ratios, seed=1)
        eng, bare = median(fig["engine"]), median(fig["bare"])
        rows.append({"what": name, "value": median(ratios), "ci": (lo, hi),
                     "verdict": verdict_at_most(lo, hi, TARGET), "ratios": ratios,
                     "detail": f"engine {eng * 1e3:.3f} ms vs bare {bare * 1e3:.3f} ms per step "
                               f"(medians); {fig['flops_per_step'] / bare / 1e12:.3g} TFLOP/s "
                               f"bare; per-round ratios {min(ratios):.3f}–{max(ratios):.3f}"})
    return rows


def finish(out: dict, json_path: str | None) -> int:
    rows = out["rows"] = analyse(out)
    print("| decode variant | engine ÷ bare step time | 95 % CI | target | verdict | detail |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        if "ci" in row:
            print(f"| {row['what']} | {row['value']:.4f} | {row['ci'][0]:.4f}–{row['ci'][1]:.4f}"
                  f" | <= {TARGET} | {row['verdict']} | {row['detail']} |")
        else:
            print(f"| {row['what']} | | | <= {TARGET} | {row['verdict']} | {row['detail']} |")
    print(f"\n{out['label']}: {out['device']}. Each ratio is engine ÷ bare step time per "
          f"interleaved round of {out['trial_s']} s trials.")
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="auto", choices=("auto", "cupy", "numpy-cpu"))
    ap.add_argument("--quick", action="store_true", help="short smoke run (CI, CPU)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 20)")
    ap.add_argument("--trial-s", type=float, default=None, help="seconds per trial (default 1)")
    ap.add_argument("--batches", default=None, help="decode batches (default 1,8,64)")
    ap.add_argument("--modes", default="eager,graph", help="eager and/or graph (default both)")
    ap.add_argument("--model-shape", default=None, help="8b, 1b or small (engine default)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--reanalyse", metavar="JSON", default=None,
                    help="measure nothing: print the table again from an earlier --json file")
    args = ap.parse_args(argv)
    if args.reanalyse:
        try:
            return finish(json.loads(Path(args.reanalyse).read_text()), args.json)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"decode_overhead: --reanalyse {args.reanalyse}: {exc}", file=sys.stderr)
            return 2
    rounds = args.rounds or (3 if args.quick else 20)
    trial_s = args.trial_s or (0.2 if args.quick else 1.0)
    backend = open_backend(args.backend, "decode_overhead")
    if backend is None:
        return 2
    engine_argv = ["--workloads", "decode", "--decode-modes", args.modes, "--decode-batches",
                   args.batches or ("1,8" if args.quick else "1,8,64")]
    if args.model_shape:
        engine_argv += ["--model-shape", args.model_shape]
    plan = parse_args(engine_argv)
    sink = open(os.devnull, "w")
    h = Harness(backend, trial_s, sink)
    label, where = describe(backend, h)
    print(f"# decode_overhead — {label}\n\ndevice: {where}\npython {sys.version.split()[0]}, "
          f"numpy {np.__version__}; {rounds} rounds × {trial_s} s per side\n", flush=True)
    out: dict = {"label": label, "device": where, "trial_s": trial_s, "variants": {}}
    for variant in build_variants(plan, backend.name):
        out["variants"][variant.name] = measure_variant(h, backend, variant, plan, rounds,
                                                        trial_s)
    return finish(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
