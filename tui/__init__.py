"""gpubench-tui: the Textual app (views only).

    app.py          GpubenchApp, main() (the console script), app-wide actions and messages
    messages.py     small dataclass messages workers post (no message per sample)
    live.py         LiveBoard / HostState: what the dashboard shows, as plain data
    sessions.py     SessionManager: the one way a session reaches the board (a 20 Hz pump)
    plan_feed.py    a plan run on the board: rows per trial, the runner's sessions to the pump
    data.py         RunStore: the one adapter over results.store / stats / report / legacy
    engine_args.py  engine arguments for the quick test (the config's defaults, cut down)
    screens/        hosts, dashboard, history, compare, selftest, modals (help, confirm,
                    input), import_dialog (History's import: file, scenario, size)
    widgets/        host_grid (Line API, cached rows), charts (plotext via Line API), panels
    screenshots.py  `python -m tui.screenshots docs/` writes the README's SVGs

Data flow: Session events → pump (plain stores into LiveBoard, dirty set) → the
dashboard's 10 Hz timer applies dirty hosts: grid rows that changed and are visible,
the selected host's panels when their content changed, charts at most once a second.
Plans run through gpubench.runner.PlanRunner (it records and saves the documents; its
sessions reach the pump through plan_feed.py like a quick test's); saved runs are read
through tui/data.py.
"""
