"""HAMi-core (libvgpu.so), the real GPU proxy of scenario 3, built and installed on the GPU machine.

    python -m tests.support.hami                 # build from vendor-cache/, install, print the commit
    python -m tests.support.hami --tarball PATH  # another copy of the source tarball

A test fixture, not part of gpubench (its code never enters ours): it lives beside the fake
driver because the GPU tests (tests/gpu/test_hami.py) stand on it and the GPU machine runs
the checkout's tests, not an installed gpubench. The GPU machine has no network, so the
tarball travels with the checkout in the ignored folder vendor-cache/ (copied from
../shared/vendor/). The build is exactly ../shared/vendor/README.md's: CMake 4 needs
CMAKE_POLICY_VERSION_MINIMUM; a Debug build as upstream's build.sh makes it (a release build
hides the hook symbols and intercepts nothing); the library goes to /usr/local/vgpu/libvgpu.so
because HAMi's dlsym hook looks for itself there (or at $CUDA_REDIRECT) and intercepts nothing
from anywhere else; /tmp/vgpulock is the folder it locks in.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "vendor-cache"
SEARCH = (CACHE, REPO / "shared" / "vendor", REPO.parent / "shared" / "vendor")
TARBALL_GLOB = "hami-core-*.tar.gz"
INSTALL_DIR = Path("/usr/local/vgpu")
LIBRARY = INSTALL_DIR / "libvgpu.so"
COMMIT_FILE = INSTALL_DIR / "libvgpu.commit"      # the commit the installed library came from
LOCK_DIR = Path("/tmp/vgpulock")
CMAKE_FLAGS = ("-DCMAKE_POLICY_VERSION_MINIMUM=3.5", "-DCMAKE_BUILD_TYPE=Debug",
               "-DDLSYM_HOOK_ENABLE=1", "-DMULTIPROCESS_LIMIT_ENABLE=1",
               "-DHOOK_MEMINFO_ENABLE=1", "-DHOOK_NVML_ENABLE=1")
# Exported by a Debug build with the dlsym hook; a release build hides them.
HOOK_SYMBOLS = ("dlsym", "cuLaunchKernel", "cuMemAlloc_v2", "cuGetProcAddress_v2")


class HamiError(RuntimeError):
    """One line for the user: what failed and where its log is."""


def find_tarball(explicit: str | os.PathLike | None = None) -> Path:
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise HamiError(f"no HAMi-core tarball at {path}")
        return path
    for folder in SEARCH:
        found = sorted(folder.glob(TARBALL_GLOB)) if folder.is_dir() else []
        if found:
            return found[-1]
    raise HamiError(f"no {TARBALL_GLOB} in {', '.join(map(str, SEARCH))}: copy "
                    "../shared/vendor/hami-core-*.tar.gz into vendor-cache/ and carry it")


def commit_of(tarball: Path) -> str:
    """hami-core-8f3a89c.tar.gz -> 8f3a89c (the tarball has no .git; its name says the commit)."""
    m = re.fullmatch(r"hami-core-([0-9a-f]{7,40})\.tar\.gz", tarball.name)
    if m is None:
        raise HamiError(f"{tarball.name}: the name does not carry a commit (hami-core-<commit>.tar.gz)")
    return m.group(1)


def installed_commit() -> str | None:
    try:
        return COMMIT_FILE.read_text().strip() or None
    except OSError:
        return None


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        lines = log.read_text(errors="replace").strip().splitlines() or [""]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[-1])  # the cause
        raise HamiError(f"`{' '.join(cmd[:2])}` failed ({proc.returncode}): {first.strip()} "
                        f"(whole log: {log})")


def missing_hooks(library: Path) -> list[str] | None:
    """Hook symbols the library does not export (None when nm is not there to tell)."""
    nm = shutil.which("nm")
    if nm is None:
        return None
    out = subprocess.run([nm, "-D", "--defined-only", str(library)], capture_output=True,
                         text=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.split()}
    return [s for s in HOOK_SYMBOLS if s not in defined]


def build(tarball: Path, jobs: int | None = None) -> Path:
    """Unpack into vendor-cache/ and build; the built library's path."""
    commit = commit_of(tarball)
    work = CACHE / f"build-{commit}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        if hasattr(tarfile, "data_filter"):      # Python >= 3.12 (and backports): no escapes
            tar.extractall(work, filter="data")
        else:
            tar.extractall(work)
    source = work / "hami-core"
    build_dir = source / "build"
    build_dir.mkdir()
    log = CACHE / f"hami-build-{commit}.log"
    log.write_text("")
    _run(["cmake", "..", *CMAKE_FLAGS], build_dir, log)
    _run(["make", f"-j{jobs or os.cpu_count() or 4}", "vgpu"], build_dir, log)
    built = build_dir / "libvgpu.so"
    if not built.is_file():
        raise HamiError(f"the build made no {built} (whole log: {log})")
    missing = missing_hooks(built)
    if missing:
        raise HamiError(f"{built} does not export {', '.join(missing)}: not a Debug build "
                        f"with the dlsym hook, it would intercept nothing (log: {log})")
    return built


def install(built: Path, commit: str) -> Path:
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    tmp = INSTALL_DIR / ".libvgpu.so.new"
    shutil.copy2(built, tmp)
    os.replace(tmp, LIBRARY)          # a process loading it never sees half a file
    COMMIT_FILE.write_text(commit + "\n")
    return LIBRARY


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.hami", description=__doc__.split("\n")[0])
    p.add_argument("--tarball", help="HAMi-core source tarball (default: vendor-cache/hami-core-*.tar.gz)")
    p.add_argument("--jobs", type=int, default=None, help="make -j (default: every CPU)")
    a = p.parse_args(argv)
    try:
        tarball = find_tarball(a.tarball)
        commit = commit_of(tarball)
        library = install(build(tarball, a.jobs), commit)
    except (HamiError, OSError) as exc:
        print(f"hami: {exc}", file=sys.stderr)
        return 1
    print(f"hami-core {commit} (Debug, dlsym hook) installed at {library}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
