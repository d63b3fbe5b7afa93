"""gpubench's remote check: remote_cmd.py sends this file's text as `python -c TEXT ARGS`.

    (no ARGS)                             what the interpreter has: GPUBENCH_CHECK {json} on stdout
    ROOT NAME DIGEST                      ... and whether the engine bundle NAME in the cache folder
                                          ROOT (absolute, or relative to the home) is the client's
    ROOT NAME DIGEST --start CUPY ARGV    the same, the verdict on stderr; when the engine can run
                                          here (CUPY "1": cupy is needed) ARGV replaces this process
                                          in the bundle's folder
    ROOT NAME DIGEST --exec ARGV          no package check: verify the bundle, then exec ARGV in it

A bundle is used only as found on disk by this process, the one that then execs the engine: the
cache folder is ours and private (0700) with nothing above it that another user could rename; the
bundle is a real folder (no symlink anywhere in it), ours, and the SHA-256 of its files equals
DIGEST, the one the client computed from its own engine/ (bundle_digest() below, shared with
bundle.py). A bundle that fails is set aside and removed, so the client uploads a fresh
copy; a cache folder that fails is refused in one line. The engine runs in the folder this check
opened (fchdir), never in whatever a path names a moment later. Old syntax on purpose: it runs
on any python3, before the version check. Modules a mode has no use for are imported where they
are needed: each start on the host pays for its imports. The client imports this module for
bundle_digest(), MANIFEST, NOT_STARTED and one_line().
"""
import sys

if __name__ == "__main__":   # `-c` puts the current folder (the home) first: import nothing from it
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]

import errno  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402

MANIFEST = "MANIFEST.json"    # the upload's list of files: informative, never part of the digest
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK   # NONBLOCK: a FIFO never hangs the check
NOT_STARTED = 126             # --exec: the bundle could not be used, nothing was run


