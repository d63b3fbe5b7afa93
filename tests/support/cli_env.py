"""The CLI as the tests drive it in process: a config.toml in a temporary folder that gpubench
finds (cwd and $GPUBENCH_CONFIG), and one call of `gpubench` with what it printed."""
from __future__ import annotations

from pathlib import Path

from gpubench import cli
from results.store import Store

# The local baseline every CLI test starts from; a test adds its own scenarios below it.
BARE_METAL_CONFIG = """
[store]
data_dir = "data"
[defaults]
workloads = ["roundtrip"]
[scenarios.bare-metal]
title = "1. Baseline (Bare Metal)"
launcher = "local"
"""


def use_config(tmp_path: Path, monkeypatch, text: str) -> Store:
    """Write `text` as tmp_path/config.toml, make it the one gpubench reads, and return the
    store of its data folder (tmp_path/data: the configs here say data_dir = "data")."""
    (tmp_path / "config.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUBENCH_CONFIG", str(tmp_path / "config.toml"))
    return Store(tmp_path / "data")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`gpubench ARGV...` in process: its exit code, stdout and stderr."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
