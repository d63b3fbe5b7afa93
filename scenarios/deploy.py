"""Ship the engine to a remote host: a content-hashed bundle in a private cache directory.

The bundle is every ``engine/**/*.py`` file plus a small supervisor script
(`gpubench_supervise.py`, below). Its SHA-256 over (relative path, content)
names the remote directory ``~/.cache/gpubench/engine-<hash16>``: an unchanged
engine is never uploaded twice, a changed one lands beside the old one.

Nothing in the cache is trusted for being there: the remote check
(remote_check.py, run by the same process that then execs the engine) uses a
bundle only when the cache folder is the user's and private and the digest of
the bundle's files on disk equals this client's. deploy() runs when that check
found no usable bundle. Upload is atomic: directories 0700 and files 0600 go
to ``.tmp-engine-<hash16>-<random>``, renamed into place last. Two clients
racing to upload the same bundle both succeed: the loser removes its temporary
copy (the winner's is checked like any other before it runs).
"""
from __future__ import annotations

import json
import posixpath
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from .base import ENGINE_DIR
from .remote_check import MANIFEST as MANIFEST_NAME
from .remote_check import bundle_digest

CACHE_ROOT = ".cache/gpubench"          # relative to the remote home directory
SUPERVISOR_NAME = "gpubench_supervise.py"
PID_MARKER = "GPUBENCH_PID"             # first stderr line of a remote run: its process group

# The remote entry point. Run as `python3 gpubench_supervise.py [-u NAME]... -- [NAME=value]... --
# python3 -m engine ...`: the engine's environment (and only the engine's: LD_PRELOAD of a proxy
# layer) is set here, not by env(1), which takes any later word holding "=" (a python path, say)
# for one more assignment. It makes itself the leader of a process group (so one `kill -- -PGID`
# reaches the engine and everything it starts), reports that group on stderr, and runs the
# engine as its child with stdout passed straight through (no copying: no overhead). It watches
# stdin: sshd closes the session's stdin when the connection drops, and OpenSSH sends no SIGHUP
# to sessions without a terminal, so EOF on stdin is the only sign that nobody is listening any
# more. Then it interrupts the engine (SIGINT, so it writes a partial result nobody reads, then
# SIGTERM, SIGKILL) and leaves nothing behind. Python 3.6 syntax on purpose: it runs before any
# check.
SUPERVISOR_SOURCE = r'''"""gpubench remote supervisor (shipped by scenarios/deploy.py; see there)."""
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
'''


@dataclass(frozen=True)
class Bundle:
    files: tuple[tuple[str, bytes], ...]   # (relative posix path, content), sorted
    digest: str                            # sha256 hex over paths and contents

    @property
    def short(self) -> str:
        return self.digest[:16]

    @property
    def dir_name(self) -> str:
        return f"engine-{self.short}"

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.files)

    def manifest(self) -> bytes:
        return json.dumps({"digest": self.digest,
                           "files": [p for p, _ in self.files]}, indent=1).encode()


def _engine_files(engine_dir: Path) -> list[Path]:
    out = []
    for path in sorted(engine_dir.rglob("*.py")):
        rel = path.relative_to(engine_dir.parent)
        if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
            continue
        out.append(path)
    return out


def _signature(paths: list[Path]) -> tuple:
    sig = []
    for path in paths:
        st = path.stat()
        sig.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(sig)


# engine_dir -> (signature of its files, bundle, when last validated): reading and hashing
# every engine file costs ~5 ms, once per process is enough while the files are unchanged.
_BUNDLES: dict[str, tuple[tuple, "Bundle", float]] = {}
BUNDLE_RECHECK_S = 1.0      # current_bundle() looks at the files' mtimes at most this often