def bundle_digest(files):
    """SHA-256 hex over (relative posix path, content) pairs sorted by path."""
    import hashlib
    h = hashlib.sha256()
    for rel_path, data in sorted(files):
        h.update(os.fsencode(rel_path) + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


class Refused(Exception):
    """The cache folder cannot be used safely; the message is one line for the user."""


def one_line(text):
    """A text that may hold a path with newlines in it, as one line for the user."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def writers(mode):
    return " and ".join(w for bit, w in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others"))
                        if mode & bit)


def open_root(root):
    """(real path, fd) of the cache folder, fd None when it does not exist yet (the upload makes
    it, private). Refused when another user could change what is in it: it is not ours or is
    writable by group or others, or a folder above it is neither ours nor root's or is writable
    by others without the sticky bit (as /tmp has: others cannot rename what is ours there)."""
    if not os.path.isabs(root):
        root = os.path.join(os.path.expanduser("~"), root)
    real = os.path.realpath(root)
    me = os.getuid()
    above = os.path.dirname(real)
    while True:
        try:
            st = os.lstat(above)
        except FileNotFoundError:
            st = None                 # made by the upload, private
        if st is not None and st.st_uid not in (0, me):
            raise Refused("engine cache %s: the folder above it, %s, belongs to uid %d (neither you "
                          "nor root); refused" % (real, above, st.st_uid))
        if st is not None and st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise Refused("engine cache %s: the folder above it, %s, is writable by %s (mode %04o); "
                          "refused" % (real, above, writers(st.st_mode), stat.S_IMODE(st.st_mode)))
        if above == "/":
            break
        above = os.path.dirname(above)
    try:
        fd = os.open(real, OPEN_DIR)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return real, None
        raise Refused("engine cache %s cannot be opened as a folder (%s); refused" % (real, e.strerror))
    st = os.fstat(fd)
    problem = None
    if st.st_uid != me:
        problem = "belongs to uid %d, not to you (uid %d)" % (st.st_uid, me)
    elif st.st_mode & 0o022:
        problem = "is writable by %s (mode %04o)" % (writers(st.st_mode), stat.S_IMODE(st.st_mode))
    if problem:
        os.close(fd)
        raise Refused("engine cache %s %s; refused: another user could have put code there (look "
                      "at it, remove it and run again)" % (real, problem))
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.fchmod(fd, 0o700)          # ours and not writable by others (an older gpubench's 0755)
    return real, fd


def walk(dir_fd, prefix, files, me, compiled):
    """Why the folder open as dir_fd cannot be trusted, or None; its files go to `files`. Every
    entry must be ours and a plain file or folder (a symlink is refused, never followed). The
    digest covers every file but the MANIFEST and what Python writes in __pycache__ (the engine's
    own runs compile the checked sources there; a private folder keeps others out)."""
    for name in os.listdir(dir_fd):
        rel = prefix + name
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if st.st_uid != me:
            return "%s belongs to uid %d" % (rel, st.st_uid)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(name, OPEN_DIR, dir_fd=dir_fd)
            try:
                problem = walk(fd, rel + "/", files, me, compiled or name == "__pycache__")
            finally:
                os.close(fd)
            if problem:
                return problem
        elif not stat.S_ISREG(st.st_mode):
            return "%s is %s" % (rel, "a symlink" if stat.S_ISLNK(st.st_mode) else "not a plain file")
        elif not compiled and rel != MANIFEST:
            with os.fdopen(os.open(name, OPEN_FILE, dir_fd=dir_fd), "rb") as f:
                if os.fstat(f.fileno()).st_ino != st.st_ino:
                    return "%s was replaced while it was checked" % rel
                files.append((rel, f.read()))
    return None


def bundle_problem(fd, digest):
    """Why the bundle open as fd is not the client's, or None (then it is made private: an older
    gpubench left bundles 0755, only we could write them)."""
    me = os.getuid()
    st = os.fstat(fd)
    if st.st_uid != me:
        return "it belongs to uid %d" % st.st_uid
    if st.st_mode & 0o022:
        return "it is writable by %s" % writers(st.st_mode)
    files = []
    try:
        problem = walk(fd, "", files, me, False)
    except OSError as e:
        return "%s: %s" % (e.filename or "a file", e.strerror)
    if problem:
        return problem
    found = bundle_digest(files)
    if found != digest:
        return "its files are not the client's engine (digest %s, expected %s)" % (found[:16], digest[:16])
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.fchmod(fd, 0o700)
    return None


def set_aside(root_fd, real, name, why):
    """Move a bundle that failed out of the way (then remove it): the client uploads a fresh one.
    Refused when it cannot be moved: it must never run, and cannot be replaced."""
    aside = ".tmp-%s-bad-%s" % (name, os.urandom(4).hex())   # the upload's clean-up knows .tmp-engine-*
    try:
        os.rename(name, aside, src_dir_fd=root_fd, dst_dir_fd=root_fd)
    except OSError as e:
        raise Refused("engine bundle %s was not used (%s) and cannot be set aside (%s); refused"
                      % (os.path.join(real, name), why, e.strerror))
    try:
        if stat.S_ISDIR(os.stat(aside, dir_fd=root_fd, follow_symlinks=False).st_mode):
            import shutil
            shutil.rmtree(os.path.join(real, aside), ignore_errors=True)   # follows no symlink
        else:
            os.unlink(aside, dir_fd=root_fd)
    except OSError:
        pass                          # a later upload's clean-up of stale folders tries again


def find_bundle(root, name, digest):
    """(fd, path, note): the bundle opened when it is exactly the client's, else (None, None, why
    it was not used, or None when there is none). Raises Refused (see open_root)."""
    real, root_fd = open_root(root)
    if root_fd is None:
        return None, None, None
    try:
        try:
            fd = os.open(name, OPEN_DIR, dir_fd=root_fd)
            why = bundle_problem(fd, digest)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None, None, None
            mode = os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_mode
            fd, why = None, ("it is a symlink" if stat.S_ISLNK(mode) else
                             "it is not a folder" if not stat.S_ISDIR(mode) else e.strerror)
        if why is None:
            return fd, os.path.join(real, name), None
        if fd is not None:
            os.close(fd)
        set_aside(root_fd, real, name, why)
        return None, None, "engine bundle %s was not used (%s): set aside" % (os.path.join(real, name), why)
    finally:
        os.close(root_fd)


def run(fd, argv):
    """Become argv in the verified bundle's folder."""
    os.fchdir(fd)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        sys.stderr.write("cannot start %s: %s\n" % (argv[0], e.strerror))
        sys.exit(127)


