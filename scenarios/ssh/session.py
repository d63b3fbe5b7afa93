"""The engine running on a remote host, as a Session: its channel read by callbacks, its process
group stopped by signals over a second channel.

`cancel()` sends SIGINT to the remote process group (the engine writes its partial result), then
SIGTERM and SIGKILL. A dropped connection ends the session as `incomplete` with the lines received
so far.
"""
from __future__ import annotations

import asyncio
import signal

from scenarios.base import LaunchError, LaunchRequest, Session
from scenarios.stream import LineSplitter

from .asyncssh_import import asyncssh
from .bundle import PID_MARKER
from .check_reply import CHECK_MARK
from .connection import Connection, reason
from .lean import quiet_packet_log
from .remote_check import NOT_STARTED

INTERRUPT_GRACE_S = 5.0       # the engine's time to write its partial result after SIGINT


class EngineChannel(asyncssh.SSHClientSession):
    """The engine's channel, read by callbacks: each stdout chunk is split into lines that go
    straight to the session's parser (no task wake-up per line, no stream buffering); stderr
    lines give the supervisor's process group, the rest is kept as the stderr tail."""

    def __init__(self, session: "SshSession"):
        self.session = session
        self.out = LineSplitter()
        self.err = LineSplitter()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: Exception | None = None

    def data_received(self, data: str, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            for text in self.err.push(data):
                self.session._on_stderr(text)
            return
        line = self.session._line
        for text in self.out.push(data):
            line(text)

    def eof_received(self) -> bool:
        self._flush()
        return True          # keep our side open: closing it is the supervisor's stop signal

    def _flush(self) -> None:
        for text in self.out.flush():
            self.session._line(text)
        for text in self.err.flush():
            self.session._on_stderr(text)

    def connection_lost(self, exc: Exception | None) -> None:
        self._flush()
        self.lost = exc
        self.session._channel_ended()
        if not self.closed.done():
            self.closed.set_result(None)


class SshSession(Session):
    """`command` runs the engine; with checked_start it is the remote check in --start mode,
    which becomes the engine when it can run there (see SshLauncher.start)."""

    def __init__(self, host_name: str, request: LaunchRequest, slot: Connection,
                 command: str, checked_start: bool = False):
        super().__init__(request, f"ssh {host_name}")
        self._slot = slot
        self.command = command
        # With checked_start the command is the check script in --start mode: its verdict (the
        # JSON after GPUBENCH_CHECK) comes first on stderr; None when the channel ends without.
        self._check: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        if not checked_start:
            self._check.set_result(None)
        self._chan: asyncssh.SSHClientChannel | None = None
        self._reader: EngineChannel | None = None
        self._pgid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.remote_pgid: int | None = None

    async def _spawn(self) -> None:
        try:
            self._chan, self._reader = await self._slot.conn.create_session(
                lambda: EngineChannel(self), self.command, encoding="utf-8", errors="replace")
            quiet_packet_log(self._chan)    # every streamed line is a packet on this channel
        except (asyncssh.Error, OSError) as exc:
            self._slot.sessions -= 1
            raise LaunchError(f"{self.name}: cannot start the engine: {reason(exc)}") from None

    def _on_stderr(self, text: str) -> None:
        if not self._check.done() and text.startswith(CHECK_MARK):
            self._check.set_result(text.split(" ", 1)[1])
            return
        if not self._pgid.done() and text.startswith(PID_MARKER):
            try:
                self.remote_pgid = int(text.split()[1])
                self._pgid.set_result(self.remote_pgid)
                return
            except (IndexError, ValueError):
                pass
        self._stderr(text)

    def _channel_ended(self) -> None:
        if not self._check.done():
            self._check.set_result(None)

    async def _channel_closed(self, timeout: float) -> None:
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader.closed), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    def _exit_status(self) -> int | None:
        return self._chan.get_exit_status() if self._chan is not None else None

    def _close_channel(self) -> None:
        if self._chan is not None:
            self._chan.close()

    async def _finish_channel(self, timeout: float = 5.0) -> None:
        """Let a command that is exiting end its channel itself, then close our side."""
        await self._channel_closed(timeout)
        self._close_channel()

    async def _stop_quietly(self) -> None:
        """Stop an engine that started but will not be used (never begun as a session)."""
        self._cancelled = True
        try:
            await self._terminate()
        except Exception:
            self._close_channel()

    async def _run(self) -> int | None:
        chan, reader = self._chan, self._reader
        assert chan is not None and reader is not None
        try:
            await reader.closed
            code = chan.get_exit_status()
            if code is None or code < 0:
                exit_signal = chan.get_exit_signal()
                if exit_signal is not None:
                    return 128 + _signum(exit_signal[0])
                if self._cancelled:
                    return None
                why = (reason(reader.lost) if reader.lost is not None else
                       reason(self._slot.lost) if self._slot.lost
                       else "channel closed without an exit status")
                raise LaunchError(f"{self.name}: connection lost mid-run ({why}); "
                                  f"{len(self.raw_lines)} lines kept")
            if code == NOT_STARTED and self.parser.hello is None:
                self._slot.deployment = None    # the bundle failed its check: upload it again
            return code
        finally:
            self._slot.sessions -= 1
            if not self._pgid.done():
                self._pgid.cancel()

    async def _signal_group(self, sig: str) -> bool:
        if self.remote_pgid is None:
            return False
        cmd = f"kill -s {sig} -- -{self.remote_pgid} 2>/dev/null || kill -s {sig} {self.remote_pgid}"
        try:
            await asyncio.wait_for(self._slot.conn.run(cmd, check=False), timeout=10)
            return True
        except (asyncssh.Error, OSError, asyncio.TimeoutError):
            return False

    async def _terminate(self) -> None:
        chan, reader = self._chan, self._reader
        if chan is None or reader is None:
            return
        if self.remote_pgid is None and not self._pgid.done():
            try:  # the first stderr line names the group; it comes within milliseconds
                await asyncio.wait_for(asyncio.shield(self._pgid), timeout=3)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        for sig, grace in (("INT", INTERRUPT_GRACE_S), ("TERM", 2.0), ("KILL", 2.0)):
            if reader.closed.done():
                break
            if not await self._signal_group(sig):
                break
            try:
                await asyncio.wait_for(asyncio.shield(reader.closed), timeout=grace)
                break
            except asyncio.TimeoutError:
                continue
        # Closing the channel closes the supervisor's stdin: it stops the engine if it still runs.
        chan.close()



def _signum(name: str) -> int:
    try:
        return int(getattr(signal, f"SIG{name}"))
    except AttributeError:
        return 0
