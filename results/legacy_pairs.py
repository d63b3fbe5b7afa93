"""Which figures of an imported seed result compare with a measured run, and why the others
cannot.

The seed's `Throughput: N ops/sec` is the round trip the engine's `roundtrip` workload
measures (copy in, a kernel over the bytes, copy out, synchronise), so an imported run stores
it as workload `roundtrip`, variant `legacy`, with the copy size in its params when the
user gave it (`gpubench import --size`). Against a measured run it is paired with the
measured round trip of the same size:

    roundtrip/legacy {size_bytes: 65536}  <->  roundtrip/pinned-64KiB {size_bytes: 65536}

Everything else the seed printed is NOT COMPARABLE, with the reason: a round trip of unknown
or another size, a bandwidth that names neither copy size nor memory kind, or a measured run
of the CPU (the seed measured a GPU). Two imported runs compare as they are (legacy with
legacy); a workload the measured run never ran is left to the usual "measured by only one of
the runs" warning.
"""
from __future__ import annotations

from dataclasses import dataclass

from .legacy import LEGACY_VARIANT

CPU_BACKEND = "numpy-cpu"     # the engine's CPU stand-in (engine.vocabulary.BACKEND_CHOICES)


@dataclass(frozen=True)
class Unpaired:
    """An imported figure that cannot meet the measured run: its (workload, variant) key in
    the imported document, the side it is on, and why."""
    key: tuple[str, str]
    side: str            # "baseline" or "candidate": the imported side
    reason: str


def pair_legacy(base: dict, cand: dict) -> tuple[dict, dict, list[Unpaired]]:
    """(base, cand) with the imported side's pairable figures renamed to the measured
    variant they meet, and the figures that meet none. Unchanged when neither or both runs
    are imported."""
    if bool(base.get("imported")) == bool(cand.get("imported")):
        return base, cand, []
    imported_is_base = bool(base.get("imported"))
    imported, measured = (base, cand) if imported_is_base else (cand, base)
    side = "baseline" if imported_is_base else "candidate"
    measured_variants: dict[str, list[tuple[str, dict]]] = {}
    for wl in measured.get("workloads") or []:
        measured_variants.setdefault(wl["workload"], []).append(
            (wl.get("variant") or "", wl.get("params") or {}))
    cpu = (measured.get("backend") or (measured.get("hello") or {}).get("backend")) == CPU_BACKEND
    workloads, unpaired = [], []
    for wl in imported.get("workloads") or []:
        same = measured_variants.get(wl["workload"])
        if wl.get("variant") != LEGACY_VARIANT or not same:
            workloads.append(wl)
            continue
        variant, reason = _match(wl, same, cpu)
        if variant is not None:
            workloads.append({**wl, "variant": variant})
            continue
        workloads.append(wl)
        unpaired.append(Unpaired((wl["workload"], LEGACY_VARIANT), side,
                                 f"{side} (imported): {reason}"))
    view = {**imported, "workloads": workloads}
    return (view, measured, unpaired) if imported_is_base else (measured, view, unpaired)


def _match(wl: dict, measured: list[tuple[str, dict]], cpu: bool) -> tuple[str | None, str]:
    """The measured variant an imported workload meets, else None and the reason."""
    names = ", ".join(v for v, _ in measured)
    if cpu:
        return None, "the seed measured a GPU; the other run measured the CPU (numpy-cpu)"
    if wl["workload"] != "roundtrip":
        return None, (f"the seed's {wl['workload']} bandwidth names no copy size or memory "
                      f"kind (the other run measured {names})")
    params = wl.get("params") or {}
    size = params.get("size_bytes")
    if size is None:
        return None, (f"the seed's text gives no round-trip size (the other run measured "
                      f"{names}; `gpubench import --size` records it)")
    for variant, p in measured:
        if p.get("size_bytes") == size:
            return variant, ""
    return None, (f"the seed's round trip moved {params.get('size') or size} per copy; the "
                  f"other run measured {names}")
