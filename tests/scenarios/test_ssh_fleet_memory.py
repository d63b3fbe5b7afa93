"""What one held SSH session costs a fleet: the session's event queue made only when used, the
hello cut down to its facts, one shared copy of the check command, the handshake's leftovers
freed; and the check-and-start command that goes by numpy's presence (the real sshd from
conftest.py for the end-to-end case)."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from scenarios.config import HostConfig
from scenarios.base import LaunchError, LaunchRequest, Session
from scenarios.events import CANCELLED, COMPLETED, FAILED, Hello, SessionEnded, Status
from scenarios.fleet_run.hosts import FleetTarget
from scenarios.fleet_run.run import FleetRun
from scenarios.ssh.bundle import Bundle, engine_bundle
from scenarios.ssh.launcher import SshLauncher
from scenarios.ssh.lean import drop_handshake_state
from scenarios.ssh.remote_cmd import CHECK_SCRIPT
from scenarios.stream import StreamParser, hello_facts
from tests.support.sshd import REMOTE_PYTHON, OpenSshServer

QUICK = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "0.6",
         "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")
HELLO = {"v": 1, "type": "hello", "t": 0.1, "backend": "cupy", "engine_version": "0.1.0",
         "device": {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1", "index": 0, "driver": "580",
                    "pcie": {"gen_current": 5, "gen_max": 5, "width_current": 16, "width_max": 16}},
         "host": {"hostname": "gpu-7", "os": "Linux", "cpu_affinity": "0-7", "env": {"A": "B"}},
         "plan": {"workloads": ["roundtrip"], "sizes": [1, 2, 3]}}


class _Quiet(Session):
    async def _run(self):
        await asyncio.sleep(3600)

    async def _terminate(self):
        pass


async def test_session_queue_serves_waiting_consumers_in_order_and_drains():
    s = _Quiet(LaunchRequest(), "q")
    assert s._pending is None and s.stderr_tail == ()            # nothing made before it is used
    first = asyncio.ensure_future(s._get())
    second = asyncio.ensure_future(s._get())
    await asyncio.sleep(0)
    s._put(Status("a"))
    s._put(Status("b"))
    assert (await first).message == "a" and (await second).message == "b"
    s._put(Status("c"))
    s._end(COMPLETED)
    assert [type(e) for e in s.drain_nowait()] == [Status, SessionEnded]
    assert s._pending is None and s.drain_nowait() == []


async def test_a_cancelled_consumer_passes_its_event_on():
    s = _Quiet(LaunchRequest(), "q")
    gone = asyncio.ensure_future(s._get())
    kept = asyncio.ensure_future(s._get())
    await asyncio.sleep(0)
    s._put(Status("x"))            # wakes `gone` first ...
    gone.cancel()                  # ... which is cancelled before it runs
    assert (await asyncio.wait_for(kept, 1)).message == "x"
    assert gone.cancelled()


async def test_events_and_wait_still_end_with_session_ended():
    s = _Quiet(LaunchRequest(), "q")
    s._stderr("engine: warming up\n")
    s._put(Status("x"))
    s._end(CANCELLED, "cancelled")
    assert [type(e) async for e in s.events()] == [Status, SessionEnded]
    assert list(s.stderr_tail) == ["engine: warming up"]


def test_hello_facts_keep_what_a_fleet_reads():
    facts = hello_facts(HELLO)
    assert facts == {"v": 1, "type": "hello", "t": 0.1, "backend": "cupy", "engine_version": "0.1.0",
                     "device": {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1", "index": 0,
                                "pcie": HELLO["device"]["pcie"]},
                     "host": {"hostname": "gpu-7", "cpu_affinity": "0-7"}}
    assert hello_facts({"v": 1, "type": "hello", "device": None}) == {"v": 1, "type": "hello"}


def test_parser_keeps_only_the_facts_but_passes_the_whole_hello_on():
    p = StreamParser()
    p.keep_hello_facts_only()
    event = p.feed(json.dumps(HELLO))
    assert isinstance(event, Hello) and event.data["plan"] == HELLO["plan"]      # whole, as sent
    assert p.hello is not None and "plan" not in p.hello.data and p.hello.device["name"].startswith("NVIDIA")
    assert json.loads(p.raw_lines[0]) == HELLO                                   # archived whole
    late = StreamParser()
    late.feed(json.dumps(HELLO))
    late.keep_hello_facts_only()                                                 # already there
    assert late.hello.data == hello_facts(HELLO)


async def test_fleet_status_holds_the_hello_facts_once_and_no_ops_history():
    from tests.support.fleet_stream import HostProfile, complete_stream
    from scenarios.replay import ReplayLauncher
    lines = [json.dumps(l) for l in complete_stream(HostProfile("h1"))]
    fleet = FleetRun([FleetTarget("h1", ReplayLauncher(lines, speed=0))], LaunchRequest())
    held = []
    fleet.add_listener(lambda host, e: held.append(fleet.sessions[host].parser.hello)
                       if isinstance(e, Hello) else None)
    result = await fleet.run()
    st = result.statuses["h1"]
    assert st.state == COMPLETED and st.gpu_model == HostProfile("h1").gpu_model
    assert st.hello["host"] == {"hostname": "h1"} and "plan" not in st.hello
    assert held and st.hello is held[0].data                      # one copy, shared with the parser
    assert not hasattr(st, "recent_ops_per_s") and st.last_ops_per_s is not None
    with pytest.raises(AttributeError):
        st.unknown_field = 1                                      # slots: no per-host __dict__


def test_check_command_is_one_shared_string_for_hosts_alike():
    def launcher(name):
        return SshLauncher(HostConfig(name=name, kind="ssh", address="10.0.0.1", python="python3"))
    argv = launcher("a").engine_argv(LaunchRequest(engine_args=QUICK))
    bundle = engine_bundle()
    one = launcher("a")._check_command(bundle, argv)
    two = launcher("b")._check_command(bundle, list(argv))
    assert one == two and one is two
    other = Bundle(bundle.files, "f" * 64)
    assert launcher("c")._check_command(other, argv) != one


def test_handshake_state_is_dropped_and_signature_algorithms_shared():
    class Conn:
        def __init__(self):
            self._client_kexinit = b"\x14" + b"k" * 1500
            self._server_kexinit = b"\x14" + b"s" * 1500
            self._server_sig_algs = {b"ssh-ed25519", b"rsa-sha2-512"}
    a, b = Conn(), Conn()
    drop_handshake_state(a)
    drop_handshake_state(b)
    assert a._client_kexinit == a._server_kexinit == b""
    assert a._server_sig_algs == {b"ssh-ed25519", b"rsa-sha2-512"} and a._server_sig_algs is b._server_sig_algs

    class Other:                   # another asyncssh's internals: left alone
        _client_kexinit = None
    other = Other()
    drop_handshake_state(other)
    assert other._client_kexinit is None


# a cache folder (relative to the home) and bundle that are not there: ROOT NAME DIGEST
NOT_DEPLOYED = [".cache/gpubench-test-absent", "engine-0", "0" * 64]


def _check(python, args, env=None):
    out = subprocess.run([python, "-c", CHECK_SCRIPT, *args], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=60)
    line = next(ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("GPUBENCH_CHECK "))
    return json.loads(line.split(" ", 1)[1])


@pytest.fixture
def broken_numpy(tmp_path):
    folder = tmp_path / "broken"
    (folder / "numpy").mkdir(parents=True)
    (folder / "numpy" / "__init__.py").write_text(
        "raise ImportError('numpy is broken here: libopenblas.so.0: cannot open shared object file')\n")
    return str(folder)


def test_check_alone_imports_numpy_start_mode_goes_by_its_presence(broken_numpy):
    env = {"PYTHONPATH": broken_numpy}
    alone = _check(sys.executable, ["x"], env)["packages"]["numpy"]
    assert alone == {"ok": False, "error": "ImportError: numpy is broken here: libopenblas.so.0: "
                                           "cannot open shared object file"}
    start = _check(sys.executable, [*NOT_DEPLOYED, "--start", "0", "true"], env)
    assert start["packages"]["numpy"]["ok"] is True and start["started"] is False   # not deployed
    healthy = _check(sys.executable, [*NOT_DEPLOYED, "--start", "0", "true"])["packages"]
    import numpy
    assert healthy["numpy"] == {"ok": True, "version": numpy.__version__}          # from dist-info


def test_start_mode_without_numpy_says_so_like_an_import(tmp_path):
    bare = "/usr/bin/python3"
    if not os.path.exists(bare) or subprocess.run([bare, "-c", "import numpy"], capture_output=True).returncode == 0:
        pytest.skip("needs a python without numpy at /usr/bin/python3")
    for args in (["x"], [*NOT_DEPLOYED, "--start", "0", "true"]):
        numpy_check = _check(bare, args)["packages"]["numpy"]
        assert numpy_check["ok"] is False
        assert numpy_check["error"] == "ModuleNotFoundError: No module named 'numpy'"


def host_for(server: OpenSshServer, **overrides) -> HostConfig:
    base = HostConfig(name="testhost", kind="ssh", address="127.0.0.1", port=server.port,
                      user=server.user, identity_file=str(server.user_key),
                      known_hosts=str(server.known_hosts), python=REMOTE_PYTHON)
    return replace(base, **overrides)


@pytest.mark.sshd
async def test_fleet_start_with_a_broken_numpy_fails_with_its_import_error(sshd, tmp_path, broken_numpy):
    """The check-and-start command trusts numpy's presence; the engine's own import then fails
    and the session ends failed with that import error as its one-line message."""
    cache = str(tmp_path / "engine-cache")
    warm = SshLauncher(host_for(sshd), cache_root=cache)
    try:
        await warm.prepare()                      # the bundle is deployed: start mode starts it
    finally:
        await warm.close()
    wrapper = tmp_path / "python-broken-numpy"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={broken_numpy} exec {REMOTE_PYTHON} \"$@\"\n")
    wrapper.chmod(0o755)
    launcher = SshLauncher(host_for(sshd, python=str(wrapper)), cache_root=cache)
    launcher.use_fleet_settings(max_connects=4)
    try:
        await launcher.prepare()
        session = await launcher.start(LaunchRequest(engine_args=QUICK))
        ended = await asyncio.wait_for(session.wait(), 60)
    finally:
        await launcher.close()
    assert ended.outcome == FAILED
    assert ended.message.endswith("ImportError: numpy is broken here: libopenblas.so.0: cannot open "
                                  "shared object file"), ended.message


@pytest.mark.sshd
async def test_check_alone_through_ssh_reports_the_broken_numpy(sshd, tmp_path, broken_numpy):
    wrapper = tmp_path / "python-broken-numpy"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={broken_numpy} exec {REMOTE_PYTHON} \"$@\"\n")
    wrapper.chmod(0o755)
    launcher = SshLauncher(host_for(sshd, python=str(wrapper)), cache_root=str(tmp_path / "c"))
    try:
        with pytest.raises(LaunchError) as info:
            await launcher.prepare()
    finally:
        await launcher.close()
    assert str(info.value).startswith("ssh testhost: numpy is missing on the host (ImportError: "
                                      "numpy is broken here")
