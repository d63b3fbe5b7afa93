"""Compile a workload's calls straight into the timed loop (the technique of `timeit`).

A workload that describes one operation as a list of plain calls, e.g.
`[(kernel, (grid, block, args)), (stream.synchronize, ())]`, gets a hot loop
whose body is exactly those calls, with every function and argument bound as
a local variable (default parameters), so the timed loop costs what a
hand-written loop costs plus one clock read, one store, one increment and one
compare. `make_bare` builds the same statements with no instrumentation at all:
the reference loop the overhead benchmark compares against.
"""
from __future__ import annotations

import time
from typing import Any, Callable

Call = tuple[Callable[..., Any], tuple]

_HOT = '''
def hot(mv, i, boundary, {params}):
    t1 = 0
    try:
        while True:
{body}
            t1 = mv[i] = pc()
            i += 1
            if t1 >= boundary:
                return i, t1, False
    except IndexError:
        if i < len(mv):
            raise
        return i, t1, True
'''

_OP = '''
def op({params}):
{body}
'''

_BARE = '''
def bare(count, {params}):
    for _ in range(count):
{body}
'''


def _bind(calls: list[Call], indent: int) -> tuple[str, dict]:
    lines, names = [], {}
    for k, (fn, args) in enumerate(calls):
        names[f"f{k}"] = fn
        arg_names = []
        for j, value in enumerate(args):
            names[f"a{k}_{j}"] = value
            arg_names.append(f"a{k}_{j}")
        lines.append(" " * indent + f"f{k}({', '.join(arg_names)})")
    return "\n".join(lines or [" " * indent + "pass"]), names


def _compile(template: str, name: str, calls: list[Call], indent: int, extra: dict) -> Callable:
    body, names = _bind(calls, indent)
    names.update(extra)
    params = ", ".join(f"{n}={n}" for n in names)
    source = template.format(params=params, body=body)
    scope: dict = dict(names)
    exec(compile(source, f"<gpubench {name}>", "exec"), scope)  # noqa: S102 - our own template
    return scope[name]


def make_hot(calls: list[Call]) -> Callable:
    """hot(mv, i, boundary) -> (i, t1, chunk_full): run until t1 >= boundary or mv is full."""
    return _compile(_HOT, "hot", calls, 12, {"pc": time.perf_counter_ns})


def make_op(calls: list[Call]) -> Callable[[], None]:
    """One operation as a zero-argument function (warm-up, tools)."""
    return _compile(_OP, "op", calls, 4, {})


def make_bare(calls: list[Call]) -> Callable[[int], None]:
    """bare(count): the same calls `count` times, nothing else."""
    return _compile(_BARE, "bare", calls, 8, {})