def exec_mode(root, name, digest, argv):
    try:
        fd, _, why = find_bundle(root, name, digest)
    except (Refused, OSError) as e:
        fd, why = None, str(e) if isinstance(e, Refused) else "engine cache %s: %s" % (root, e.strerror)
    if fd is None:
        sys.stderr.write("gpubench: %s; the engine was not started\n"
                         % one_line(why or "engine bundle %s/%s is not there" % (root, name)))
        sys.exit(NOT_STARTED)
    run(fd, argv)


def version(dist_names):
    try:
        from importlib import metadata
    except ImportError:
        return None
    for name in dist_names:
        try:
            return name + " " + metadata.version(name)
        except Exception:
            pass
    try:
        for d in metadata.distributions():
            n = (d.metadata["Name"] or "").lower()
            if n.startswith("cupy"):
                return n + " " + d.version
    except Exception:
        pass
    return None


def dist_version(spec, mod, dist_names):
    # "dist version" from the DIST-VERSION.dist-info (or .egg-info) folder beside the module:
    # no import of the module nor of importlib.metadata (~50 ms); else importlib.metadata.
    try:
        where = list(spec.submodule_search_locations or []) or [spec.origin]
        for entry in sorted(os.listdir(os.path.dirname(where[0]))):
            for ext in (".dist-info", ".egg-info"):
                parts = entry[:-len(ext)].split("-")
                dist = parts[0].lower().replace("_", "-")
                if entry.endswith(ext) and len(parts) > 1 and (
                        dist in dist_names or (not dist_names and dist.startswith(mod))):
                    return dist + " " + parts[1]
    except Exception:
        pass
    return version(dist_names)


def find(mod, dist_names):
    import importlib.util
    spec = importlib.util.find_spec(mod)
    return {"ok": spec is not None,
            "version": dist_version(spec, mod, dist_names) if spec is not None else None}


def packages(start_mode):
    r = {"python": "%d.%d.%d" % tuple(sys.version_info[:3]), "executable": sys.executable,
         "packages": {}, "driver": None}
    for mod, dists in (("numpy", ("numpy",)), ("cupy", ()), ("pynvml", ("nvidia-ml-py", "pynvml"))):
        try:
            r["packages"][mod] = find(mod, dists)
        except Exception as e:
            r["packages"][mod] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    n = r["packages"]["numpy"]
    try:
        # A check on its own proves numpy imports. One that starts the engine (--start) goes by
        # its presence: the engine imports it first thing, and a broken numpy is then the
        # engine's one-line error; this saves a second numpy import (~0.2 s of CPU) per start.
        if not start_mode or "error" in n:
            import numpy
            r["packages"]["numpy"] = {"ok": True, "version": numpy.__version__}
        elif n["ok"]:
            n["version"] = (n["version"] or "").split(" ")[-1] or None
        else:
            n["error"] = "ModuleNotFoundError: No module named 'numpy'"
    except Exception as e:
        r["packages"]["numpy"] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    try:
        with open("/proc/driver/nvidia/version") as f:
            r["driver"] = f.read(400)
    except Exception:
        pass
    return r


def main(args):
    if len(args) > 3 and args[3] == "--exec":
        return exec_mode(args[0], args[1], args[2], args[4:])
    import json               # not before: --exec, once per later session, has no use for it
    start_mode = len(args) > 5 and args[3] == "--start"
    r = packages(start_mode)
    fd = None
    if len(args) >= 3:               # the engine bundle: there, and the client's?
        try:
            fd, r["deployed"], note = find_bundle(args[0], args[1], args[2])
            if note:
                r["replaced"] = one_line(note)
        except Refused as e:
            r["deployed"], r["cache_error"] = None, one_line(str(e))
        except OSError as e:
            r["deployed"], r["cache_error"] = None, one_line("engine cache %s: %s" % (args[0], e.strerror))
    if not start_mode:
        sys.stdout.write("GPUBENCH_CHECK " + json.dumps(r) + "\n")
        return
    # the verdict goes first, on stderr, whether the engine starts or not
    r["started"] = bool(sys.version_info[:2] >= (3, 9) and r["packages"]["numpy"]["ok"] and fd is not None
                        and (args[4] != "1" or r["packages"].get("cupy", {}).get("ok")))
    sys.stderr.write("GPUBENCH_CHECK " + json.dumps(r) + "\n")
    sys.stderr.flush()
    if r["started"]:
        run(fd, args[5:])
    sys.exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
