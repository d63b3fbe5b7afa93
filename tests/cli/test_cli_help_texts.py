"""Every command's --help reads right: each option says what it does, and no `%%` shows."""
from __future__ import annotations

import argparse

import pytest

from gpubench.cli.entry import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_of_every_command_has_help():
    missing = []
    for name, parser in [("gpubench", build_parser()), *_commands().items()]:
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                   argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_prints_no_doubled_percent(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gpubench")
    assert "%%" not in out


def test_top_level_help_prints_no_doubled_percent(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "selftest" in out and "%%" not in out
