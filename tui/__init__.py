"""gpubench-tui: the Textual app (views only).

    app.py          GpubenchApp, main() (the console script), app-wide actions and messages
    messages.py     small dataclass messages workers post (no message per sample)
    live.py         LiveBoard / HostState: what the dashboard shows, as plain data
    sessions.py     SessionManager: starts sessions, a 20 Hz pump takes their events in
    data.py         RunStore: the one adapter over results.store / stats / report / legacy
    engine_args.py  engine arguments for plans and quick tests (gpubench.runner.engine_args)
    screens/        hosts, dashboard, history, compare, modals (help, confirm, input)
    widgets/        host_grid (Line API, cached rows), charts (plotext via Line API), panels
    screenshots.py  `python -m tui.screenshots docs/` writes the README's SVGs

Data flow: Session events → pump (plain stores into LiveBoard, dirty set) → the
dashboard's 10 Hz timer applies dirty hosts: grid rows that changed and are visible,
the selected host's panels when their content changed, charts at most once a second.
Plans run through gpubench.runner.PlanRunner (it saves the documents); saved runs are
read through tui/data.py.
"""
