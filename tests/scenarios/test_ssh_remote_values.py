"""Configuration that reaches the SSH launcher's remote command line is data, never code or options.

Each file of tests/hostile/remote_values/ is one hostile value (`# expect: literal`: it must
arrive as it is). Through the real sshd (conftest.py) it goes at once into every place of the
remote command line that configuration fills: a scenario env value, a proxy env value, the
proxy's LD_PRELOAD path, the remote python's path, the cache folder and an engine argument. The
remote "python" is a wrapper that records the argv and environment it gets, then runs the real
one; the engine's hello shows what the engine itself saw. @MARKER@ in a value is a file that
must never appear, @CANARY@ a folder that must still be there.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from scenarios.config import HostConfig, ProxyLayer, ScenarioConfig
from scenarios.base import LaunchError, LaunchRequest
from scenarios.ssh.bundle import engine_bundle
from scenarios.events import COMPLETED, Hello
from scenarios.registry import request_for
from scenarios.ssh.launcher import SshLauncher
from scenarios.ssh.remote_cmd import check_command, engine_argv
from tests.hostile import Case, case_id, cases
from tests.support.sshd import REMOTE_PYTHON, OpenSshServer

CASES = cases("remote_values", "*.txt")
BAD_NAMES = ["-i", "--unset=PATH", "-u", "A B", "A=B", "", "1A", "A\nB", "A;B", "$(id)", "PATH-X"]

RECORDER = """\
import json, os, sys
log, python, real, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with open(log, "a") as f:
    f.write(json.dumps({"python": python, "argv": args, "env": dict(os.environ)}) + "\\n")
os.execv(real, [real] + args)
"""


def hostile_value(case: Case) -> str:
    """The value: the case's body less its final newline."""
    return case.body.removesuffix("\n")


def host_for(server: OpenSshServer, **overrides) -> HostConfig:
    base = HostConfig(name="testhost", kind="ssh", address="127.0.0.1", port=server.port,
                      user=server.user, identity_file=str(server.user_key),
                      known_hosts=str(server.known_hosts), python=REMOTE_PYTHON)
    return replace(base, **overrides)


def recording_python(where: str, recorder: Path, log: Path) -> str:
    """A "python" at `where` (a path made from the hostile value) that records, then runs the
    real interpreter."""
    Path(where).parent.mkdir(parents=True, exist_ok=True)
    Path(where).write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in (
        REMOTE_PYTHON, "-S", str(recorder), str(log))) + f' "$0" {shlex.quote(REMOTE_PYTHON)} "$@"\n')
    Path(where).chmod(0o755)
    return where


def test_the_corpus_is_there_and_every_case_expects_the_value_as_is():
    assert len(CASES) >= 8
    for case in CASES:
        assert case.expect == ["literal"] and hostile_value(case), case.name


@pytest.mark.sshd
@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_hostile_value_reaches_the_remote_side_as_data(sshd, tmp_path, case):
    marker, canary = tmp_path / "marker", tmp_path / "canary"
    canary.mkdir()
    raw = hostile_value(case)
    value = raw.replace("@MARKER@", str(marker)).replace("@CANARY@", str(canary))
    recorder, log = tmp_path / "recorder.py", tmp_path / "calls.jsonl"
    recorder.write_text(RECORDER)
    python = recording_python(f"{tmp_path}/py-{value}/python3", recorder, log)
    cache = f"{tmp_path}/cache-{value}/c"
    scenario = ScenarioConfig(name="hostile", title="hostile", launcher="ssh", host="testhost",
                              env={"GPUBENCH_HOSTILE": value},
                              proxy=ProxyLayer(preload=value, env={"CUDA_HOSTILE": value}))
    engine_args = ("--list-devices", "--backend", "numpy-cpu", f"--device={value}")
    launcher = SshLauncher(host_for(sshd, python=python), cache_root=cache)
    try:
        session = await launcher.start(request_for(scenario, engine_args))
        events = [e async for e in session.events()]
    finally:
        await launcher.close()
    assert events[-1].outcome == COMPLETED, events[-1].message
    hello = next(e for e in events if isinstance(e, Hello)).data
    assert hello["host"]["env"]["GPUBENCH_HOSTILE"] == value       # what the engine itself saw
    assert hello["host"]["env"]["CUDA_HOSTILE"] == value
    assert hello["plan"]["device"] == value
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert {c["python"] for c in calls} == {python}                 # check, supervisor, engine
    engine = next(c for c in calls if c["argv"][:2] == ["-m", "engine"])
    assert engine["argv"] == ["-m", "engine", *engine_args]
    assert engine["env"]["LD_PRELOAD"] == value
    assert engine["env"]["GPUBENCH_HOSTILE"] == engine["env"]["CUDA_HOSTILE"] == value
    assert (Path(cache) / engine_bundle().dir_name).is_dir()        # the cache where it was named
    assert not marker.exists() and canary.is_dir()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_command_builder_refuses_a_name_that_is_not_a_variable_name(name):
    with pytest.raises(ValueError) as info:
        engine_argv("python3", {"OK": "1", name: "x"}, None, ())
    assert str(info.value) == (f"environment variable name {name!r} is not valid (letters, "
                               f"digits and _, not starting with a digit)")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("place", ["env value", "preload", "engine argument", "python"])
