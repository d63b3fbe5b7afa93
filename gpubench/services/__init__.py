"""The services both faces call, the CLI (gpubench.cli) and the app (tui/data.py), so that a
stored run is found, imported, compared and reported one way whichever face asks.

    runs.py        ServiceError; a configured scenario; a RUN reference (id, prefix, @scenario);
                   a scenario's newest run
    legacy.py      import a seed-format text result into the store
    comparison.py  compare runs with the isolation-check verdicts beside them; comparison.md

comparison.py imports NumPy (through results.stats); the other two do not, so a command that
never compares starts without it.
"""
