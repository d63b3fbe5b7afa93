"""The plan flags declared once (gpubench/plan_flags.py): every command that takes them
gets the same types, ranges and choices, with its own defaults and help where it has them."""
from __future__ import annotations

import argparse

import pytest

from gpubench.cli.base import Parser, UsageError
from gpubench.plan_flags import PLAN_FLAGS, add_plan_flags


def parser(**kwargs) -> argparse.ArgumentParser:
    p = Parser(prog="gpubench x")
    add_plan_flags(p, **kwargs)
    return p


def test_all_flags_parse_with_their_types_and_default_to_none():
    p = parser()
    assert vars(p.parse_args([])) == {name: None for name in PLAN_FLAGS}
    args = p.parse_args(["--trials", "3", "--backend", "numpy-cpu", "--workloads", "launch,h2d",
                         "--duration", "0.5", "--warmup", "0", "--repeats", "2"])
    assert (args.trials, args.backend, args.workloads, args.duration, args.warmup,
            args.repeats) == (3, "numpy-cpu", "launch,h2d", 0.5, 0.0, 2)


@pytest.mark.parametrize("argv, expect", [
    (["--trials", "0"], "argument --trials: must be at least 1 (got 0)"),
    (["--duration", "nan"], "argument --duration: must be a finite number (got nan)"),
    (["--warmup", "-1"], "argument --warmup: must be at least 0 (got -1.0)"),
    (["--repeats", "10001"], "argument --repeats: must be at most 10000 (got 10001)"),
    (["--backend", "cuda"], "argument --backend: invalid choice: 'cuda'"),
])
def test_out_of_range_values_are_refused_in_one_line(argv, expect):
    with pytest.raises(UsageError) as exc:
        parser().parse_args(argv)
    assert str(exc.value).startswith(expect)


def test_a_command_picks_flags_defaults_and_help_in_a_group():
    p = Parser(prog="gpubench x")
    group = p.add_argument_group("plan")
    add_plan_flags(group, flags=("repeats", "backend"), defaults={"backend": "auto"},
                   help_text={"repeats": "results per workload per host"})
    assert vars(p.parse_args([])) == {"backend": "auto", "repeats": None}
    text = p.format_help()
    assert "results per workload per host" in text and "--trials" not in text
    assert text.index("--backend") < text.index("--repeats")       # PLAN_FLAGS's order


def test_a_default_or_help_for_a_flag_not_taken_is_a_bug_caught_at_once():
    with pytest.raises(ValueError, match="not a plan flag of this command: trials"):
        parser(flags=("backend",), defaults={"trials": 1})
    with pytest.raises(ValueError, match="not a plan flag of this command: seed"):
        parser(flags=("seed",))


@pytest.mark.parametrize("command,flags", [
    ("run", ("trials", "workloads", "backend", "duration", "warmup", "repeats")),
    ("selftest", ("trials", "workloads", "backend", "duration", "warmup", "repeats")),
    ("fleet", ("trials", "workloads", "backend", "duration", "warmup", "repeats")),
    ("check", ("backend", "duration", "repeats")),
])
def test_every_planning_command_takes_the_shared_flags(command, flags, capsys):
    """One declaration: each command's plan flags refuse what config.toml refuses, with the
    same words, because they are the same arguments."""
    from gpubench.cli.base import EXIT_USAGE
    from gpubench.cli.entry import main
    for flag in flags:
        bad, words = {"trials": ("0", "must be at least 1"), "repeats": ("0", "must be at least 1"),
                      "duration": ("0", "must be at least 0.01"),
                      "warmup": ("-1", "must be at least 0"),
                      "backend": ("gpu", "invalid choice"), "workloads": (None, None)}[flag]
        if bad is None:
            continue
        assert main([command, f"--{flag}", bad]) == EXIT_USAGE
        assert f"argument --{flag}: {words}" in capsys.readouterr().err
