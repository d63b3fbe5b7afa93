"""The ssh launcher against a real OpenSSH sshd on 127.0.0.1, running the real engine.

No part of SSH is mocked: the fixture (conftest.py) starts /usr/sbin/sshd with a
private config, host key and authorised user key; the launcher connects with
asyncssh, checks the remote Python, deploys the engine over SFTP and runs it on
the numpy-cpu backend. The "remote" is this machine, so the tests can look for
leftover engine processes by their working directory (the per-test engine cache).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from scenarios.config import HostConfig, ProxyLayer, ScenarioConfig
from scenarios.base import LaunchError, LaunchRequest
from scenarios.ssh.bundle import engine_bundle
from scenarios.ssh.deploy import MANIFEST_NAME
from scenarios.events import (CANCELLED, COMPLETED, INCOMPLETE, Done, Hello, Result, Sample,
                              SessionEnded, Status)
from scenarios.layers import verify
from scenarios.registry import request_for
from scenarios.ssh.launcher import SshLauncher
from tests.support.sshd import REMOTE_PYTHON, OpenSshServer, free_port, keygen

pytestmark = pytest.mark.sshd

QUICK = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "0.6",
         "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")
STREAM = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "1.2",
          "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")
LONG = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "60",
        "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")


def host_for(server: OpenSshServer, **overrides) -> HostConfig:
    base = HostConfig(name="testhost", kind="ssh", address="127.0.0.1", port=server.port,
                      user=server.user, identity_file=str(server.user_key),
                      known_hosts=str(server.known_hosts), python=REMOTE_PYTHON)
    return replace(base, **overrides)


@pytest.fixture
def cache(tmp_path) -> str:
    return str(tmp_path / "engine-cache")


def fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]  # "256 SHA256:... comment (ED25519)"


async def collect(session, until=None):
    """All events with the loop time each arrived; stop early once `until(event)` is true."""
    loop = asyncio.get_running_loop()
    events = []
    async for event in session.events():
        events.append((loop.time(), event))
        if until is not None and until(event):
            break
    return events


async def wait_gone(find, folder, timeout=12.0) -> list[int]:
    deadline = time.monotonic() + timeout
    left = find(folder)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        left = find(folder)
    return left


async def test_deploy_run_stream_completed_then_cache_hit(sshd, cache):
    launcher = SshLauncher(host_for(sshd), cache_root=cache)
    try:
        session = await launcher.start(LaunchRequest(engine_args=STREAM))
        timed = await collect(session)
        events = [e for _, e in timed]
        statuses = [e.message for e in events if isinstance(e, Status)]
        assert any("uploaded" in s for s in statuses), statuses
        hello = next(e for e in events if isinstance(e, Hello))
        assert hello.backend == "numpy-cpu" and hello.host["python"]
        samples = [(t, e) for t, e in timed if isinstance(e, Sample)]
        results = [e for e in events if isinstance(e, Result)]
        done_t = next(t for t, e in timed if isinstance(e, Done))
        assert samples and results and results[0].ops_per_s > 0
        # streamed as produced: the first sample arrived well before the run ended
        assert done_t - samples[0][0] > 0.4
        ended = events[-1]
        assert isinstance(ended, SessionEnded) and ended.outcome == COMPLETED, ended
        assert ended.exit_code == 0
        assert session.raw_lines[0].startswith('{"v":1,"type":"hello"')
        bundle = engine_bundle()
        deployed = Path(cache) / bundle.dir_name
        assert (deployed / MANIFEST_NAME).is_file() and (deployed / "engine" / "__main__.py").is_file()
        stamp = (deployed / MANIFEST_NAME).stat().st_mtime_ns
        # a second session reuses the connection and the deployment
        session2 = await launcher.start(LaunchRequest(engine_args=QUICK))
        assert (await session2.wait()).outcome == COMPLETED
        assert len(launcher.conns) == 1
    finally:
        await launcher.close()
    # a fresh launcher (new connection) finds the bundle in the cache: no upload
    again = SshLauncher(host_for(sshd), cache_root=cache)
    try:
        session3 = await again.start(LaunchRequest(engine_args=QUICK))
        events3 = [e async for e in session3.events()]
        notes = [e.message for e in events3 if isinstance(e, Status)]
        assert any("cache hit" in n for n in notes) and not any("uploaded" in n for n in notes)
        assert events3[-1].outcome == COMPLETED
        assert (deployed / MANIFEST_NAME).stat().st_mtime_ns == stamp
        assert [p.name for p in Path(cache).iterdir()] == [bundle.dir_name]  # no temp dirs left
    finally:
        await again.close()


async def test_cancel_mid_run_leaves_no_engine_process(sshd, cache, engine_processes):
    launcher = SshLauncher(host_for(sshd), cache_root=cache)
    try:
        session = await launcher.start(LaunchRequest(engine_args=LONG))
        await asyncio.wait_for(collect(session, until=lambda e: isinstance(e, Sample)), 30)
        running = engine_processes(cache)
        assert len(running) >= 2  # the supervisor and the engine, both in the cache folder
        assert session.remote_pgid in running
        await asyncio.wait_for(session.cancel(), 60)   # a guard against a hang, not a time bound
        ended = session.ended
        assert ended is not None and ended.outcome == CANCELLED
        assert ended.exit_code == 130  # the engine took SIGINT and wrote its partial result
        assert any('"interrupted":true' in line for line in session.raw_lines)
        assert await wait_gone(engine_processes, cache) == []
    finally:
        await launcher.close()


async def test_launcher_close_cancels_running_sessions(sshd, cache, engine_processes):
    launcher = SshLauncher(host_for(sshd), cache_root=cache)
    session = await launcher.start(LaunchRequest(engine_args=LONG))
    await asyncio.wait_for(collect(session, until=lambda e: isinstance(e, Hello)), 30)
    await launcher.close()  # the app exits
    assert session.ended is not None and session.ended.outcome == CANCELLED
    assert await wait_gone(engine_processes, cache) == []


async def test_connection_dropped_mid_run_is_incomplete_with_partial_stream(
        sshd, tmp_path, cache, engine_processes):  # sshd: only for its skip when none is here
    # a server of its own: dropping connections must not disturb other tests' sessions
    server = OpenSshServer.start(tmp_path / "sshd-drop")
    launcher = SshLauncher(host_for(server), cache_root=cache)
    try:
        session = await launcher.start(LaunchRequest(engine_args=LONG))
        await asyncio.wait_for(collect(session, until=lambda e: isinstance(e, Sample)), 30)
        kept = len(session.raw_lines)
        assert server.drop_connections() >= 1
        ended = await asyncio.wait_for(session.wait(), 30)
        assert ended.outcome == INCOMPLETE, ended
        assert "connection lost" in ended.message
        assert len(session.raw_lines) >= kept >= 2
        assert session.raw_lines[0].startswith('{"v":1,"type":"hello"')
        # sshd closed the engine's stdin: the supervisor interrupted it, nothing is left
        assert await wait_gone(engine_processes, cache, timeout=15) == []
    finally:
        await launcher.close()
        server.stop()


async def test_wrong_user_key_is_a_clear_auth_error(sshd, tmp_path, cache):
    other = keygen(tmp_path / "not_authorised")
    launcher = SshLauncher(host_for(sshd, identity_file=str(other)), cache_root=cache)
    with pytest.raises(LaunchError) as info:
        await launcher.start(LaunchRequest(engine_args=QUICK))
    msg = str(info.value)
    assert "authentication refused for user 'root'" in msg and str(other) in msg
    assert "\n" not in msg
    await launcher.close()


async def test_missing_identity_file_is_named(sshd, tmp_path, cache):
    launcher = SshLauncher(host_for(sshd, identity_file=str(tmp_path / "nope")), cache_root=cache)
    with pytest.raises(LaunchError, match=r"identity_file .*nope does not exist"):
        await launcher.start(LaunchRequest(engine_args=QUICK))


async def test_unknown_host_key_refused_then_trusted_on_first_use(sshd, tmp_path, cache):
    known = tmp_path / "known_hosts"  # does not exist yet
    fp = fingerprint(sshd.host_key.with_suffix(".pub"))
    refused = SshLauncher(host_for(sshd, known_hosts=str(known)), cache_root=cache)
    with pytest.raises(LaunchError) as info:
        await refused.start(LaunchRequest(engine_args=QUICK))
    msg = str(info.value)
    assert f"unknown host key ssh-ed25519 {fp}; refused" in msg
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in msg
    assert "trust_on_first_use = true under [hosts.testhost]" in msg and "\n" not in msg
    assert not known.exists()

    tofu = SshLauncher(host_for(sshd, known_hosts=str(known), trust_on_first_use=True),
                       cache_root=cache)
    try:
        notes = await tofu.prepare()
        assert any(f"trusted new host key {fp} on first use; recorded in {known}" in n
                   for n in notes), notes
    finally:
        await tofu.close()
    assert known.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    # now known: a strict launcher connects without a word about keys
    strict = SshLauncher(host_for(sshd, known_hosts=str(known)), cache_root=cache)
    try:
        notes = await strict.prepare()
        assert not any("host key" in n for n in notes)
    finally:
        await strict.close()


async def test_changed_host_key_is_refused_even_with_trust_on_first_use(sshd, tmp_path, cache):
    impostor = keygen(tmp_path / "old_host_key")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {impostor.with_suffix('.pub').read_text()}")
    before = known.read_text()
    launcher = SshLauncher(host_for(sshd, known_hosts=str(known), trust_on_first_use=True),
                           cache_root=cache)
    with pytest.raises(LaunchError) as info:
        await launcher.start(LaunchRequest(engine_args=QUICK))
    msg = str(info.value)
    assert "HOST KEY CHANGED" in msg
    assert fingerprint(sshd.host_key.with_suffix(".pub")) in msg
    assert fingerprint(impostor.with_suffix(".pub")) in msg
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {known}" in msg
    assert known.read_text() == before  # never overwritten


async def test_unreachable_port_is_a_clear_error(sshd, cache):
    port = free_port()
    launcher = SshLauncher(host_for(sshd, port=port), cache_root=cache)
    with pytest.raises(LaunchError) as info:
        await launcher.start(LaunchRequest(engine_args=QUICK))
    assert str(info.value) == (f"ssh testhost (root@127.0.0.1:{port}): connection refused by "
                               f"127.0.0.1:{port} (no sshd listening on that port?)")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """An interpreter without numpy (nor cupy, nor nvidia-ml-py): a venv without pip."""
    base = "/usr/bin/python3"
    if not os.path.exists(base):
        pytest.skip("no /usr/bin/python3 to build a bare venv from")
    folder = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    probe = subprocess.run([python, "-c", "import numpy"], capture_output=True)
    assert probe.returncode != 0, "the bare venv unexpectedly has numpy"
    return python


async def test_missing_numpy_names_the_package_and_the_pip_command(sshd, cache, bare_python):
    launcher = SshLauncher(host_for(sshd, python=bare_python), cache_root=cache)
    with pytest.raises(LaunchError) as info:
        await launcher.start(LaunchRequest(engine_args=QUICK))
    msg = str(info.value)
    assert msg.startswith("ssh testhost: numpy is missing on the host (ModuleNotFoundError")
    assert msg.endswith(f"install it with: {bare_python} -m pip install numpy")
    assert not Path(cache).exists()  # nothing deployed to a host that cannot run it


async def test_missing_cupy_falls_back_to_cpu_or_fails_when_asked(sshd, cache):
    launcher = SshLauncher(host_for(sshd), cache_root=cache)
    try:
        notes = await launcher.prepare()
        check = launcher.conns[0].checked
        assert check is not None and check.has("numpy")
        if check.has("cupy"):
            pytest.skip("the remote python has cupy; nothing to report")
        cupy_note = next(n for n in notes if "cupy missing" in n)
        assert "the engine will use the numpy-cpu backend" in cupy_note
        assert f"{REMOTE_PYTHON} -m pip install cupy-cuda" in cupy_note
        with pytest.raises(LaunchError) as info:
            await launcher.start(LaunchRequest(engine_args=("--backend", "cupy")))
        assert "cupy missing" in str(info.value) and "--backend cupy cannot run" in str(info.value)
        assert "-m pip install cupy-cuda" in str(info.value)
    finally:
        await launcher.close()


async def test_remote_python_not_found(sshd, cache):
    launcher = SshLauncher(host_for(sshd, python="/nonexistent/python3"), cache_root=cache)
    with pytest.raises(LaunchError, match=r"remote python '/nonexistent/python3' not found .*"
                                          r"set python = .* under \[hosts.testhost\]"):
        await launcher.start(LaunchRequest(engine_args=QUICK))


async def test_ssh_config_alias_user_port_identity(sshd, tmp_path, cache):
    config = tmp_path / "ssh_config"
    config.write_text(f"Host gpubench-test-alias\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                      f"  User {sshd.user}\n  IdentityFile {sshd.user_key}\n"
                      f"  UserKnownHostsFile {sshd.known_hosts}\n")
    host = HostConfig(name="aliased", kind="ssh", address="gpubench-test-alias",
                      python=REMOTE_PYTHON)
    launcher = SshLauncher(host, ssh_config=[str(config)], cache_root=cache)
    try:
        await launcher.prepare()
        assert launcher.target == f"{sshd.user}@127.0.0.1:{sshd.port}"
    finally:
        await launcher.close()
    # HostConfig fields override the file: a wrong port wins over the config's
    wrong = SshLauncher(replace(host, port=free_port()), ssh_config=[str(config)], cache_root=cache)
    with pytest.raises(LaunchError, match="connection refused"):
        await wrong.prepare()


async def test_throttled_connects_are_retried(sshd, tmp_path, cache):  # sshd: for its skip
    # MaxStartups 2: sshd drops every connection beyond two unauthenticated at a time
    server = OpenSshServer.start(tmp_path / "sshd-throttled", max_startups="2")
    launchers = [SshLauncher(host_for(server), cache_root=cache) for _ in range(6)]
    try:
        results = await asyncio.gather(*(lch._slot() for lch in launchers), return_exceptions=True)
        assert all(not isinstance(r, Exception) for r in results), results
        assert "MaxStartups throttling" in server.log.read_text() or \
            "drop connection" in server.log.read_text()
    finally:
        await asyncio.gather(*(lch.close() for lch in launchers))
        server.stop()


async def test_proxy_layer_preload_and_env_reach_the_remote_engine(sshd, cache, preload_lib):
    scenario = ScenarioConfig(name="ssh-proxy", title="ssh + proxy", launcher="ssh",
                              host="testhost", target="proxy",
                              proxy=ProxyLayer(preload=str(preload_lib),
                                               env={"CUDA_DEVICE_SM_LIMIT": "50"}))
    request = request_for(scenario, QUICK)
    launcher = SshLauncher(host_for(sshd), cache_root=cache)
    try:
        session = await launcher.start(request)
        events = [e async for e in session.events()]
    finally:
        await launcher.close()
    hello = next(e for e in events if isinstance(e, Hello))
    assert hello.host["preload"]["mapped"] == [str(preload_lib)]
    assert hello.host["env"]["CUDA_DEVICE_SM_LIMIT"] == "50"
    assert hello.host["env"].get("GPUBENCH_PRELOAD_PROBE") == "loaded"  # its constructor ran
    # the probe wraps nothing: where a driver is installed, hello proves it intercepts nothing
    reasons = verify(scenario, hello.data)
    if hello.host["preload"].get("resolves"):
        assert len(reasons) == 1 and reasons[0].startswith("proxy not intercepting: "), reasons
    else:
        assert reasons == []
    assert events[-1].outcome == COMPLETED


async def test_proxy_jump_from_ssh_config(sshd, tmp_path, cache):
    # the jump host is the same sshd: the target is reached through a direct-tcpip channel
    config = tmp_path / "ssh_config"
    common = (f"  User {sshd.user}\n  IdentityFile {sshd.user_key}\n"
              f"  UserKnownHostsFile {sshd.known_hosts}\n")
    config.write_text(f"Host gpubench-jump\n  HostName 127.0.0.1\n  Port {sshd.port}\n{common}"
                      f"Host gpubench-behind\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                      f"  ProxyJump gpubench-jump\n{common}")
    accepted = lambda: sshd.log.read_text().count("Accepted publickey")  # noqa: E731
    before = accepted()
    host = HostConfig(name="behind", kind="ssh", address="gpubench-behind", python=REMOTE_PYTHON)
    launcher = SshLauncher(host, ssh_config=[str(config)], cache_root=cache)
    try:
        await launcher.prepare()
        # two connections reached sshd: the jump and the tunnelled one
        assert accepted() == before + 2
        session = await launcher.start(LaunchRequest(engine_args=QUICK))
        assert (await session.wait()).outcome == COMPLETED
    finally:
        await launcher.close()


async def test_many_concurrent_sessions_share_connections(sshd, cache):
    from scenarios.ssh.connection import SESSIONS_PER_CONNECTION
    n = SESSIONS_PER_CONNECTION + 2
    tiny = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "0.1",
            "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")
    launcher = SshLauncher(host_for(sshd), cache_root=cache)
    try:
        sessions = await asyncio.gather(*(launcher.start(LaunchRequest(engine_args=tiny))
                                          for _ in range(n)))
        ended = await asyncio.gather(*(s.wait() for s in sessions))
        assert [e.outcome for e in ended] == [COMPLETED] * n
        assert len(launcher.conns) == 2  # MaxSessions-safe: a second connection, not n
        assert len({s.remote_pgid for s in sessions}) == n
    finally:
        await launcher.close()


async def test_racing_deploys_install_one_complete_copy(sshd, cache):
    import asyncssh
    from scenarios.ssh.deploy import deploy
    bundle = engine_bundle()
    conns = [await asyncssh.connect("127.0.0.1", sshd.port, username=sshd.user,
                                    client_keys=[str(sshd.user_key)],
                                    known_hosts=str(sshd.known_hosts)) for _ in range(3)]
    try:
        done = await asyncio.gather(*(deploy(c, bundle, cache) for c in conns))
    finally:
        for c in conns:
            c.close()
    assert {d.path for d in done} == {str(Path(cache) / bundle.dir_name)}
    assert any(d.uploaded for d in done)
    assert [p.name for p in Path(cache).iterdir()] == [bundle.dir_name]
    files = sorted(p.relative_to(Path(cache) / bundle.dir_name).as_posix()
                   for p in (Path(cache) / bundle.dir_name).rglob("*") if p.is_file())
    assert files == sorted([f for f, _ in bundle.files] + [MANIFEST_NAME])


EMFILE_SCRIPT = r"""
import asyncio, os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
from scenarios.config import HostConfig
from scenarios.base import LaunchError, LaunchRequest
from scenarios.ssh.launcher import SshLauncher
host = HostConfig(name="testhost", kind="ssh", address="127.0.0.1", port=int(sys.argv[1]),
                  user=sys.argv[2], identity_file=sys.argv[3], known_hosts=sys.argv[4])
