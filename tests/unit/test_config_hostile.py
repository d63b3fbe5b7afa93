"""Hostile config.toml files (tests/hostile/config/, one case a file): the real `gpubench` CLI
refuses each at load with exit 2 and one line naming the file, the key and the problem.

A case file starts with `# expect: <substring of that line>` lines; every leading `#` line is
stripped and the rest is the config. The next case is one more file.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from gpubench import cli

CASES = sorted((Path(__file__).resolve().parents[1] / "hostile" / "config").glob("*.toml"))


def split_case(path: Path) -> tuple[list[str], str]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    expects, i = [], 0
    while i < len(lines) and lines[i].startswith("#"):
        if lines[i].startswith("# expect:"):
            expects.append(lines[i][len("# expect:"):].strip())
        i += 1
    return expects, "".join(lines[i:])


def test_the_corpus_is_there():
    assert len(CASES) >= 60 and all(split_case(p)[0] for p in CASES)


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_hostile_config_is_one_line_at_load(case, tmp_path, capsys, monkeypatch):
    expects, body = split_case(case)
    config = tmp_path / "config.toml"
    config.write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["--config", "config.toml", "list"])
    err = capsys.readouterr().err
    ours = [ln for ln in err.splitlines() if ln.startswith("config.toml: ")]
    assert code == 2 and len(ours) == 1, err
    for expect in expects:
        assert expect in ours[0], ours[0]
    assert not (tmp_path / "results").exists()  # nothing ran, nothing was written
