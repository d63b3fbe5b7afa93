"""The corpus of hostile result files (tests/hostile/results/, one case a file).

Each file starts with `# expect: <substring of the one line>` lines (other `# ` lines are
comments); the rest is written into a store as `<file name>` (the case's name is the file
stem, and the document inside uses it as its id unless the case is about the id)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOSTILE = Path(__file__).resolve().parents[1] / "hostile" / "results"


@dataclass(frozen=True)
class Case:
    name: str              # the file name written into the store
    expect: tuple[str, ...]
    body: bytes


def cases() -> list[Case]:
    out = []
    for path in sorted(HOSTILE.glob("*.json")):
        lines = path.read_bytes().split(b"\n")
        expect = []
        while lines and lines[0].startswith(b"#"):
            text = lines.pop(0).decode()
            if text.startswith("# expect:"):
                expect.append(text.removeprefix("# expect:").strip())
        assert expect, f"{path.name}: no `# expect:` line"
        out.append(Case(path.name, tuple(expect), b"\n".join(lines)))
    return out


def plant(data_dir: Path, case: Case) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / case.name
    path.write_bytes(case.body)
    return path
