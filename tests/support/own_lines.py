"""What our code wrote on stderr, without the warnings that dependencies print there.

A test of a one-line error asserts on our line; a DeprecationWarning that a new release of a
dependency prints at import time (two lines: `file:line: Category: message` and the source
line, indented) must never decide it.
"""
from __future__ import annotations

import re

# Python's warnings.formatwarning: "path:lineno: SomeWarning: message"
_WARNING = re.compile(r"^\S.*:\d+: [A-Za-z_][\w.]*Warning: ")


def own_lines(stderr: str) -> list[str]:
    """The non-blank lines of `stderr`, less Python warning records (and their source lines)."""
    out: list[str] = []
    in_warning = False
    for line in stderr.splitlines():
        if _WARNING.match(line):
            in_warning = True
            continue
        if in_warning and line[:1].isspace():
            continue                    # the warning's source line
        in_warning = False
        if line.strip():
            out.append(line)
    return out
