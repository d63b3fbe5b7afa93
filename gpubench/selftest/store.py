"""Every arm saved in the results store as a run (scenario `selftest-<workload>-<arm>`, one
group), each carrying the self-test summary under "selftest"."""
from __future__ import annotations

import secrets
from pathlib import Path

from results.document import SessionRecord, archive_lines, build_document
from results.store import Store
from scenarios.config import load_config

from .engine_session import SessionData
from .options import SCENARIO_PREFIX, Arm


def save_arms(summary: dict, arms: list[Arm], by_arm: dict[str, list[SessionData]],
              order: list[tuple[str, int]], seed: int, data_dir: Path | None) -> list[str]:
    """Save each arm's sessions as one run; the runs' ids."""
    if data_dir is None:
        data_dir = load_config().data_dir
    store = Store(data_dir)
    group = {"id": f"{SCENARIO_PREFIX}{secrets.token_hex(4)}", "seed": seed,
             "order": [list(o) for o in order],
             "scenarios": [f"{SCENARIO_PREFIX}{a.workload}-{a.name}" for a in arms]}
    ids = []
    for arm in arms:
        recs = [SessionRecord(lines=s.lines, outcome=s.outcome, message=s.message,
                              trial=s.trial) for s in by_arm[arm.key]]
        name = f"{SCENARIO_PREFIX}{arm.workload}-{arm.name}"
        scenario = {"name": name, "title": f"self-test {arm.workload} {arm.name}",
                    "launcher": "local", "host": "local", "target": "none",
                    # slots: each arm's own off-slots are its baseline
                    "baseline": f"{SCENARIO_PREFIX}{arm.workload}-baseline"
                    if arm.name != "baseline" and f"{arm.workload}/baseline" in by_arm
                    else None,
                    "details": {"selftest_arm": arm.name, "level_pct": arm.level,
                                "delay_ns": arm.delay_ns, "env": arm.env,
                                "preload": arm.preload}}
        doc = build_document(recs, scenario, group=group, label="selftest",
                             notes="gpubench selftest: injected-overhead arm")
        doc["selftest"] = summary
        store.save(doc, raw_lines=archive_lines(recs))
        ids.append(doc["id"])
    return ids
