"""The remote engine cache cannot be used to run someone else's code as the user.

Against the real sshd (conftest.py): a cache folder another user could write, or that is not
the user's, is refused in one line; a bundle whose files are not the client's (a tampered file,
a symlinked folder or file) never runs and is replaced by a fresh upload; a fresh upload is
private. The tampered code in these tests writes a marker file when it runs: the marker must
never appear. Then the check script itself (scenarios/ssh/remote_check.py) on local folders, for
the cases that need no SSH.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from scenarios.config import HostConfig
from scenarios.base import LaunchError, LaunchRequest
from scenarios.ssh.bundle import engine_bundle
from scenarios.ssh.deploy import MANIFEST_NAME
from scenarios.events import COMPLETED, FAILED, Status
from scenarios.ssh.launcher import SshLauncher
from scenarios.ssh.remote_check import NOT_STARTED
from scenarios.ssh.remote_cmd import CHECK_SCRIPT
from tests.support.sshd import REMOTE_PYTHON, OpenSshServer

QUICK = ("--backend", "numpy-cpu", "--workloads", "roundtrip", "--duration", "0.3",
         "--warmup", "0", "--repeats", "1", "--telemetry-interval", "0")
NOBODY = 65534


def host_for(server: OpenSshServer, **overrides) -> HostConfig:
    base = HostConfig(name="testhost", kind="ssh", address="127.0.0.1", port=server.port,
                      user=server.user, identity_file=str(server.user_key),
                      known_hosts=str(server.known_hosts), python=REMOTE_PYTHON)
    return replace(base, **overrides)


def put_bundle(root: Path) -> Path:
    """The client's bundle in `root`, as an upload leaves it (private), with its MANIFEST."""
    bundle = engine_bundle()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = root / bundle.dir_name
    for rel, data in bundle.files:
        (target / rel).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
    (target / MANIFEST_NAME).write_bytes(bundle.manifest())
    target.chmod(0o700)
    return target


def plant(path: Path, marker: Path) -> None:
    """Put code that leaves `marker` when it runs at the top of a bundle file (as an attacker
    would: the MANIFEST is left as it was)."""
    path.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + path.read_text())


def tampered_bundle(root: Path, marker: Path) -> Path:
    target = put_bundle(root)
    plant(target / "engine" / "__init__.py", marker)     # imported by `python -m engine`
    return target


def deployed_files(target: Path) -> dict[str, bytes]:
    return {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.name != MANIFEST_NAME}


async def run_once(launcher: SshLauncher):
    session = await launcher.start(LaunchRequest(engine_args=QUICK))
    events = [e async for e in session.events()]
    return events, [e.message for e in events if isinstance(e, Status)]


# ---- cache folders that another user could write, or that are not ours: refused ----------

@pytest.mark.sshd
@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
async def test_cache_root_writable_by_others_is_refused_in_one_line(sshd, tmp_path, mode):
    root = tmp_path / "engine-cache"
    marker = tmp_path / "marker"
    tampered_bundle(root, marker)          # what another user who can write there left
    root.chmod(mode)
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    try:
        with pytest.raises(LaunchError) as info:
            await launcher.start(LaunchRequest(engine_args=QUICK))
    finally:
        await launcher.close()
    msg = str(info.value)
    who = {0o770: "group", 0o707: "others", 0o777: "group and others"}[mode]
    assert msg.startswith(f"ssh testhost: engine cache {root} is writable by {who} (mode "
                          f"{mode:04o}); refused"), msg
    assert "\n" not in msg
    assert not marker.exists()
    assert stat.S_IMODE(root.stat().st_mode) == mode        # left as found, for the user to see


@pytest.mark.sshd
async def test_cache_root_of_another_user_is_refused(sshd, tmp_path):
    root = tmp_path / "engine-cache"
    marker = tmp_path / "marker"
    target = tampered_bundle(root, marker)
    for path in (root, *root.rglob("*")):
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    root.chmod(0o755)
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    try:
        with pytest.raises(LaunchError) as info:
            await launcher.prepare()             # the check on its own refuses it too
    finally:
        await launcher.close()
    msg = str(info.value)
    assert msg.startswith(f"ssh testhost: engine cache {root} belongs to uid {NOBODY}, not to "
                          f"you (uid {os.getuid()}); refused"), msg
    assert "\n" not in msg and not marker.exists() and target.is_dir()


@pytest.mark.sshd
async def test_a_writable_folder_above_the_cache_is_refused(sshd, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)                          # no sticky bit: others may rename our cache
    root = shared / "engine-cache"
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    try:
        with pytest.raises(LaunchError) as info:
            await launcher.start(LaunchRequest(engine_args=QUICK))
    finally:
        await launcher.close()
    assert str(info.value) == (f"ssh testhost: engine cache {root}: the folder above it, {shared}, "
                               f"is writable by group and others (mode 0777); refused")
    assert not root.exists()


