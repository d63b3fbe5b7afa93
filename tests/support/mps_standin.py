"""A stand-in for NVIDIA's `nvidia-cuda-mps-control`, for tests on machines without a GPU.

It behaves as the real program's interface does, as far as gpubench uses it:
- `-d`: refuses ("An instance of this daemon is already running", exit 1) when the pipe
  folder (CUDA_MPS_PIPE_DIRECTORY, default /tmp/nvidia-mps) already has a `control`; else
  forks a daemon (own session) and exits 0. The daemon writes nvidia-cuda-mps-control.pid and
  a `control` pipe there, a control.log in CUDA_MPS_LOG_DIRECTORY, and runs a process whose
  argv[0] is `nvidia-cuda-mps-server` (the real daemon starts it at the first client; this one
  starts it at once, since a numpy-cpu engine never becomes a CUDA client).
- no argument: reads commands on stdin and passes them to the daemon; `quit` stops the daemon
  and its server and removes the control pipe and pid file.

MPS_STANDIN_MODE selects a broken daemon: `never-up` (exits 0, never makes the pipe),
`no-server` (a daemon without a server process), `deaf` (one that ignores `quit` and stops only
on SIGTERM), or a slow one: `slow` (`-d` takes a second). A daemon left by a failed test exits on its
own after MAX_LIFE_S.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

MAX_LIFE_S = 300.0


def folders() -> tuple[str, str]:
    return (os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps",
            os.environ.get("CUDA_MPS_LOG_DIRECTORY") or "/var/log/nvidia-mps")


def log(log_dir: str, text: str) -> None:
    with open(os.path.join(log_dir, "control.log"), "a") as fh:
        fh.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n")


def daemon(pipe: str, log_dir: str, mode: str) -> None:
    control = os.path.join(pipe, "control")
    pid_file = os.path.join(pipe, "nvidia-cuda-mps-control.pid")
    server = None
    if mode != "no-server":
        server = subprocess.Popen(["nvidia-cuda-mps-server", str(int(MAX_LIFE_S))],
                                  executable="/bin/sleep", stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(*_) -> None:
        if server is not None:
            server.kill()
            server.wait()
        for path in (control, pid_file):
            try:
                os.unlink(path)
            except OSError:
                pass
        log(log_dir, "exit")
        os._exit(0)

    threading.Timer(MAX_LIFE_S, finish).start()
    signal.signal(signal.SIGTERM, finish)
    with open(pid_file, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    os.mkfifo(control, 0o600)
    log(log_dir, "control daemon started")
    fd = os.open(control, os.O_RDWR)        # read end that never sees end of file
    with os.fdopen(fd, "r") as commands:
        for line in commands:
            log(log_dir, f"command {line.strip()}")
            if line.strip() == "quit" and mode != "deaf":
                finish()


def start_daemon() -> int:
    pipe, log_dir = folders()
    mode = os.environ.get("MPS_STANDIN_MODE", "")
    if os.path.exists(os.path.join(pipe, "control")):
        print("An instance of this daemon is already running")
        return 1
    if mode == "never-up":
        return 0
    if mode == "slow":
        time.sleep(1.0)
    if os.fork() > 0:
        return 0
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        daemon(pipe, log_dir, mode)
    finally:
        os._exit(0)


def client() -> int:
    pipe, _ = folders()
    text = sys.stdin.read()
    try:
        fd = os.open(os.path.join(pipe, "control"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        print("Cannot find MPS control daemon process")
        return 1
    with os.fdopen(fd, "w") as out:
        out.write(text if text.endswith("\n") else text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(start_daemon() if sys.argv[1:] == ["-d"] else client())