async def main():
    launcher = SshLauncher(host, cache_root=sys.argv[5])
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    try:
        await launcher.start(LaunchRequest())
    except LaunchError as exc:
        print(exc)
from scenarios import aio
aio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_descriptor_exhaustion_is_reported_plainly(sshd, cache, loop, monkeypatch):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv("GPUBENCH_LOOP", loop)
    proc = subprocess.run([REMOTE_PYTHON, "-c", EMFILE_SCRIPT, str(sshd.port), sshd.user,
                           str(sshd.user_key), str(sshd.known_hosts), cache],
                          capture_output=True, text=True, timeout=60,
                          cwd=str(Path(__file__).resolve().parents[2]))
    assert proc.stdout.strip() == ("ssh testhost: too many open files (limit 128; one per "
                                   "session): raise it with `ulimit -n` or run fewer sessions "
                                   "at once"), proc.stdout + proc.stderr[-1500:]


async def test_stale_upload_folders_are_pruned(sshd, cache):
    import asyncssh
    from scenarios.ssh.deploy import deploy
    stale = Path(cache) / ".tmp-engine-0123456789abcdef-dead"
    fresh = Path(cache) / ".tmp-engine-0123456789abcdef-beef"  # maybe a client uploading now
    for d in (stale, fresh):
        (d / "engine").mkdir(parents=True)
        (d / "engine" / "x.py").write_text("")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    async with asyncssh.connect("127.0.0.1", sshd.port, username=sshd.user,
                                client_keys=[str(sshd.user_key)],
                                known_hosts=str(sshd.known_hosts)) as conn:
        await deploy(conn, engine_bundle(), cache)
    assert not stale.exists() and fresh.exists()