# ---- bundles that are not the client's: never run, replaced --------------------------------

@pytest.mark.sshd
@pytest.mark.parametrize("fleet", [False, True], ids=["check-then-upload", "check-and-start"])
async def test_tampered_bundle_file_never_runs_and_is_replaced(sshd, tmp_path, fleet):
    root = tmp_path / "engine-cache"
    marker = tmp_path / "marker"
    target = tampered_bundle(root, marker)
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    if fleet:
        launcher.use_fleet_settings(max_connects=4)   # start() checks and starts in one command
    else:
        await launcher.prepare()                      # the check alone, then the upload
    try:
        events, notes = await run_once(launcher)
    finally:
        await launcher.close()
    assert events[-1].outcome == COMPLETED, events[-1].message
    assert not marker.exists()
    assert any(f"engine bundle {target} was not used (its files are not the client's engine "
               in n and "set aside; uploading a fresh copy" in n for n in
               notes + launcher.messages), notes
    assert any("uploaded" in n for n in notes)
    assert deployed_files(target) == dict(engine_bundle().files)
    assert [p.name for p in root.iterdir()] == [target.name]      # the bad copy is gone


@pytest.mark.sshd
async def test_symlinked_bundle_folder_is_replaced_and_its_target_left_alone(sshd, tmp_path):
    root = tmp_path / "engine-cache"
    marker = tmp_path / "marker"
    elsewhere = tampered_bundle(tmp_path / "elsewhere", marker)
    root.mkdir(mode=0o700)
    link = root / elsewhere.name
    link.symlink_to(elsewhere)
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    try:
        events, notes = await run_once(launcher)
    finally:
        await launcher.close()
    assert events[-1].outcome == COMPLETED, events[-1].message
    assert not marker.exists()
    assert any(f"engine bundle {link} was not used (it is a symlink): set aside" in n for n in notes)
    assert not link.is_symlink() and link.is_dir()
    assert (elsewhere / "engine" / "__init__.py").is_file()       # not followed, not removed


@pytest.mark.sshd
async def test_symlinked_file_in_a_bundle_is_replaced(sshd, tmp_path):
    root = tmp_path / "engine-cache"
    marker = tmp_path / "marker"
    target = put_bundle(root)
    outside = tmp_path / "outside.py"
    outside.write_bytes((target / "engine" / "__init__.py").read_bytes())
    plant(outside, marker)
    (target / "engine" / "__init__.py").unlink()
    (target / "engine" / "__init__.py").symlink_to(outside)
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    try:
        events, notes = await run_once(launcher)
    finally:
        await launcher.close()
    assert events[-1].outcome == COMPLETED, events[-1].message
    assert not marker.exists() and outside.is_file()
    assert any("(engine/__init__.py is a symlink): set aside" in n for n in notes), notes
    assert not (target / "engine" / "__init__.py").is_symlink()


@pytest.mark.sshd
async def test_bundle_changed_after_the_check_is_verified_again_where_it_runs(sshd, tmp_path):
    """The check-then-exec race: a bundle found good by one command and changed before the next
    session starts on the same connection fails that session (one line); nothing of it runs; the
    next session uploads a fresh copy."""
    root = tmp_path / "engine-cache"
    marker = tmp_path / "marker"
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    try:
        events, _ = await run_once(launcher)
        assert events[-1].outcome == COMPLETED
        target = root / engine_bundle().dir_name
        plant(target / "engine" / "__init__.py", marker)
        events, _ = await run_once(launcher)         # same connection: the --exec command
        ended = events[-1]
        assert ended.outcome == FAILED and ended.exit_code == NOT_STARTED
        assert ended.message.startswith(f"engine exited with code {NOT_STARTED} before starting: "
                                        f"gpubench: engine bundle {target} was not used (its files "
                                        f"are not the client's engine"), ended.message
        assert ended.message.endswith("set aside; the engine was not started")
        assert not marker.exists()
        events, notes = await run_once(launcher)
        assert events[-1].outcome == COMPLETED and any("uploaded" in n for n in notes), notes
        assert len(launcher.conns) == 1
    finally:
        await launcher.close()
    assert not marker.exists()


