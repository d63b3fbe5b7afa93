"""`gpubench`: the headless command line.

Output is a rich table on a terminal and plain tab-separated text in a pipe. Every problem
the user can cause ends as one line on stderr and a non-zero exit code, never a traceback
(`--debug` shows one for bugs). Exit codes: 0 ok; 1 `compare` verdict at or worse than
--fail-on (a NOT COMPARABLE or INVALID metric always is), a `run` whose sessions failed, or a
failed `selftest`; 2 bad input or configuration; 3 a `selftest` not resolved, or a `fleet`
outlier (--fail-on-outlier); 130 interrupted.

    entry.py       main() (the console script): the parser of every command, errors → exit codes
    base.py        exit codes, UsageError, one-line messages, the store, RUN references
    tables.py      rich table on a terminal, tab-separated lines in a pipe
    run.py         run
    show.py        list, show (run_view.py: how `show` prints a run)
    compare.py     compare
    transfer.py    import, export
    report.py      report (comparison.md)
    remove.py      delete, cleanup
    recover.py     recover
selftest, check and fleet are registered from gpubench.selftest, gpubench.checks and
gpubench.fleet; the plan flags all these commands share are declared in gpubench/plan_flags.py. What the app does too (newest run, legacy import, comparison.md, compare with
checks) is in gpubench.services.
"""
from gpubench.cli.entry import main

__all__ = ["main"]
