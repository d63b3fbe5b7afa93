"""`python -m gpubench.checks ...`: the `gpubench check` command alone, or with `--probe` the
driver probe that the checks start under the proxy."""
import argparse
import sys

from .command import register
from .driver import probe_main

if "--probe" in sys.argv[1:]:
    sys.exit(probe_main(sys.argv[1:]))
parser = argparse.ArgumentParser(prog="python -m gpubench.checks")
register(parser.add_subparsers(dest="cmd"))
args = parser.parse_args(["check", *sys.argv[1:]])
sys.exit(args.func(args, None))
