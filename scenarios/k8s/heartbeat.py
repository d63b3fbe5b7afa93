"""Who owns a gpubench object on a Kubernetes cluster, and is its run still alive?

Every pod, Job and engine ConfigMap a `K8sLauncher` creates carries these annotations:

    gpubench/owner           host:pid of the gpubench process that made it (for people)
    gpubench/owner-process   <boot id>.<pid namespace>:<pid>:<start ticks>, where /proc exists
    gpubench/heartbeat       last renewal, RFC3339 UTC
    gpubench/heartbeat-ttl   seconds after that renewal at which the run counts as gone

`Heartbeat` renews the last two from a thread of its own (the kubernetes client
blocks: it must never run on the event loop) while the launcher tracks the object.
`judge()` is what `gpubench cleanup` asks of each object:
- its owner process ran on this very kernel and pid namespace: /proc decides, exactly
  (the pid and its start time, so a reused pid is not taken for the owner);
- otherwise the heartbeat decides: renewed within its TTL is alive, older is gone;
- no heartbeat or one that does not parse (an older gpubench, a hand-made object, a
  forged value): nobody can tell, so cleanup keeps it and says why; `--all` removes it.
"""
from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

OWNER = "gpubench/owner"
OWNER_PROCESS = "gpubench/owner-process"
HEARTBEAT = "gpubench/heartbeat"
HEARTBEAT_TTL = "gpubench/heartbeat-ttl"

HEARTBEAT_INTERVAL_S = 30.0     # renewal period; well under the TTL, so one lost PATCH is harmless
HEARTBEAT_TTL_S = 120           # no renewal for this long: the run is gone
MAX_TTL_S = 86_400              # a TTL above a day is not one gpubench writes
MAX_SKEW_S = 600                # a heartbeat further ahead than this is not a clock difference
RENEW_TIMEOUT_S = 10.0          # one PATCH


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d{1,9})?Z")


def parse_stamp(text: str) -> float | None:
    """An RFC3339 UTC time ('...Z', optional fraction) -> epoch seconds; None if it is not one."""
    m = _STAMP.fullmatch(text)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=timezone.utc).timestamp()
    except ValueError:   # month 13, Feb 30, ...
        return None


# -- this process, as /proc sees it ---------------------------------------------------------

