"""`python -m gpubench.selftest ...`: the `gpubench selftest` command alone."""
import argparse
import sys

from .command import register

parser = argparse.ArgumentParser(prog="python -m gpubench.selftest")
register(parser.add_subparsers(dest="cmd"))
args = parser.parse_args(["selftest", *sys.argv[1:]])
sys.exit(args.func(args, None))
