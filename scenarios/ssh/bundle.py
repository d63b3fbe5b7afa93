"""What is shipped to a remote host: the engine bundle, every ``engine/**/*.py`` file plus the
supervisor (gpubench_supervise.py, beside this module), content-hashed.

Its SHA-256 over (relative path, content) (remote_check.bundle_digest, the same function the
remote check uses on the host) names the remote folder ``engine-<hash16>`` in the cache: an
unchanged engine is never uploaded twice, a changed one lands beside the old one.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from scenarios.base import ENGINE_DIR

from .remote_check import bundle_digest

SUPERVISOR_NAME = "gpubench_supervise.py"
SUPERVISOR_SOURCE = (Path(__file__).parent / SUPERVISOR_NAME).read_text()
PID_MARKER = "GPUBENCH_PID"             # the supervisor's first stderr line: its process group


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
