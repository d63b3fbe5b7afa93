"""Start and stop a private MPS control daemon on the target: a standalone script (stdlib only,
Python >= 3.9) that scenarios/mps.py runs with `python -S -c <this file> ...` on this machine or,
as the same words, over the ssh connection, so both launchers share one lifecycle.

    start CONTROL TIMEOUT_S [OWNER_PID | hold LINGER_S]
                                 a private folder (0700) with pipe/ and log/, `CONTROL -d` in it,
                                 then wait (bounded) until the daemon's control pipe exists.
                                 The folder records its owner process (gpubench-owner.pid):
                                 OWNER_PID (a local launcher: the gpubench process), or with
                                 `hold` (a remote launcher) this script itself, which then stays
                                 and holds the folder (see `hold`). With an owner, first every
                                 folder of ours whose owner has gone (a run killed with SIGKILL,
                                 which no handler sees) has its daemon stopped and is removed:
                                 "swept" in the reply
    hold  FOLDER LINGER_S        become the owner of a folder that `start` made, whose daemon is
                                 up (its holder's connection dropped while the run goes on)
    stop  FOLDER CONTROL TIMEOUT_S   `echo quit | CONTROL`, wait (bounded) for the daemon's pid to
                                 go, then remove the folder (only one that `start` made)

A holder stays until its stdin ends: sshd closes it when the channel or the connection closes
(a run that stops, or one killed: its kernel closes the connection), and sends no signal to a
session without a terminal. Then it lingers up to LINGER_S while the folder is still its own, so
that a live run that lost only this connection can hold the folder again (`hold`) before any
start takes it for a leftover; a folder that `stop` removed, or another holder took, ends it at
once.

It prints one line `GPUBENCH_MPS {json}`: {"ok": true, "folder", "pipe", "log"} or {"ok": false,
"error": "<one line>"}, and nothing else on stdout. The daemon is started without
CUDA_VISIBLE_DEVICES: a daemon started with it remaps the devices, and a client that keeps the
same selection then names the wrong GPU (NVIDIA's MPS guide); each engine picks its GPU with its
own CUDA_VISIBLE_DEVICES.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MARK = "GPUBENCH_MPS"
PREFIX = "gpubench-mps-"
CONTROL_FILE = "control"                      # the daemon's pipe in CUDA_MPS_PIPE_DIRECTORY
PID_FILE = "nvidia-cuda-mps-control.pid"      # written there by the daemon
OWNER_FILE = "gpubench-owner.pid"             # the process whose life is the run's here


def reply(**fields):
    sys.stdout.write(MARK + " " + json.dumps(fields) + "\n")
    sys.stdout.flush()


def last_line(text):
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def daemon_env(folder):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["CUDA_MPS_PIPE_DIRECTORY"] = os.path.join(folder, "pipe")
    env["CUDA_MPS_LOG_DIRECTORY"] = os.path.join(folder, "log")
    return env


def resolve(control):
    if os.sep in control:
        return control if os.path.isfile(control) and os.access(control, os.X_OK) else None
    return shutil.which(control)


def read_text(path):
    try:
        with open(path, errors="replace") as fh:
            return fh.read(1 << 16)
    except OSError:
        return ""


def run_control(exe, args, folder, stdin_text, timeout):
    """Run the control program with its output in a file, not a pipe: `-d` forks a daemon that
    may keep inherited descriptors open, and a pipe would then never reach end of file."""
    out_path = os.path.join(folder, "log", "gpubench-control.out")
    with open(out_path, "w+b") as out:
        proc = subprocess.Popen([exe, *args], stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.STDOUT, env=daemon_env(folder), cwd=folder)
        try:
            proc.communicate(stdin_text.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, read_text(out_path)
    return proc.returncode, read_text(out_path)


def ours(folder):
    """A folder `start` made: named gpubench-mps-*, a folder, owned by this user."""
    real = os.path.realpath(folder)
    return (os.path.basename(real).startswith(PREFIX) and os.path.isdir(real)
            and os.stat(real).st_uid == os.getuid())


def owner_of(folder):
    """The pid its owner file names; 0 where there is none (a folder being made, or one made by
    a gpubench that recorded no owner) or it does not read."""
    try:
        return int(read_text(os.path.join(folder, OWNER_FILE)).strip() or 0)
    except ValueError:
        return 0


def set_owner(folder, pid):
    """Written whole or not at all: a sweep never reads half a pid."""
    path = os.path.join(folder, OWNER_FILE)
    with open(path + ".new", "w") as fh:
        fh.write(f"{pid}\n")
    os.replace(path + ".new", path)


def sweep(exe, timeout):
    """Stop the daemons of our folders whose owner process has gone, and remove the folders;
    the folders swept. A folder without an owner is left alone."""
    swept = []
    root = tempfile.gettempdir()
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        try:
            if not ours(folder):
                continue
        except OSError:
            continue
        owner = owner_of(folder)
        if owner <= 0 or alive(owner):
            continue
        stop_daemon(exe, folder, timeout)
        shutil.rmtree(folder, ignore_errors=True)
        swept.append(folder)
    return swept


def start(control, timeout, owner=None, linger=None):
    """`owner`: the owner's pid; `linger` (no owner): this script holds the folder."""
    exe = resolve(control)
    if exe is None:
        reply(ok=False, error=f"{control} not found (is the CUDA driver's MPS installed? "
                              f"set the scenario's mps.control to its path)")
        return
    holding = linger is not None
    swept = sweep(exe, timeout) if owner or holding else []
    folder = tempfile.mkdtemp(prefix=PREFIX)       # mode 0700, ours
    if owner or holding:
        set_owner(folder, os.getpid() if holding else owner)
    pipe, log = os.path.join(folder, "pipe"), os.path.join(folder, "log")
    os.mkdir(pipe, 0o700)
    os.mkdir(log, 0o700)
    code, out = run_control(exe, ["-d"], folder, "", timeout)
    if code != 0:
        why = last_line(out) or ("no answer" if code is None else f"exit code {code}")
        shutil.rmtree(folder, ignore_errors=True)
        reply(ok=False, error=f"{control} -d failed: {why}")
        return
    deadline = time.monotonic() + timeout
    while not os.path.exists(os.path.join(pipe, CONTROL_FILE)):
        if time.monotonic() > deadline:
            why = last_line(read_text(os.path.join(log, "control.log")))
            stop_daemon(exe, folder, 2.0)
            shutil.rmtree(folder, ignore_errors=True)
            reply(ok=False, error=f"the MPS control daemon did not come up: no control pipe "
                                  f"after {timeout:g} s" + (f" ({why})" if why else ""))
            return
        time.sleep(0.02)
    reply(ok=True, folder=folder, pipe=pipe, log=log, swept=swept)
    if holding:
        hold_until_released(folder, linger)


