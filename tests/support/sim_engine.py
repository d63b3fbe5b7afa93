"""The "python" of simulated hosts behind a real OpenSSH sshd (tests/support/sshd.py).

`sshd_hosts.emulator_python()` writes a wrapper script to configure as such a host's remote python:
the product's check script and supervisor run on a real interpreter, and `-m engine` runs
this file instead, which prints a replayed stream (fleet_stream.py) paced in real time, so
those sessions cost the machine a sleeping Python process instead of an engine spinning on a
CPU core. It runs as `python -S tests/support/sim_engine.py -m engine ARGS` (no site
packages to scan at each start), hence only the standard library and the repository root.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

if __name__ == "__main__":      # run by path on a bare interpreter: find tests.support and engine
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.fleet_stream import HostProfile, StreamBuilder, parse_plan, samples_per_window, steps  # noqa: E402


def emulate(argv: list[str], rate: float = 2.0, telemetry_every: int = 4) -> int:
    """`sim_engine.py -m engine ARGS`: print a replayed stream on stdout, like the engine.
    The rate, telemetry period and host name come from the wrapper's environment."""
    rate = float(os.environ.get("GPUBENCH_SIM_RATE", rate))
    telemetry_every = int(os.environ.get("GPUBENCH_SIM_TELEMETRY_EVERY", telemetry_every))
    if argv[:2] != ["-m", "engine"]:      # a probe or deployment step: the real interpreter runs it
        os.execv(sys.executable, [sys.executable, *argv])
    plan = parse_plan(" ".join(argv))
    b = StreamBuilder(HostProfile(os.environ.get("GPUBENCH_SIM_NAME") or socket.gethostname()), plan)
    stop = {"sig": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(sig=True))
    t0 = time.monotonic()

    def out(line: dict, stamp: bool = False) -> None:
        now = time.monotonic()
        line["t"] = round(now - t0, 4)
        if stamp:
            line["sent"] = now
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    try:
        out(b.hello())
        period = 1.0 / rate
        start = time.monotonic()
        for kind, w, r, n in steps(plan, samples_per_window(plan, rate), telemetry_every):
            if kind == "telemetry":
                out(b.telemetry())
            elif kind == "result":
                out(b.result(w, r))
            else:
                due = start + (n + 1) * period
                while not stop["sig"] and time.monotonic() < due:
                    time.sleep(max(0.0, min(0.05, due - time.monotonic())))
                if stop["sig"]:
                    out(b.result(w, r, interrupted=True))
                    out(b.done("interrupted", 130))
                    return 130
                out(b.sample(w), stamp=True)
        out(b.done())
    except BrokenPipeError:
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(emulate(sys.argv[1:]))
