"""The hostile corpora (tests/hostile/<kind>/, one case a file) and their one reader.

A case file starts with its header, every leading line that starts with `#`:

    # expect: <text>      one or more; what the test looks for (stripped of blanks)
    # <key>: <value>      a parameter of the case, e.g. `# exit: 1` (a key is one word)
    # <anything else>     a comment

and the rest of the file, byte for byte, is the input (its final newline included). A
`# expect:` line below the header is an error, not a silent extra case.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
EXPECT = b"# expect:"
HEADER_ITEM = re.compile(r"# ([A-Za-z][A-Za-z0-9_-]*):(.*)")


@dataclass(frozen=True)
class Case:
    name: str                   # the file's stem: the test id
    path: Path
    expect: list[str]           # the `# expect:` texts, in file order, stripped
    header: dict[str, str] = field(default_factory=dict)   # the other `# key: value` lines
    body_bytes: bytes = b""     # the input exactly as the file holds it

    @property
    def body(self) -> str:
        """The input as text (UTF-8)."""
        return self.body_bytes.decode("utf-8")


def read(path: Path) -> Case:
    """One case file. Lines are split on "\\n" alone, so the body keeps its bytes exactly."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    expect: list[str] = []
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].startswith(b"#"):
        line = lines[i].decode("utf-8")
        if line.startswith("# expect:"):
            expect.append(line.removeprefix("# expect:").strip())
        elif m := HEADER_ITEM.fullmatch(line):
            assert m[1] not in header, f"{path}: `# {m[1]}:` twice"
            header[m[1]] = m[2].strip()
        i += 1
    assert not any(ln.startswith(EXPECT) for ln in lines[i:]), \
        f"{path}: a `# expect:` line below the header"
    return Case(path.stem, path, expect, header, b"\n".join(lines[i:]))


def cases(kind: str, pattern: str = "*") -> list[Case]:
    """Every case of tests/hostile/<kind>/ whose file name matches `pattern`, sorted by file
    name; each has at least one `# expect:` line."""
    paths = sorted(p for p in (ROOT / kind).glob(pattern) if p.is_file())
    assert paths, f"no case in {ROOT / kind} matches {pattern!r}"
    out = [read(p) for p in paths]
    for case in out:
        assert case.expect, f"{case.path}: no `# expect:` line"
    return out


def case_id(case: Case) -> str:
    """pytest ids: `@pytest.mark.parametrize("case", CASES, ids=case_id)`."""
    return case.name