def test_command_builder_refuses_a_nul_character(place):
    value = "a\0; touch /tmp/x"
    with pytest.raises(ValueError) as info:
        engine_argv(value if place == "python" else "python3",
                    {"A": value} if place == "env value" else {},
                    value if place == "preload" else None,
                    (value,) if place == "engine argument" else ())
    assert str(info.value).endswith("holds a NUL character, which no command line can carry")
    assert "\n" not in str(info.value) and "\0" not in str(info.value)


def test_assignments_sit_between_two_double_dashes():
    """`--` before them (no assignment is an option) and after (no word of the command, a python
    path holding "=" say, is an assignment)."""
    argv = engine_argv("/opt/a=b/python3", {"A": "-i", "B_2": "--unset=PATH"}, "/lib/x.so", ("--x",))
    assert argv == ["/opt/a=b/python3", "-S", "gpubench_supervise.py", "-u", "PYTHONSAFEPATH", "--",
                    "A=-i", "B_2=--unset=PATH", "PYTHONUNBUFFERED=1", "LD_PRELOAD=/lib/x.so", "--",
                    "/opt/a=b/python3", "-m", "engine", "--x"]


def test_python_path_is_never_an_assignment_of_the_remote_shell():
    line = check_command("PYTHONPATH=/tmp/x")
    assert shlex.split(line)[0] == "PYTHONPATH=/tmp/x" and line.startswith("'PYTHONPATH=/tmp/x' -c ")


@pytest.mark.parametrize("name", ["-i", "--unset=PATH", "A B"])
async def test_launcher_refuses_a_bad_name_before_connecting(name):
    launcher = SshLauncher(HostConfig(name="h", kind="ssh", address="127.0.0.1", port=1))
    with pytest.raises(LaunchError) as info:
        await launcher.start(LaunchRequest(engine_args=(), env={name: "1"}))
    assert str(info.value) == (f"ssh h: environment variable name {name!r} is not valid (letters, "
                               f"digits and _, not starting with a digit)")
    assert launcher.conns == []                  # nothing was sent anywhere


@pytest.mark.parametrize("args, code, out", [
    (["--", "A=x y", "--", "{py}", "-c", "import os; print(os.environ['A'])"], 0, "x y"),
    (["-u", "HOME", "--", "--", "{py}", "-c", "import os; print('HOME' in os.environ)"], 0, "False"),
    (["--", "A==--", "--", "{py}", "-c", "import os; print(os.environ['A'])"], 0, "=--"),
    (["A=1", "--", "{py}"], 2, ""),                       # no `--` before the assignments
    (["--", "A=1", "{py}"], 2, ""),                       # no `--` after them
    (["--", "NOEQUALS", "--", "{py}"], 2, ""),
    (["--", "A=1", "--"], 2, ""),                         # no command
])
def test_supervisor_reads_its_environment_words_exactly(tmp_path, args, code, out):
    import subprocess
    import sys
    from scenarios.ssh.bundle import SUPERVISOR_NAME, SUPERVISOR_SOURCE
    (tmp_path / SUPERVISOR_NAME).write_text(SUPERVISOR_SOURCE)
    argv = [a.replace("{py}", sys.executable) for a in args]
    # stdin stays open while it runs: its end is the supervisor's sign that the client is gone
    proc = subprocess.Popen([sys.executable, "-S", SUPERVISOR_NAME, *argv], cwd=tmp_path, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    assert (proc.wait(timeout=60), stdout.strip()) == (code, out), stderr
    proc.stdin.close()
    if code == 2:
        assert stderr == "gpubench_supervise: usage: [-u NAME]... -- [NAME=value]... -- COMMAND...\n"