def this_machine() -> str | None:
    """This kernel (boot id) and pid namespace: where a recorded pid means the same process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pid_ns = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
    except OSError:
        return None
    return f"{boot}.{pid_ns}" if boot and pid_ns else None


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()   # the name (field 2) may hold spaces and ')'
    return fields[19] if len(fields) > 19 else None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):   # OverflowError: a pid no system has
        return False
    except OSError:   # EPERM: it exists, and is not ours
        return True
    return True


def owner_annotations(ttl_s: int, now: float | None = None) -> dict[str, str]:
    """The annotations of a newly created object: this process as owner, a fresh heartbeat."""
    pid = os.getpid()
    out = {OWNER: f"{socket.gethostname()}:{pid}"}
    machine, start = this_machine(), process_start(pid)
    if machine and start:
        out[OWNER_PROCESS] = f"{machine}:{pid}:{start}"
    out[HEARTBEAT] = stamp(time.time() if now is None else now)
    out[HEARTBEAT_TTL] = str(int(ttl_s))
    return out


# -- renewal --------------------------------------------------------------------------------

class Heartbeat:
    """Renews the heartbeat of the objects a launcher keeps on the cluster.

    `track()` / `untrack()` are cheap and called on the event loop; the PATCH calls run
    only in this object's thread, which runs while something is tracked. `patch(kind,
    name, annotations)` is blocking: False when the object is gone (it is then no longer
    renewed), an exception when the renewal failed. A failed renewal never stops the run:
    `on_failure(message)` is called on the event loop once per streak of failures.
    """

    def __init__(self, patch: Callable[[str, str, dict[str, str]], bool],
                 on_failure: Callable[[str], None], *,
                 interval_s: float = HEARTBEAT_INTERVAL_S, ttl_s: int = HEARTBEAT_TTL_S):
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self._patch = patch
        self._on_failure = on_failure
        self._objects: dict[tuple[str, str], None] = {}   # insertion-ordered set
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False

    def annotations(self) -> dict[str, str]:
        return owner_annotations(self.ttl_s)

    def track(self, kind: str, name: str) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        with self._lock:
            self._objects[kind, name] = None
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(target=self._main, name="k8s-heartbeat",
                                                daemon=True)
                self._thread.start()

    def untrack(self, kind: str, name: str) -> None:
        with self._lock:
            self._objects.pop((kind, name), None)
            if not self._objects:
                self._wake.set()       # the thread ends now, not at its next renewal

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()
            self._wake.set()

    def tracked(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._objects)

    def _main(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            with self._lock:
                objects = list(self._objects)
                if not objects:
                    self._thread = None
                    return
                self._wake.clear()
            self._renew(objects)

    def _renew(self, objects: list[tuple[str, str]]) -> None:
        annotations = {HEARTBEAT: stamp(time.time()), HEARTBEAT_TTL: str(int(self.ttl_s))}
        failure = None
        for kind, name in objects:
            with self._lock:
                if (kind, name) not in self._objects:
                    continue
            try:
                if self._patch(kind, name, annotations) is False:
                    self.untrack(kind, name)
            except Exception as exc:  # noqa: BLE001 - any failure: the run goes on regardless
                failure = failure or (f"heartbeat of {kind}/{name} not renewed ({exc}); the run "
                                      f"goes on, but `gpubench cleanup` may take it for gone "
                                      f"after {int(self.ttl_s)} s without a renewal")
        if failure and not self._failing and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._on_failure, failure)
            except RuntimeError:   # loop closed: nobody to tell
                pass
        self._failing = failure is not None


# -- judgement ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    alive: bool | None     # None: cannot tell, so cleanup keeps the object by default
    why: str               # 'heartbeat 12 s ago', 'owner process 4242 on this host has exited', ...
    owner: str             # 'host:pid' as written, for grouping and messages


def shown(value: object, limit: int = 40) -> str:
    """An annotation value quoted for a one-line message, whatever it holds."""
    text = value if isinstance(value, str) else repr(value)
    return ascii(text[:limit] + ("..." if len(text) > limit else ""))


_DIGITS = re.compile(r"[0-9]{1,12}")


def _owner_process(value: object) -> tuple[str, int, str] | None:
    if not isinstance(value, str):
        return None
    machine, _, rest = value.partition(":")
    pid, _, start = rest.partition(":")
    if not machine or not _DIGITS.fullmatch(pid) or not _DIGITS.fullmatch(start):
        return None
    return machine, int(pid), start


def judge(metadata: dict, now: float, machine: str | None = None) -> Verdict:
    """Is the run that made this object alive? `machine`: this host's (default: read /proc)."""
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    annotations = annotations if isinstance(annotations, dict) else {}
    owner = annotations.get(OWNER)
    owner = owner[:80] if isinstance(owner, str) and owner.isprintable() else "an unknown owner"
    process = _owner_process(annotations.get(OWNER_PROCESS))
    machine = machine if machine is not None else this_machine()
    if process is not None and machine is not None and process[0] == machine:
        _, pid, start = process
        running = process_start(pid)
        if running == start:
            return Verdict(True, f"owner process {pid} is running on this host", owner)
        if running is not None or not _exists(pid):
            return Verdict(False, f"owner process {pid} on this host has exited", owner)
        # The pid exists but /proc hides it (another user's, hidepid): the heartbeat decides.
    beat, ttl = annotations.get(HEARTBEAT), annotations.get(HEARTBEAT_TTL)
    if beat is None:
        return Verdict(None, "no heartbeat annotation (made by an older gpubench or by hand)",
                       owner)
    at = parse_stamp(beat) if isinstance(beat, str) else None
    if at is None:
        return Verdict(None, f"heartbeat {shown(beat)} is not an RFC3339 UTC time", owner)
    if ttl is None:
        return Verdict(None, "heartbeat without its heartbeat-ttl annotation", owner)
    if not (isinstance(ttl, str) and _DIGITS.fullmatch(ttl) and 1 <= int(ttl) <= MAX_TTL_S):
        return Verdict(None, f"heartbeat-ttl {shown(ttl)} is not a whole number of seconds "
                             f"from 1 to {MAX_TTL_S}", owner)
    age = now - at
    if age < -MAX_SKEW_S:
        return Verdict(None, f"heartbeat {shown(beat)} is {-age:.0f} s in the future "
                             f"(clock skew or a forged value)", owner)
    if age <= int(ttl):
        return Verdict(True, f"heartbeat {max(0.0, age):.0f} s ago", owner)
    return Verdict(False, f"heartbeat expired {age - int(ttl):.0f} s ago", owner)
