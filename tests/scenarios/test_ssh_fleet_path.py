"""The SSH launcher's fleet-scale path: bundle cache, the check script's deployment probe,
cipher preference, fleet settings, and Session listeners (the real sshd from conftest.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from scenarios.config import HostConfig
from scenarios.base import LaunchRequest
from scenarios.events import COMPLETED, Sample, SessionEnded, Status
from scenarios.ssh import bundle as bundle_mod
from scenarios.ssh import deploy as deploy_mod
from scenarios.ssh import launcher as ssh_mod
from scenarios.ssh.bundle import current_bundle, engine_bundle
from scenarios.ssh.connection import CONNECTS_TOTAL
from scenarios.ssh.launcher import SshLauncher
from scenarios.ssh.options import preferred_ciphers
from scenarios.ssh.remote_cmd import CHECK_SCRIPT
from tests.support.sshd import REMOTE_PYTHON, OpenSshServer

QUICK = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "0.6",
         "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")


def host_for(server: OpenSshServer, **overrides) -> HostConfig:
    base = HostConfig(name="testhost", kind="ssh", address="127.0.0.1", port=server.port,
                      user=server.user, identity_file=str(server.user_key),
                      known_hosts=str(server.known_hosts), python=REMOTE_PYTHON)
    return replace(base, **overrides)


def test_engine_bundle_is_cached_until_a_file_changes(tmp_path):
    eng = tmp_path / "engine"
    eng.mkdir()
    (eng / "__init__.py").write_text("")
    (eng / "a.py").write_text("x = 1\n")
    first = engine_bundle(eng)
    assert engine_bundle(eng) is first and current_bundle(eng) is first
    (eng / "a.py").write_text("x = 22\n")           # size changes: seen at once
    second = engine_bundle(eng)
    assert second is not first and second.digest != first.digest
    (eng / "b.py").write_text("")                   # a new file: a new bundle
    assert engine_bundle(eng).digest != second.digest
    # current_bundle() trusts its last look for BUNDLE_RECHECK_S, then looks again
    third = engine_bundle(eng)
    (eng / "c.py").write_text("")
    assert current_bundle(eng) is third
    key = str(eng)
    sig, bundle, _ = bundle_mod._BUNDLES[key]
    bundle_mod._BUNDLES[key] = (sig, bundle, time.monotonic() - 60)
    assert current_bundle(eng).digest != third.digest


def test_check_script_reports_a_deployed_bundle(tmp_path):
    from tests.support.farm import preseed_engine
    home = tmp_path / "home"
    home.mkdir()
    bundle = engine_bundle()
    env = {**os.environ, "HOME": str(home)}

    def check(root: str) -> dict:
        out = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, root, bundle.dir_name, bundle.digest],
                             capture_output=True, text=True, env=env, timeout=60).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("GPUBENCH_CHECK "))
        return json.loads(line.split(" ", 1)[1])
    assert check(".cache/gpubench")["deployed"] is None                # nothing there yet
    folder = preseed_engine(home)
    assert check(".cache/gpubench")["deployed"] == str(folder)
    assert check(str(folder.parent))["deployed"] == str(folder)       # absolute cache roots too


def test_aes_gcm_is_preferred():
    ciphers = preferred_ciphers()
    assert ciphers[0] == "aes128-gcm@openssh.com"
    assert "chacha20-poly1305@openssh.com" in ciphers                 # still offered


def test_fleet_settings_replace_the_process_wide_connect_cap_and_keepalive():
    launcher = SshLauncher(HostConfig(name="x", kind="ssh", address="example.invalid"))
    assert launcher.max_connects_total == CONNECTS_TOTAL and launcher.keepalive_s == 15
    launcher.use_fleet_settings(max_connects=200, keepalive_s=60)
    assert launcher.max_connects_total == 200 and launcher.keepalive_s == 60


@pytest.mark.sshd
async def test_cache_hit_needs_no_sftp_and_cipher_follows_config(sshd, tmp_path):
    cache = str(tmp_path / "engine-cache")
    first = SshLauncher(host_for(sshd), cache_root=cache)
    try:
        notes = await first.prepare()
        assert any("uploaded" in n for n in notes), notes
        conn = first.conns[0].conn
        assert conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
    finally:
        await first.close()
    config = tmp_path / "ssh_config"
    config.write_text("Ciphers chacha20-poly1305@openssh.com\n")
    again = SshLauncher(host_for(sshd), cache_root=cache, ssh_config=[str(config)])
    calls = []
    original = deploy_mod.deploy

    async def spy(*args, **kwargs):
        calls.append(args)
        return await original(*args, **kwargs)
    ssh_mod.deploy = spy
    try:
        session = await again.start(LaunchRequest(engine_args=QUICK))
        seen: list = []
        session.add_listener(seen.append, queue_events=False)
        ended = await session.wait()
        assert ended.outcome == COMPLETED
        assert again.conns[0].conn.get_extra_info("send_cipher") == "chacha20-poly1305@openssh.com"
    finally:
        ssh_mod.deploy = original
        await again.close()
    assert calls == []                               # cache hit found by the check: no SFTP
    assert any(isinstance(e, Sample) for e in seen) and isinstance(seen[-1], SessionEnded)
    notes = [e.message for e in seen if isinstance(e, Status)]
    assert not any("uploaded" in n for n in notes)
    assert any("cache hit" in n for n in again.messages)
    assert session.drain_nowait() == []              # the listener took the events


async def test_session_listener_errors_are_recorded_not_raised():
    from scenarios.replay import ReplayLauncher
    from tests.support.fleet_stream import HostProfile, complete_stream
    lines = [json.dumps(l) for l in complete_stream(HostProfile("h"))]
    session = await ReplayLauncher(lines, speed=0).start(LaunchRequest())
    got = []

    def bad(event):
        raise RuntimeError("subscriber bug")
    session.add_listener(bad)
    session.add_listener(got.append)
    events = [e async for e in session.events()]         # queued as before
    assert events[-1].outcome == COMPLETED
    assert [type(e) for e in got] == [type(e) for e in events[-len(got):]]
    assert isinstance(got[-1], SessionEnded)
    assert session.listener_errors and "subscriber bug" in session.listener_errors[-1]


def test_check_script_start_mode_runs_the_command_only_when_the_engine_can_run(tmp_path):
    """`SCRIPT ROOT NAME DIGEST --start NEED_CUPY ARGV...`: the verdict on stderr first; ARGV runs
    in the bundle's folder (in place of the script) only when the bundle is there (and cupy,
    when asked for)."""
    from tests.support.farm import preseed_engine
    home = tmp_path / "home"
    home.mkdir()
    bundle = engine_bundle()
    env = {**os.environ, "HOME": str(home)}
    argv = [sys.executable, "-c", "import os; print('RAN IN', os.getcwd())"]

    def start(need_cupy: str) -> tuple[dict, str]:
        out = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, ".cache/gpubench", bundle.dir_name,
                              bundle.digest, "--start", need_cupy, *argv], capture_output=True,
                             text=True, env=env, timeout=60)
        line = out.stderr.splitlines()[0]
        assert line.startswith("GPUBENCH_CHECK ") and out.returncode == 0
        return json.loads(line.split(" ", 1)[1]), out.stdout
    verdict, stdout = start("0")
    assert verdict["started"] is False and verdict["deployed"] is None and stdout == ""
    folder = preseed_engine(home)
    verdict, stdout = start("0")
    assert verdict["started"] is True and stdout.strip() == f"RAN IN {folder}"
    verdict, stdout = start("1")
    assert verdict["started"] is verdict["packages"]["cupy"]["ok"]


@pytest.mark.sshd
async def test_fleet_prepare_only_connects_and_start_checks_and_runs_in_one_command(sshd, tmp_path):
    """In a fleet, prepare() is the handshake alone; start() sends one command that checks the
    host and becomes the engine: a cold cache is uploaded first, a warm one needs no SFTP."""
    cache = str(tmp_path / "engine-cache")
    calls: list = []
    original = ssh_mod.deploy

    async def spy(*args, **kwargs):
        calls.append(args)
        return await original(*args, **kwargs)
    ssh_mod.deploy = spy
    try:
        for expect_upload in (True, False):
            launcher = SshLauncher(host_for(sshd), cache_root=cache)
            launcher.use_fleet_settings(max_connects=8)
            try:
                await launcher.prepare()
                assert launcher.conns and launcher.conns[0].checked is None   # connected only
                session = await launcher.start(LaunchRequest(engine_args=QUICK))
                seen: list = session.drain_nowait()
                session.add_listener(seen.append, queue_events=False)
                ended = await session.wait()
                assert ended.outcome == COMPLETED, ended.message
                assert launcher.conns[0].checked is not None and launcher.conns[0].checked.has("numpy")
                notes = [e.message for e in seen if isinstance(e, Status)]
                assert any(("uploaded" if expect_upload else "cache hit") in n for n in notes), notes
                assert any(isinstance(e, Sample) for e in seen)
            finally:
                await launcher.close()
            assert len(calls) == 1                   # uploaded once, then found by the check
    finally:
        ssh_mod.deploy = original


@pytest.mark.sshd
async def test_fleet_start_refuses_backend_cupy_without_cupy_in_one_line(sshd, tmp_path):
    from scenarios.base import LaunchError
    launcher = SshLauncher(host_for(sshd), cache_root=str(tmp_path / "engine-cache"))
    launcher.use_fleet_settings(max_connects=8)
    try:
        await launcher.start(LaunchRequest(engine_args=QUICK))   # deploys (cold), runs
        fresh = SshLauncher(host_for(sshd), cache_root=str(tmp_path / "engine-cache"))
        fresh.use_fleet_settings(max_connects=8)
        await fresh.prepare()
        try:
            session = await fresh.start(LaunchRequest(engine_args=("--backend", "cupy", *QUICK[2:])))
        except LaunchError as exc:
            text = str(exc)
            assert "\n" not in text and "--backend cupy cannot run" in text and "pip install cupy" in text
            assert fresh.conns[0].sessions == 0              # the slot was released
        else:
            await session.cancel()
            pytest.skip("the remote python has cupy")
        finally:
            await fresh.close()
    finally:
        await launcher.close()


async def test_bad_known_hosts_file_is_one_line(tmp_path):
    from scenarios.base import LaunchError
    known = tmp_path / "known_hosts"
    known.write_text("[127.0.0.1\n")
    launcher = SshLauncher(HostConfig(name="x", kind="ssh", address="127.0.0.1", port=1,
                                      known_hosts=str(known)), ssh_config=[])
    with pytest.raises(LaunchError) as info:
        await launcher.prepare()
    assert str(info.value).startswith(f"ssh x: bad known_hosts file {known}: ")
    assert "\n" not in str(info.value)