def hold(folder, linger):
    """Take over a folder whose daemon is up, then hold it."""
    pipe = os.path.join(folder, "pipe")
    if not ours(folder) or not os.path.exists(os.path.join(pipe, CONTROL_FILE)):
        reply(ok=False, error=f"the MPS daemon of {folder} is gone")
        return
    set_owner(folder, os.getpid())
    reply(ok=True, folder=folder, pipe=pipe, log=os.path.join(folder, "log"), swept=[])
    hold_until_released(folder, linger)


def hold_until_released(folder, linger):
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    deadline = time.monotonic() + linger
    while time.monotonic() < deadline and owner_of(folder) == os.getpid():
        time.sleep(0.1)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has stopped: nobody may reap it here
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def stop_daemon(exe, folder, timeout):
    """`echo quit | CONTROL`; then the daemon must be gone within `timeout`, else it is
    terminated. Returns a note when it had to be, or the quit was refused."""
    try:
        pid = int(read_text(os.path.join(folder, "pipe", PID_FILE)).strip() or 0)
    except ValueError:
        pid = 0
    code, out = run_control(exe, [], folder, "quit\n", timeout)
    note = "" if code == 0 else f"quit: {last_line(out) or f'exit code {code}'}"
    if pid <= 0:
        return note
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                break
            time.sleep(0.5)
        note = (note + "; " if note else "") + f"daemon {pid} did not quit: terminated"
    return note


def stop(folder, control, timeout):
    if not ours(folder):
        reply(ok=False, error=f"not an MPS folder of ours: {folder}")
        return
    real = os.path.realpath(folder)
    exe = resolve(control)
    note = stop_daemon(exe, real, timeout) if exe else f"{control} not found to stop the daemon"
    shutil.rmtree(real, ignore_errors=True)
    reply(ok=not note, error=note)


def main(argv):
    try:
        if len(argv) in (3, 4) and argv[0] == "start":
            start(argv[1], float(argv[2]), int(argv[3]) if len(argv) == 4 else None)
        elif len(argv) == 5 and argv[0] == "start" and argv[3] == "hold":
            start(argv[1], float(argv[2]), linger=float(argv[4]))
        elif len(argv) == 3 and argv[0] == "hold":
            hold(argv[1], float(argv[2]))
        elif len(argv) == 4 and argv[0] == "stop":
            stop(argv[1], argv[2], float(argv[3]))
        else:
            reply(ok=False, error="usage: start CONTROL TIMEOUT_S [OWNER_PID | hold LINGER_S] | "
                                  "hold FOLDER LINGER_S | stop FOLDER CONTROL TIMEOUT_S")
    except Exception as exc:  # one line back, never a traceback the caller cannot read
        reply(ok=False, error=f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
