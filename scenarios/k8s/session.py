"""One engine run in a pod: once the pod runs (pods.PodSession), its log is followed and every
protocol line goes to the stream parser; when the log ends, the pod's final state says how the
run ended. Pending too long (Unschedulable), image pull failures, OOMKilled, a failed
container and eviction end the session with a one-line message that quotes the pod's events.
Whatever the outcome, the pod is deleted before the session reports its end.
"""
from __future__ import annotations

import asyncio
import codecs
from typing import TYPE_CHECKING

from ..base import LaunchError, LaunchRequest
from ..events import Hello, Sample
from ..stream import LineSplitter
from .api import K8sError, describe_error, is_timeout
from .pods import INTERRUPT_GRACE_S, PodSession, condition, phase, terminated
from .streams import HttpStream, stamp_key

if TYPE_CHECKING:
    from .launcher import K8sLauncher

LOG_DRAIN_S = 5.0              # pod ended or gone: time for its log stream to finish
FINAL_STATE_WAIT_S = 10.0      # log ended: time for the pod's status to show how it ended
MAX_LOG_RESUMES = 5            # log stream dropped while the pod runs: reopen this many times


class K8sSession(PodSession):
    def __init__(self, launcher: "K8sLauncher", request: LaunchRequest, pod: str, run_id: str,
                 node_name: str | None = None, job: str | None = None):
        super().__init__(launcher, request, pod, run_id, node_name, job)
        self._log: HttpStream | None = None
        self._log_done: asyncio.Future | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._splitter = LineSplitter()
        self._exit_code: int | None = None
        self._stalled = False
        self._last_key: str | None = None     # timestamp of the last log line, normalised
        self._last_count = 0                  # lines received with exactly that timestamp
        self._last_line_at: float | None = None
        self._resume_key: str | None = None   # after a resume: skip up to here
        self._resume_skip = 0

    async def _run(self) -> int | None:
        try:
            if not await self._wait_started():
                return self._exit_code
            await self._follow_logs()
            return await self._finish()
        finally:
            await self._cleanup()

    # -- the pod log --------------------------------------------------------------------------
    def _on_log_chunk(self, chunk: bytes) -> None:  # on the loop
        for line in self._splitter.push(self._decoder.decode(chunk)):
            self._log_line(line)

    def _log_line(self, raw: str) -> None:
        raw = raw.rstrip("\r")
        # Lines come with the kubelet's timestamp ("2026-11-25T20:50:35.123456789Z text"), so
        # that a resumed stream can skip what was already received.
        stamp, _, text = raw.partition(" ")
        key = stamp_key(stamp)
        if key is None:
            text = raw
        else:
            if self._resume_key is not None:
                if key < self._resume_key:
                    return
                if key == self._resume_key and self._resume_skip > 0:
                    self._resume_skip -= 1
                    return
                self._resume_key = None
            if key == self._last_key:
                self._last_count += 1
            else:
                self._last_key, self._last_count = key, 1
            self._last_line_at = asyncio.get_running_loop().time()
        # The pod log interleaves the engine's stdout (protocol lines, always JSON objects)
        # and its stderr (for humans): route the latter to stderr_tail, not the parser.
        if text.lstrip().startswith("{"):
            self._line(text)
        else:
            self._stderr(text)

    def _on_log_end(self, error: BaseException | None) -> None:  # on the loop
        for line in self._splitter.push(self._decoder.decode(b"", final=True)) + self._splitter.flush():
            self._log_line(line)
        if self._log_done is not None and not self._log_done.done():
            self._log_done.set_result(error)

    async def _follow_logs(self) -> None:
        """Follow the pod's log to its end; resume (without repeating lines) when the stream
        drops while the pod still runs, e.g. an API server restart."""
        loop = asyncio.get_running_loop()
        since: int | None = None
        resumes = 0
        while True:
            await self._follow_once(since)
            if self._stop.is_set() or self._stalled or self.pod_gone:
                return
            if self.parser.done is not None or phase(self.pod) in ("Succeeded", "Failed"):
                return
            await self._read_pod()
            if self.pod_gone or phase(self.pod) != "Running" or resumes >= MAX_LOG_RESUMES:
                return
            resumes += 1
            if self._last_line_at is not None:
                since = int(loop.time() - self._last_line_at) + 10
                self._resume_key, self._resume_skip = self._last_key, self._last_count
            why = self._details.pop("log_error", None) or "server closed it"
            self._status(f"log stream of pod {self.pod_name} dropped ({why}); resuming "
                         f"({resumes}/{MAX_LOG_RESUMES})")
            self._splitter = LineSplitter()
            self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
            await asyncio.sleep(min(2.0, 0.1 * 2 ** resumes))

    async def _follow_once(self, since: int | None) -> BaseException | None:
        loop = asyncio.get_running_loop()
        api = self.launcher.api
        self._log_done = loop.create_future()
        stall = self.launcher.log_stall_s
        self._log = HttpStream(loop, lambda: api.open_log(self.namespace, self.pod_name, stall,
                                                          since),
                               self._on_log_chunk, self._on_log_end,
                               name=f"k8s-log-{self.pod_name}").start()
        drain_until: float | None = None
        while not self._log_done.done():
            ended = self._stop.is_set() or self.pod_gone or phase(self.pod) in ("Succeeded", "Failed")
            if ended and drain_until is None:
                grace = INTERRUPT_GRACE_S + 2 if self._stop.is_set() else LOG_DRAIN_S
                drain_until = loop.time() + grace
            if drain_until is not None and loop.time() >= drain_until:
                self._log.close()
                break
            waits = {self._log_done, asyncio.ensure_future(self._updates.get())}
            if not self._stop.is_set():   # once set it would wake us at once, every time
                waits.add(asyncio.ensure_future(self._stop.wait()))
            wait = 1.0 if drain_until is None else max(0.05, drain_until - loop.time())
            try:
                await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    if w is not self._log_done:
                        w.cancel()
        error = self._log_done.result() if self._log_done.done() else None
        if error is not None and is_timeout(error):
            self._details["log_error"] = f"no engine output for {stall:g} s"
            self._stalled = True
        elif error is not None:
            self._details["log_error"] = (str(error) if isinstance(error, K8sError)
                                          else describe_error(error, api.server))
        return error

    # -- how it ended -------------------------------------------------------------------------
    async def _finish(self) -> int | None:
        loop = asyncio.get_running_loop()
        # A clean log EOF means the container exited: its status follows shortly. A stalled
        # or cancelled one will not change by waiting.
        until = loop.time() + (0.0 if self._stalled else 1.0 if self._cancelled
                               else FINAL_STATE_WAIT_S)
        while not self.pod_gone and phase(self.pod) not in ("Succeeded", "Failed"):
            if not await self._next_update(until):
                await self._read_pod()
                break
        pod = self.pod or {}
        status = pod.get("status") or {}
        term = terminated(pod) or {}
        if term.get("exitCode") is not None:
            self._exit_code = int(term["exitCode"])
        self._details.update(phase="Deleted" if self.pod_gone else phase(pod),
                             node=(pod.get("spec") or {}).get("nodeName") or self._details.get("node"))
        if term.get("reason"):
            self._details["container_reason"] = term["reason"]
        if status.get("reason"):
            self._details["reason"] = status["reason"]
        if self._cancelled:
            return self._exit_code
        done = self.parser.done
        oom = term.get("reason") == "OOMKilled"
        if done is not None and not oom and done.status != "interrupted":
            return self._exit_code if self._exit_code is not None else done.exit_code
        # An interrupted engine (SIGTERM) or a stream cut short: say what happened to the pod.
        name = self.pod_name
        node = self._details.get("node")
        on_node = f" on node {node}" if node else ""
        code = self._exit_code
        if status.get("reason") == "Evicted":
            raise LaunchError(f"pod {name} evicted{on_node} mid-run: "
                              f"{' '.join(str(status.get('message') or '').split())}; "
                              f"events: {await self._events_text()}")
        if self.pod_gone and not self._deleted_by_us:
            disruption = condition(pod, "DisruptionTarget") or {}
            why = f" ({disruption.get('reason')}: {disruption.get('message')})" if disruption else ""
            raise LaunchError(f"pod {name} was deleted while the engine ran{on_node}{why} "
                              f"(evicted or preempted?); events: {await self._events_text()}")
        if oom:
            raise LaunchError(f"pod {name}: container OOMKilled{on_node} (exit code {code}): it "
                              f"ran out of memory; raise its memory limit or use smaller sizes; "
                              f"events: {await self._events_text()}")
        if done is not None:   # interrupted, and nothing above explains it: the engine's word
            return self._exit_code if self._exit_code is not None else done.exit_code
        if phase(pod) == "Failed" and not term:
            why = " ".join(f"{status.get('reason') or 'Failed'}: {status.get('message') or ''}".split())
            raise LaunchError(f"pod {name} failed{on_node} before its container ran ({why}); "
                              f"events: {await self._events_text()}")
        if phase(pod) == "Failed":
            detail = self.stderr_tail[-1] if self.stderr_tail else (
                " ".join(str(term.get("message") or "").split())[-200:] or "no output")
            raise LaunchError(f"pod {name} failed{on_node}: container exited with code {code} "
                              f"({term.get('reason') or status.get('reason') or 'Error'}): {detail}; "
                              f"events: {await self._events_text()}")
        if phase(pod) == "Running":
            why = self._details.get("log_error") or "no further output"
            if self._stalled:
                raise LaunchError(f"pod {name}{on_node}: {why} while Running: the engine hangs "
                                  f"(timeout {self.launcher.log_stall_s:g} s); pod deleted")
            raise LaunchError(f"pod {name}: log stream ended while the pod is still Running "
                              f"({why})")
        return code

    async def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
        await super()._cleanup()

    def _put(self, event) -> None:
        if isinstance(event, Hello):
            self._mark_startup("to_hello_s")
        elif isinstance(event, Sample) and "to_first_sample_s" not in self._details.get("startup", {}):
            self._mark_startup("to_first_sample_s")
            first = self._details["startup"].get("to_first_sample_s")
            if first is not None:
                self._status(f"pod {self.pod_name}: first sample {first:.2f} s after creation")
        super()._put(event)

    def _end(self, outcome: str, message: str = "", exit_code: int | None = None,
             **details) -> None:
        merged = {**self._details, **details}
        super()._end(outcome, message, exit_code if exit_code is not None else self._exit_code,
                     **merged)
