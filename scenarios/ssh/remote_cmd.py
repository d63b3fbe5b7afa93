"""The SSH launcher's remote command lines, where configuration is data and never code.

Every value (the python path, the cache folder, environment values, the LD_PRELOAD path, engine
arguments) is one shell word (`shlex.quote`; the command word quoted even where shlex would not,
so that `A=b` is not an assignment of the shell), so the remote shell reads no `;`, `$(...)`,
quote or newline in it. The engine's environment is set by the supervisor (gpubench_supervise.py), from
`-u NAME -- NAME=value ... -- COMMAND`: `--` before the assignments, so none is read as an option,
and `--` after them, so no word of the command is read as an assignment (env(1) would take a
python path holding "=" for one). A name that is not a shell variable name is refused before
anything is sent.

    check_command(py)                                  the remote check alone
    check_command(py, root, bundle)                    ... and the bundle's state in the cache
    check_command(py, root, bundle, argv, need_cupy)   check, then become argv in the bundle
    exec_command(py, root, bundle, argv)               verify the bundle, then become argv in it
    script_command(py, script, args)                   `py -S -c script args...` (scenarios/mps.py)
"""
from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.redact import ENV_NAME

from .bundle import SUPERVISOR_NAME, Bundle

CHECK_SCRIPT = (Path(__file__).parent / "remote_check.py").read_text()


def env_assignments(env: Mapping[str, str]) -> list[str]:
    """NAME=value words for the supervisor; ValueError (one line) for a name that is not a
    variable name (one that begins with `-` or holds `=` would be read as something else)."""
    for name in env:
        if not ENV_NAME.fullmatch(name):
            raise ValueError(f"environment variable name {name!r} is not valid (letters, digits "
                             f"and _, not starting with a digit)")
    return [f"{name}={value}" for name, value in env.items()]


def engine_argv(python: str, env: Mapping[str, str], preload: str | None,
                engine_args: Iterable[str]) -> list[str]:
    """The supervisor with the engine's environment, then the engine, as run in the bundle's
    folder (unquoted). PYTHONSAFEPATH is unset: `-m engine` must find the bundle's engine/."""
    env = {**env, "PYTHONUNBUFFERED": "1"}
    if preload:
        env["LD_PRELOAD"] = preload
    argv = [python, "-S", SUPERVISOR_NAME, "-u", "PYTHONSAFEPATH", "--", *env_assignments(env),
            "--", python, "-m", "engine", *engine_args]
    for word in argv:     # exec cuts an argument at NUL: the rest of the line would be lost
        if "\0" in word:
            raise ValueError(f"{word!r} holds a NUL character, which no command line can carry")
    return argv


def _words(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in args)


def _command_word(python: str) -> str:
    """The python path as the line's first word: never an assignment (`A=b` is one unquoted)."""
    word = shlex.quote(python)
    return f"'{word}'" if "=" in word and not word.startswith("'") else word


def script_command(python: str, script: str, args: Iterable[str]) -> str:
    """`python -S -c SCRIPT ARGS...`, shell-quoted: a standalone stdlib script and its words."""
    return f"{_command_word(python)} -S -c {shlex.quote(script)} " + _words(*args)


def check_command(python: str, cache_root: str | None = None, bundle: Bundle | None = None,
                  start: list[str] | None = None, need_cupy: bool = False) -> str:
    """`python -c CHECK_SCRIPT [ROOT NAME DIGEST [--start NEED_CUPY ARGV...]]`, shell-quoted."""
    cmd = f"{_command_word(python)} -c {shlex.quote(CHECK_SCRIPT)}"
    if cache_root is not None and bundle is not None:
        cmd += " " + _words(cache_root, bundle.dir_name, bundle.digest)
        if start:
            cmd += " " + _words("--start", "1" if need_cupy else "0", *start)
    return cmd


def exec_command(python: str, cache_root: str, bundle: Bundle, argv: list[str]) -> str:
    """`python -S -c CHECK_SCRIPT ROOT NAME DIGEST --exec ARGV...`: argv runs only in the verified
    bundle (-S: the check needs no site packages in this mode)."""
    return (f"{_command_word(python)} -S -c {shlex.quote(CHECK_SCRIPT)} "
            + _words(cache_root, bundle.dir_name, bundle.digest, "--exec", *argv))
