"""EngineArgs and the engine's parser are one declaration: same options, same defaults, and a
command line survives the trip argv -> EngineArgs -> argv."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from engine.engine_args import LIST_FIELDS, EngineArgs
from engine.plan import UsageError, build_parser, parse_args


def _options() -> dict[str, argparse.Action]:
    return {a.dest: a for a in build_parser()._actions if a.dest != "help"}


def test_every_parser_option_is_a_field_and_every_field_an_option():
    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    assert set(_options()) == fields


def test_each_field_is_named_as_its_option_and_has_the_parsers_default():
    for name, action in _options().items():
        assert action.option_strings == ["--" + name.replace("_", "-")]
    assert EngineArgs.from_argv([]) == EngineArgs()
    defaults = EngineArgs()
    for name, action in _options().items():
        value = getattr(defaults, name)
        expected = action.default
        if name in LIST_FIELDS:
            value = ",".join(value)
        assert value == expected, name


def test_flags_are_flags_and_only_flags_are_bools():
    for name, action in _options().items():
        is_flag = isinstance(action, argparse._StoreTrueAction)
        assert is_flag == isinstance(getattr(EngineArgs(), name), bool), name


ODD = EngineArgs(backend="numpy-cpu", workloads=("launch", "p2p"), duration=0.1, warmup=0,
                 repeats=7, telemetry_interval=0, roundtrip_size="4KiB", sizes=("1MiB",),
                 cpus="4-7,9", memory=("pinned",), launch_modes=("async",), min_window=0.123456789,
                 cv_limit=1e6, gemm_size=256, init_procs=("2", "4"), seed=-3, device="-odd",
                 list_devices=True, sample_interval=0.05, init_child=True)


@pytest.mark.parametrize("args", [EngineArgs(), ODD,
                                  EngineArgs(device="GPU-ab12", duration=2.5e-7, seed=2**40)])
@pytest.mark.parametrize("full", [False, True])
def test_round_trip(args, full):
    assert EngineArgs.from_argv(args.to_argv(full=full)) == args


def test_to_argv_writes_only_what_differs_unless_full():
    assert EngineArgs().to_argv() == []
    args = EngineArgs(workloads=("launch", "p2p"), device="GPU-a", duration=2, warmup=0.3)
    assert args.to_argv() == ["--workloads", "launch,p2p", "--duration", "2", "--device", "GPU-a"]
    full = EngineArgs(backend="numpy-cpu").to_argv(full=True)
    assert full[:10] == ["--backend", "numpy-cpu", "--workloads", ",".join(EngineArgs().workloads),
                         "--duration", "1", "--warmup", "0.3", "--repeats", "3"]
    assert "--device" not in full and "--list-devices" not in full and "--cpus" not in full
    assert EngineArgs(list_devices=True).to_argv() == ["--list-devices"]
    assert EngineArgs(device="-x").to_argv() == ["--device=-x"]


def test_comma_lists_are_tuples_of_text_however_given():
    assert EngineArgs(workloads="roundtrip, h2d,").workloads == ("roundtrip", "h2d")
    assert EngineArgs(init_procs=[1, 8]).init_procs == ("1", "8")
    assert EngineArgs.from_argv(["--sizes=4KiB,1MiB"]).sizes == ("4KiB", "1MiB")


def test_what_the_engine_reads_from_to_argv_is_what_was_built():
    plan = parse_args(EngineArgs(backend="numpy-cpu", workloads=("h2d",), sizes=("4KiB",),
                                 memory=("pageable",), duration=0.5).to_argv())
    assert (plan.backend, plan.workloads, plan.sizes, plan.memory, plan.duration) == \
        ("numpy-cpu", ["h2d"], [4096], ["pageable"], 0.5)


def test_from_argv_refuses_what_the_engine_refuses_in_its_words():
    with pytest.raises(UsageError, match="unrecognized arguments: --nope"):
        EngineArgs.from_argv(["--nope"])
    with pytest.raises(UsageError, match="invalid float value"):
        EngineArgs.from_argv(["--duration", "soon"])
    with pytest.raises(UsageError, match="invalid choice"):
        EngineArgs.from_argv(["--backend", "tpu"])
