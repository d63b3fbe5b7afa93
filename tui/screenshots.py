"""Write the README's SVG screenshots from replayed, synthetic data.

    .venv/bin/python -m tui.screenshots docs/

Saves docs/dashboard.svg (a fleet of replayed sessions, one throttled, one on a
downtrained PCIe link, one on the CPU backend), docs/compare.svg (a baseline,
a comparable candidate and one that is not comparable), docs/hosts.svg and
docs/history.svg. The figures are synthetic, not measurements.
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from scenarios.config import load_config
from results.document import SessionRecord, build_document
from results.store import Store
from scenarios.base import LaunchRequest
from scenarios.replay import ReplayLauncher, synthetic_stream

from .app import GpubenchApp

SIZE = (160, 48)

CONFIG = """
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip", "h2d"]
trials = 10
[hosts.gpu-node-1]
kind = "ssh"
address = "gpu-node-1"
[scenarios.bare-metal]
title = "1. Baseline (Bare Metal)"
launcher = "ssh"
host = "gpu-node-1"
[scenarios.bare-metal-proxy]
title = "3. With GPU Proxy (No Hypervisor)"
launcher = "ssh"
host = "gpu-node-1"
target = "proxy"
baseline = "bare-metal"
"""


def _save_runs(store: Store) -> None:
    for run_id, scenario, scale, created, driver in (
            ("20261120-100000-bare-metal-aaaaaa", "bare-metal", 1.0, "2026-11-20T10:00:00Z",
             "580.65.06"),
            ("20261120-110000-bare-metal-proxy-bbbbbb", "bare-metal-proxy", 0.96,
             "2026-11-20T11:00:00Z", "580.65.06"),
            ("20261121-090000-bare-metal-proxy-cccccc", "bare-metal-proxy", 0.99,
             "2026-11-21T09:00:00Z", "575.57.08")):
        lines = synthetic_stream(workloads=("roundtrip", "h2d"), repeats=12, duration_s=0.5,
                                 scale=scale, seed=int(scale * 100))
        lines = [ln.replace("580.65.06", driver) for ln in lines]
        doc = build_document([SessionRecord(lines, trial=0)],
                             {"name": scenario, "title": scenario, "launcher": "ssh",
                              "host": "gpu-node-1",
                              "target": "proxy" if "proxy" in scenario else "none",
                              "target_pct": 5.0 if "proxy" in scenario else None},
                             run_id=run_id, created=created)
        store.save(doc, lines)


async def _shoot(out: Path) -> list[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="gpubench-shots-"))
    (tmp / "config.toml").write_text(CONFIG)
    config = load_config(tmp / "config.toml")
    _save_runs(Store(config.data_dir))
    app = GpubenchApp(config, seed=1)
    written = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        written.append(Path(app.save_screenshot("hosts.svg", str(out))))
        await pilot.press("3")
        await pilot.pause(0.3)
        written.append(Path(app.save_screenshot("history.svg", str(out))))
        await pilot.press("down", "down", "b", "up", "c", "up", "c", "4")
        await pilot.pause(0.5)
        app.clear_notifications()
        await pilot.pause(0.2)
        written.append(Path(app.save_screenshot("compare.svg", str(out))))
        await pilot.press("2")
        app.board.plan_title = "Plan: 12 hosts × roundtrip, h2d (replayed demo data)"
        for i in range(12):
            kwargs = {}
            if i == 3:
                kwargs = {"throttle": ("hw_slowdown",)}
            elif i == 7:
                kwargs = {"pcie_gen": 3}
            elif i == 10:
                kwargs = {"backend": "numpy-cpu"}
            lines = synthetic_stream(workloads=("roundtrip", "h2d"), repeats=6, duration_s=1.0,
                                     seed=i, hostname=f"gpu-node-{i + 1}", **kwargs)
            app.run_worker(app.manager.run_session(
                f"h{i}", f"gpu-node-{i + 1}", "bare-metal",
                ReplayLauncher(lines, speed=1.0), LaunchRequest()))
        app.board.plan_total_runs = 12
        app.board.plan_started = time.monotonic()
        await asyncio.sleep(1.0)
        await pilot.press("down", "down", "down")          # the throttled host
        await asyncio.sleep(3.0)
        app.clear_notifications()
        await pilot.pause(0.2)
        written.append(Path(app.save_screenshot("dashboard.svg", str(out))))
        for s in list(app.manager.sessions.values()):
            await s.cancel()
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs")
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(_shoot(out)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
