"""Many hosts at once through any Launcher (SSH in practice; replay and local in tests):

    run.py        FleetRun: bounded connects and sessions, retries, watchdog, one run group
    hosts.py      FleetTarget, HostStatus and its states, FleetResult, new_group_id()
    failures.py   FleetError, the descriptor budget check, which connect failures are retried
    gc_pause.py   the garbage collector held back while a large fleet connects and runs
    close.py      close_launchers(): every launcher closed at once, a slow one aborted

Import each name from its module. The fleet's analysis is results/fleet.py; the `gpubench fleet`
command is gpubench/fleet.py.
"""
