"""Per decode batch, each engine process's median step latency in the newest saved run under
DATA_DIR, and the spread between processes (max / min): a victim whose own speed moves between
processes cannot show interference. Used by matrix64.sh on the GPU machine."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(data_dir: str) -> None:
    docs = sorted(Path(data_dir).rglob("*.json"), key=lambda p: p.stat().st_mtime)
    doc = next(d for d in (json.loads(p.read_text()) for p in reversed(docs)
                           if p.name != "index.json") if isinstance(d, dict) and "workloads" in d)
    print(f"run {doc.get('id')}: decode step latency p50 (us) per engine process")
    for wl in doc["workloads"]:
        if wl["workload"] != "decode":
            continue
        by_session: dict[int, list[float]] = {}
        for t in wl["trials"]:
            p50 = (t.get("latency_us") or {}).get("p50")
            if p50:
                by_session.setdefault(t["session"], []).append(p50)
        meds = [statistics.median(v) for _, v in sorted(by_session.items())]
        spread = max(meds) / min(meds) if meds else float("nan")
        print(f"  {wl['variant']}: " + ", ".join(f"{m:,.0f}" for m in meds) +
              f"  (max/min {spread:.2f})")


if __name__ == "__main__":
    main(sys.argv[1])
