"""Hostile config.toml files (tests/hostile/config/, one case a file): the real `gpubench` CLI
refuses each at load with exit 2 and one line naming the file, the key and the problem.

A case file starts with `# expect: <substring of that line>` lines; every leading `#` line is
stripped and the rest is the config (tests/hostile/__init__.py reads them). The next case is
one more file.
"""
from __future__ import annotations

import pytest

from gpubench import cli
from tests.hostile import case_id, cases

CASES = cases("config", "*.toml")


def test_the_corpus_is_there():
    assert len(CASES) >= 60 and all(case.expect for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hostile_config_is_one_line_at_load(case, tmp_path, capsys, monkeypatch):
    expects = case.expect
    config = tmp_path / "config.toml"
    config.write_text(case.body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["--config", "config.toml", "list"])
    err = capsys.readouterr().err
    ours = [ln for ln in err.splitlines() if ln.startswith("config.toml: ")]
    assert code == 2 and len(ours) == 1, err
    for expect in expects:
        assert expect in ours[0], ours[0]
    assert not (tmp_path / "results").exists()  # nothing ran, nothing was written