@pytest.mark.sshd
async def test_fresh_upload_is_private(sshd, tmp_path):
    root = tmp_path / "cache-parent" / "engine-cache"
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    try:
        notes = await launcher.prepare()          # checked and uploaded; no engine has run
    finally:
        await launcher.close()
    assert any("uploaded" in n for n in notes)
    target = root / engine_bundle().dir_name
    dirs = [root.parent, root, target, *(p for p in target.rglob("*") if p.is_dir())]
    files = [p for p in target.rglob("*") if p.is_file()]
    assert {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in dirs} == \
        {p.relative_to(tmp_path).as_posix(): "0o700" for p in dirs}
    assert len(files) == len(engine_bundle().files) + 1
    assert [p.name for p in files if p.stat().st_mode & 0o077] == []


@pytest.mark.sshd
async def test_cache_of_an_older_gpubench_is_made_private_and_used(sshd, tmp_path):
    root = tmp_path / "engine-cache"
    target = put_bundle(root)
    for path in (root, target, *(p for p in target.rglob("*") if p.is_dir())):
        path.chmod(0o755)                         # as gpubench made them before
    launcher = SshLauncher(host_for(sshd), cache_root=str(root))
    try:
        events, notes = await run_once(launcher)
    finally:
        await launcher.close()
    assert events[-1].outcome == COMPLETED
    assert any("cache hit" in n for n in notes) and not any("uploaded" in n for n in notes)
    assert stat.S_IMODE(root.stat().st_mode) == stat.S_IMODE(target.stat().st_mode) == 0o700


# ---- the script on its own ------------------------------------------------------------------

def check(root: Path, *extra: str, home: Path | None = None) -> subprocess.CompletedProcess:
    bundle = engine_bundle()
    env = {**os.environ, **({"HOME": str(home)} if home else {})}
    return subprocess.run([sys.executable, "-c", CHECK_SCRIPT, str(root), bundle.dir_name,
                           bundle.digest, *extra], capture_output=True, text=True, timeout=60, env=env)


def verdict(out: subprocess.CompletedProcess) -> dict:
    line = next(ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("GPUBENCH_CHECK "))
    return json.loads(line.split(" ", 1)[1])


@pytest.mark.parametrize("change", ["extra module", "changed byte", "missing file", "fifo",
                                    "pycache of another user", "bundle of another user"])
