"""NVML clock-event (throttle) reasons: their names, which are harmless, which invalidate.

Stdlib only, with no import of the rest of the engine, so results/ and tui/ share this one
vocabulary without loading the engine: the engine names the reasons in its `telemetry` lines
and marks a window INVALID by them; the stored document's throttle events, the dashboard and
`gpubench fleet` tell a slowdown from a harmless reason by BENIGN_THROTTLE.
"""
from __future__ import annotations

# Clock-event (throttle) reason bits, as nvml.h defines them.
THROTTLE_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
KNOWN_MASK = sum(THROTTLE_BITS)

# Reasons that are no slowdown of a busy GPU: idle, clocks an administrator set on purpose
# (application clocks), sync boost and the display clock. "idle" and "none" are the words
# other tools (and hand-written streams) use for the same.
BENIGN_THROTTLE = frozenset({"gpu_idle", "idle", "sync_boost", "display_clock_setting", "none",
                             "applications_clocks_setting"})
BENIGN_MASK = sum(bit for bit, name in THROTTLE_BITS.items() if name in BENIGN_THROTTLE)

# The reasons that make a measurement INVALID: the GPU was slowed by hardware, heat or a
# power brake. Idle, application clocks and the power cap are not.
INVALIDATING_MASK = 0x8 | 0x20 | 0x40 | 0x80


def throttle_names(mask: int | None) -> list[str] | None:
    """The names of the known bits set in `mask` (None when NVML gave no mask)."""
    if mask is None:
        return None
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]
