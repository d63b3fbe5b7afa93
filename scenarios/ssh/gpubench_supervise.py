"""gpubench's remote supervisor, shipped in the engine bundle (scenarios/ssh/bundle.py) and run as

    python3 gpubench_supervise.py [-u NAME]... -- [NAME=value]... -- python3 -m engine ...

The engine's environment (and only the engine's: LD_PRELOAD of a proxy layer) is set here, not
by env(1), which takes any later word holding "=" (a python path, say) for one more assignment.
It makes itself the leader of a process group (so one `kill -- -PGID` reaches the engine and
everything it starts), reports that group on stderr, and runs the engine as its child with
stdout passed straight through (no copying: no overhead). It watches stdin: sshd closes the
session's stdin when the connection drops, and OpenSSH sends no SIGHUP to sessions without a
terminal, so EOF on stdin is the only sign that nobody is listening any more. Then it interrupts
the engine (SIGINT, so it writes a partial result nobody reads, then SIGTERM, SIGKILL) and
leaves nothing behind. Python 3.6 syntax on purpose: it runs before any check.
"""
import os
import signal
import subprocess
import sys
import threading
import time


def say(text):
    # stderr may be a dead pipe (the client went away): never let that stop the clean-up
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def parse(argv):
    """`[-u NAME]... -- [NAME=value]... -- COMMAND...` -> (environment, command) or None."""
    env = dict(os.environ)
    while argv[:1] == ["-u"] and len(argv) > 1:
        env.pop(argv[1], None)
        argv = argv[2:]
    if argv[:1] != ["--"] or "--" not in argv[1:]:
        return None
    end = argv.index("--", 1)
    for word in argv[1:end]:
        name, equals, value = word.partition("=")
        if not equals or not name:
            return None
        env[name] = value
    return env, argv[end + 1:]


def main(argv):
    parsed = parse(argv)
    if parsed is None or not parsed[1]:
        say("gpubench_supervise: usage: [-u NAME]... -- [NAME=value]... -- COMMAND...\n")
        return 2
    env, argv = parsed
    if os.getpgrp() != os.getpid():
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
    say("%s %d\n" % ("GPUBENCH_PID", os.getpgrp()))
    # The group gets SIGINT/SIGTERM from the launcher; the engine handles them, we wait for it.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
    except OSError as exc:
        say("gpubench_supervise: cannot start %s: %s\n" % (argv[0], exc.strerror))
        return 127

    def stop_child():
        for sig, grace in ((signal.SIGINT, 5.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            if child.poll() is not None:
                return
            try:
                child.send_signal(sig)
            except OSError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.05)

    def watch_stdin():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        if child.poll() is None:
            say("gpubench_supervise: client went away; stopping the engine\n")
            stop_child()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:  # pragma: no cover - handler above swallows SIGINT
            continue
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