def test_a_bundle_that_is_not_exactly_the_clients_is_set_aside(tmp_path, change):
    root = tmp_path / "engine-cache"
    target = put_bundle(root)
    init = target / "engine" / "__init__.py"
    if change == "extra module":          # imported before a .py of the same name would be
        (target / "engine" / "plan.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    elif change == "changed byte":
        init.write_bytes(init.read_bytes()[:-1] + b" ")
    elif change == "missing file":
        init.unlink()
    elif change == "fifo":                # never hangs the check
        os.mkfifo(target / "engine" / "pipe.py")
    elif change == "pycache of another user":
        (target / "engine" / "__pycache__").mkdir()
        (target / "engine" / "__pycache__" / "plan.cpython-311.pyc").write_bytes(b"")
        os.chown(target / "engine" / "__pycache__" / "plan.cpython-311.pyc", NOBODY, NOBODY)
    else:
        os.chown(target, NOBODY, NOBODY)
    got = verdict(check(root))
    assert got["deployed"] is None and got["replaced"].startswith(f"engine bundle {target} was not used (")
    assert not target.exists() and list(root.iterdir()) == []


def test_pycache_written_by_the_engine_is_not_part_of_the_digest(tmp_path):
    root = tmp_path / "engine-cache"
    target = put_bundle(root)
    (target / "engine" / "__pycache__").mkdir()
    (target / "engine" / "__pycache__" / "plan.cpython-311.pyc").write_bytes(b"compiled")
    assert verdict(check(root))["deployed"] == str(target)


def test_sticky_folder_above_the_cache_is_fine(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)                  # as /tmp: others cannot rename what is ours there
    target = put_bundle(shared / "engine-cache")
    assert verdict(check(shared / "engine-cache"))["deployed"] == str(target)


def test_symlinked_cache_root_is_judged_by_the_folder_it_names(tmp_path):
    real = tmp_path / "real-cache"
    target = put_bundle(real)
    (tmp_path / "link").symlink_to(real)  # e.g. ~/.cache on another disk
    assert verdict(check(tmp_path / "link"))["deployed"] == str(target)
    real.chmod(0o777)
    assert verdict(check(tmp_path / "link"))["cache_error"].startswith(
        f"engine cache {real} is writable by group and others")


def test_a_refusal_naming_a_folder_with_a_newline_stays_one_line(tmp_path):
    root = tmp_path / "engine\ncache"
    root.mkdir()
    root.chmod(0o777)
    error = verdict(check(root))["cache_error"]
    assert error.startswith(f"engine cache {tmp_path}/engine\\ncache is writable by group and others")
    assert "\n" not in error
    refused = check(root, "--exec", "true")
    assert refused.returncode == NOT_STARTED and refused.stderr.count("\n") == 1


def test_exec_mode_runs_only_the_verified_bundle(tmp_path):
    root = tmp_path / "engine-cache"
    marker = tmp_path / "marker"
    target = put_bundle(root)
    ran = check(root, "--exec", sys.executable, "-c", "import os; print(os.getcwd())")
    assert ran.returncode == 0 and ran.stdout.strip() == str(target)
    plant(target / "engine" / "__init__.py", marker)
    argv = [sys.executable, "-c", "import engine"]     # would run the planted code
    refused = check(root, "--exec", *argv)
    assert refused.returncode == NOT_STARTED and refused.stdout == ""
    assert refused.stderr.startswith(f"gpubench: engine bundle {target} was not used (its files")
    assert not marker.exists()
    again = check(root, "--exec", *argv)                # set aside: nothing there now
    assert again.returncode == NOT_STARTED and "is not there" in again.stderr
    assert not marker.exists()


def test_check_imports_nothing_from_the_home_folder(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "json.py").write_text(f"open({str(tmp_path / 'marker')!r}, 'w').write('ran')\n")
    out = subprocess.run([sys.executable, "-c", CHECK_SCRIPT], capture_output=True, text=True,
                         cwd=home, timeout=60)
    assert out.stdout.startswith("GPUBENCH_CHECK ") and not (tmp_path / "marker").exists()


# ---- a second local user: the cache in their home, seen through the CLI --------------------

@pytest.fixture(scope="module")
def other_user(tmp_path_factory):
    """A second local user (useradd) with a home under /tmp, a python they can run and a private
    sshd that lets the test key log in as them. Removed afterwards (userdel)."""
    import secrets
    import shutil
    import tempfile
    from tests.support.sshd import sshd_missing_reason
    if sshd_missing_reason() or shutil.which("useradd") is None:
        pytest.skip("needs root, sshd and useradd to make a second user")
    base = Path(tempfile.mkdtemp(prefix="gpubench-user-", dir="/tmp"))
    base.chmod(0o755)                    # the user reaches their home and the authorized keys
    name = f"gpbt{secrets.token_hex(3)}"
    home = base / "home"
    home.mkdir()
    added = subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", "-p", "*", name],
                           capture_output=True, text=True)
    if added.returncode != 0:
        shutil.rmtree(base)
        pytest.skip(f"useradd failed: {added.stderr.strip()}")
    server = None
    try:
        import pwd
        uid = pwd.getpwnam(name).pw_uid
        os.chown(home, uid, uid)
        home.chmod(0o700)
        from tests.scenarios.remote_pythons import numpy_only_python
        python, why = numpy_only_python(base / "python")     # theirs to run (the venv's is not)
        if python is None:
            pytest.skip(why)
        server = OpenSshServer.start(base / "sshd")
        yield name, uid, home, server, python
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.sshd
def test_cli_refuses_a_cache_another_user_made_in_one_line(other_user, tmp_path):
    name, uid, home, server, python = other_user
    marker = home / "marker"                       # where the user's processes may write
    (home / ".cache").mkdir(mode=0o700)
    os.chown(home / ".cache", uid, uid)
    root = home / ".cache" / "gpubench"            # made by root, not by the user: readable
    tampered_bundle(root, marker)                  # by them, never theirs to trust
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (tmp_path / "config.toml").write_text(f"""
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip"]
duration_s = 0.3
warmup_s = 0
repeats = 1
trials = 1
backend = "numpy-cpu"
[hosts.other]
kind = "ssh"
address = "127.0.0.1"
port = {server.port}
user = "{name}"
identity_file = "{server.user_key}"
known_hosts = "{server.known_hosts}"
python = "{python}"
[scenarios.remote]
title = "remote"
launcher = "ssh"
host = "other"
""")
    done = subprocess.run([REMOTE_PYTHON, "-m", "gpubench.cli", "--config", str(tmp_path / "config.toml"),
                           "run", "remote"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode != 0
    ours = [ln for ln in done.stderr.splitlines() if "engine cache" in ln]
    assert len(ours) == 1, done.stderr
    assert ours[0].rstrip().endswith(
        f"ssh other: engine cache {root} belongs to uid 0, not to you (uid {uid}); refused: another "
        f"user could have put code there (look at it, remove it and run again)"), done.stderr
    assert "Traceback" not in done.stderr and not marker.exists()


def test_remote_scripts_keep_to_old_syntax():
    """They run on whatever python3 the host has, before its version is known."""
    import ast
    from scenarios.ssh.bundle import SUPERVISOR_SOURCE
    for source in (CHECK_SCRIPT, SUPERVISOR_SOURCE):
        ast.parse(source, feature_version=(3, 6))