@pytest.fixture(scope="module")
def numpy_only_python(tmp_path_factory) -> str:
    """A bare venv that sees the project's numpy (symlinked) but no cupy, no nvidia-ml-py."""
    from tests.scenarios.remote_pythons import numpy_only_python as make
    python, why = make(tmp_path_factory.mktemp("numpy-only-venv"))
    if python is None:
        pytest.skip(why)
    return python


async def test_missing_nvml_and_cupy_are_reported_with_pip_commands(sshd, cache,
                                                                    numpy_only_python):
    launcher = SshLauncher(host_for(sshd, python=numpy_only_python), cache_root=cache)
    try:
        session = await launcher.start(LaunchRequest(engine_args=QUICK))
        events = [e async for e in session.events()]
    finally:
        await launcher.close()
    notes = [e.message for e in events if isinstance(e, Status)]
    assert (f"ssh testhost: nvidia-ml-py missing: no GPU telemetry; install it with: "
            f"{numpy_only_python} -m pip install nvidia-ml-py") in notes
    assert any(n.startswith("ssh testhost: cupy missing") and
               f"{numpy_only_python} -m pip install cupy-cuda" in n for n in notes), notes
    assert events[-1].outcome == COMPLETED  # the numpy-cpu engine still runs
    hello = next(e for e in events if isinstance(e, Hello))
    assert hello.backend == "numpy-cpu"