def engine_bundle(engine_dir: Path = ENGINE_DIR) -> Bundle:
    """Collect engine/**/*.py (no caches, no tests) and the supervisor; hash them.

    Cached per process, keyed by the files' paths, mtimes and sizes: an unchanged engine
    is read and hashed once; an edited one (or a new file) makes a new bundle."""
    engine_dir = Path(engine_dir)
    if not (engine_dir / "__init__.py").is_file():
        raise FileNotFoundError(f"no engine package at {engine_dir}")
    paths = _engine_files(engine_dir)
    sig = _signature(paths)
    key = str(engine_dir)
    cached = _BUNDLES.get(key)
    if cached is not None and cached[0] == sig:
        _BUNDLES[key] = (sig, cached[1], time.monotonic())
        return cached[1]
    files: list[tuple[str, bytes]] = []
    for path in paths:
        files.append((path.relative_to(engine_dir.parent).as_posix(), path.read_bytes()))
    files.append((SUPERVISOR_NAME, SUPERVISOR_SOURCE.encode()))
    files.sort()
    bundle = Bundle(tuple(files), bundle_digest(files))
    _BUNDLES[key] = (sig, bundle, time.monotonic())
    return bundle


def current_bundle(engine_dir: Path = ENGINE_DIR) -> Bundle:
    """engine_bundle(), without even looking at the files when they were checked within the
    last BUNDLE_RECHECK_S (a fleet prepares thousands of hosts within seconds)."""
    cached = _BUNDLES.get(str(Path(engine_dir)))
    if cached is not None and time.monotonic() - cached[2] < BUNDLE_RECHECK_S:
        return cached[1]
    return engine_bundle(engine_dir)


STALE_UPLOAD_S = 3600.0   # a temporary upload folder this old was left by a killed client


async def _prune_stale_uploads(sftp, root: str) -> None:
    import time
    try:
        entries = await sftp.readdir(root)
    except Exception:
        return
    for entry in entries:
        name = entry.filename
        mtime = entry.attrs.mtime or 0
        if name.startswith(".tmp-engine-") and time.time() - mtime > STALE_UPLOAD_S:
            try:
                await sftp.rmtree(posixpath.join(root, name), ignore_errors=True)
            except Exception:
                pass


@dataclass(frozen=True)
class Deployment:
    path: str          # absolute remote directory holding engine/ and the supervisor
    uploaded: bool     # False: the cache already had this bundle
    bundle: Bundle

    @property
    def files(self) -> int:
        return len(self.bundle.files)

    @property
    def bytes(self) -> int:
        return self.bundle.size


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


async def deploy(conn, bundle: Bundle, cache_root: str = CACHE_ROOT) -> Deployment:
    """Upload `bundle` into the remote cache over SFTP (the check found none usable there).

    `conn` is an asyncssh client connection. Raises OSError-like asyncssh.SFTPError on
    permission or disk problems; callers phrase them for the user.
    """
    from asyncssh import SFTPAttrs
    private_dir = SFTPAttrs(permissions=PRIVATE_DIR)
    private_file = SFTPAttrs(permissions=PRIVATE_FILE)
    async with conn.start_sftp_client() as sftp:
        home = await sftp.realpath(".")
        root = posixpath.join(home, cache_root) if not cache_root.startswith("/") else cache_root
        target = posixpath.join(root, bundle.dir_name)
        await sftp.makedirs(root, private_dir, exist_ok=True)
        await _prune_stale_uploads(sftp, root)
        tmp = posixpath.join(root, f".tmp-{bundle.dir_name}-{secrets.token_hex(4)}")
        try:
            await sftp.mkdir(tmp, private_dir)
            dirs = sorted({posixpath.dirname(p) for p, _ in bundle.files} - {""})
            for d in dirs:  # sorted: parents before children
                await sftp.makedirs(posixpath.join(tmp, d), private_dir, exist_ok=True)
            for rel_path, data in (*bundle.files, (MANIFEST_NAME, bundle.manifest())):
                async with sftp.open(posixpath.join(tmp, rel_path), "wb", private_file) as f:
                    await f.write(data)
            try:
                await sftp.rename(tmp, target)
            except Exception:
                # Someone else installed the same bundle meanwhile: it is checked before it runs.
                if not await sftp.exists(target):
                    raise
                await sftp.rmtree(tmp, ignore_errors=True)
        except BaseException:
            try:
                await sftp.rmtree(tmp, ignore_errors=True)
            except Exception:
                pass
            raise
        return Deployment(target, True, bundle)
