"""`gpubench import` and `gpubench export`: runs in and out of the store as seed-format text
(the format of the results kept before gpubench), JSON or CSV."""
from __future__ import annotations

import sys
from pathlib import Path

from gpubench.cli.base import EXIT_OK, UsageError, open_store, warn
from gpubench.services.legacy import import_legacy_text, read_legacy_file
from gpubench.services.runs import check_scenario, resolve_run
from results.files import atomic_write, path_in, safe_file_name
from results.legacy import export_csv, export_json, export_text

EXPORTERS = {"text": (export_text, ".txt"), "json": (export_json, ".json"),
             "csv": (export_csv, ".csv")}


def register(subparsers) -> None:
    im = subparsers.add_parser("import", help="import a seed-format text result or kubectl log")
    im.add_argument("file", metavar="FILE", help="text file ('-' for stdin)")
    im.add_argument("--size", metavar="SIZE",
                    help="bytes per copy of the seed's round trip (e.g. 64KiB): its throughput "
                         "then compares with a measured round trip of that size")
    im.add_argument("--scenario", required=True, help="configured scenario it belongs to")
    im.add_argument("--label", help="label stored with the imported run")
    im.add_argument("--notes", help="free-text notes stored with the imported run")
    im.set_defaults(func=cmd_import)

    ex = subparsers.add_parser("export", help="export a run as seed-format text, JSON or CSV")
    ex.add_argument("run", metavar="RUN", help="a run id, a unique prefix of one, or @SCENARIO")
    ex.add_argument("--format", choices=tuple(EXPORTERS), default="text",
                    help="seed-format text (default), the whole document as JSON, or CSV")
    ex.add_argument("--out", metavar="PATH", help="write this file (or into this folder, "
                    "named <run id>.txt|json|csv) instead of stdout")
    ex.set_defaults(func=cmd_export)


def cmd_import(args, config) -> int:
    scenario = check_scenario(config, args.scenario)
    path = Path(args.file)
    text = read_legacy_file(path, sys.stdin.buffer if args.file == "-" else None)
    doc = import_legacy_text(config, open_store(args, config), scenario, text,
                             source=path.name if args.file != "-" else "stdin",
                             label=args.label or "", notes=args.notes or "",
                             size=args.size)
    print(doc["id"])
    trials = doc["workloads"][0]["trials"]
    print(f"imported {len(trials)} throughput figure(s) from {path.name} as scenario "
          f"{scenario}", file=sys.stderr)
    return EXIT_OK


def cmd_export(args, config) -> int:
    store = open_store(args, config)
    run_id = resolve_run(store, args.run, warn)
    export, suffix = EXPORTERS[args.format]
    text = export(store.load(run_id))
    if args.out and args.out != "-":
        out = Path(args.out)
        if out.is_dir():  # a folder: the file is named after the run id, and stays in it
            out = path_in(out, safe_file_name(run_id, suffix))
        try:
            atomic_write(out, text.encode("utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}") from None
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
