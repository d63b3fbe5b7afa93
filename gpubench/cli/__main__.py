"""`python -m gpubench.cli`: the `gpubench` command where its console script is not installed
(a checkout on a remote host, tests that start it as a subprocess)."""
import sys

from gpubench.cli.entry import main

sys.exit(main())
