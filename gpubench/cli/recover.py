"""`gpubench recover`: finish or discard runs that were cut off before they were saved.

    gpubench recover                    # the runs that can be recovered (and any running now)
    gpubench recover RUN [RUN ...]      # save each one's document from its journal
    gpubench recover --discard RUN      # throw its journal away (asks first; --yes does not)

A plan writes each finished trial to its run's journal (`<run id>.journal.jsonl` in the
data directory, results/journal.py) before the next trial begins. When the process dies
before the document is saved (kill -9, SIGHUP, a closed terminal, a full disk, a power
cut), the journal stays and `gpubench list` shows the run as "cut off". Recovering saves
the document built from the finished trials, marked incomplete with the reason
"cut off after N of M trials"; the trial in flight when it died is lost.
Exit codes: 0 done; 2 no such run, a run still running, or nothing measured in it.
"""
from __future__ import annotations

import argparse
import sys

from gpubench.cli.base import EXIT_GATE, EXIT_OK, UsageError, confirm, open_store
from gpubench.cli.tables import print_table
from results.document import archive_lines
from results.journal import read_journal
from results.store import summary_flags


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "recover", help="save (or --discard) runs cut off before they were saved",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="cut-off run id or unique prefix (none: list them)")
    p.add_argument("--discard", action="store_true",
                   help="delete the journals instead of saving their trials")
    p.add_argument("--yes", "-y", action="store_true", help="with --discard: do not ask")
    p.set_defaults(func=cmd_recover)


def cmd_recover(args, config) -> int:
    store = open_store(args, config)
    if not args.runs:
        unfinished = store.list_runs().unfinished
        if not unfinished:
            print(f"nothing to recover in {store.dir}", file=sys.stderr)
            return EXIT_OK
        print_table(("id", "created (UTC)", "scenario", "state"),
                    [[u["id"], u.get("created"), u.get("scenario"), summary_flags(u)[-1]]
                     for u in unfinished])
        return EXIT_OK
    journals = []
    for ref in args.runs:        # every name checked before anything is changed
        journal = read_journal(store.journal_path(store.resolve_unfinished(ref)))
        if journal.running:
            h = journal.header
            raise UsageError(f"run {journal.run_id} is still running (pid {h.get('pid')} on "
                             f"{h.get('hostname')}); it saves itself when it ends")
        if not args.discard and not journal.trials:
            raise UsageError(f"run {journal.run_id}: no trial finished before it was cut off; "
                             f"`gpubench recover --discard {journal.run_id}` removes it")
        journals.append(journal)
    if args.discard and not args.yes:
        names = ", ".join(f"{j.run_id} ({j.trials_done} finished trials)" for j in journals)
        if not confirm(f"discard {names}?"):
            return EXIT_GATE
    for journal in journals:
        if args.discard:
            journal.path.unlink(missing_ok=True)
            print(f"discarded {journal.run_id}", file=sys.stderr)
            continue
        doc = journal.document()
        store.save(doc, archive_lines([r for _, recs in journal.trials for r in recs]))
        journal.path.unlink(missing_ok=True)
        print(journal.run_id)
        note = f"; {journal.note}" if journal.note else ""
        print(f"saved {journal.run_id} ({doc['scenario']['name']}, "
              f"{doc['validity']['status']}, incomplete: {journal.reason}{note})",
              file=sys.stderr)
    return EXIT_OK
