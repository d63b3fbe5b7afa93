"""`python -m engine`: arguments → plan → backend → hello → workloads → done.

stdout carries protocol v1 lines only (engine/protocol.py); stderr is for humans.
Exit codes: 0 ok, 1 a workload failed, 2 bad arguments or no GPU, 130 SIGINT,
143 SIGTERM.
"""
import time

_T_MAIN_NS = time.monotonic_ns()  # first thing: the init workload's children report it

import sys  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from .signals import die_with_parent
    die_with_parent()
    if "--init-child" in argv:
        from .child import child_main
        return child_main(argv, _T_MAIN_NS)
    from .lifecycle import run_engine
    return run_engine(argv, t0=_T_MAIN_NS / 1e9)


if __name__ == "__main__":
    sys.exit(main())
