"""Hostile command-line numbers (tests/hostile/cli/, one case a file, one argument a line): the
real CLI refuses each with exit 2 and one line, with the ranges config.toml uses."""
from __future__ import annotations

import pytest

from gpubench import cli
from tests.hostile import case_id, cases

CASES = cases("cli", "*.args")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hostile_argument_is_one_line(case, tmp_path, capsys, monkeypatch):
    expects, body = case.expect, case.body
    assert expects
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GPUBENCH_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    code = cli.main(body.splitlines())
    err = capsys.readouterr().err
    ours = [ln for ln in err.splitlines() if ln.startswith("gpubench: ")]
    assert code == 2 and len(ours) == 1, err
    for expect in expects:
        assert expect in ours[0], ours[0]
    assert not any(tmp_path.iterdir())   # nothing ran, nothing was written
