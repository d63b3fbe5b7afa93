"""`gpubench delete` (a stored run and its raw stream) and `gpubench cleanup` (the pods and
ConfigMaps runs left on clusters)."""
from __future__ import annotations

import sys

from gpubench.cli.base import EXIT_GATE, EXIT_OK, UsageError, confirm, open_store, warn
from gpubench.services.runs import resolve_run
from scenarios.k8s.cleanup import cleanup_leftovers


def register(subparsers) -> None:
    d = subparsers.add_parser("delete", help="delete a stored run (asks first)")
    d.add_argument("run", metavar="RUN", help="a run id, a unique prefix of one, or @SCENARIO")
    d.add_argument("--yes", "-y", action="store_true", help="do not ask")
    d.set_defaults(func=cmd_delete)

    cl = subparsers.add_parser("cleanup", help="remove gpubench pods/ConfigMaps left on clusters "
                               "by runs that are gone (a live run's are kept)")
    cl.add_argument("--cluster", help="one configured cluster (default: every enabled one)")
    cl.add_argument("--all", action="store_true", help="remove every gpubench object, also "
                    "those of live runs and those whose run cannot be told alive or gone")
    cl.add_argument("--dry-run", action="store_true", help="say what would be removed; remove "
                    "nothing")
    cl.set_defaults(func=cmd_cleanup)


def cmd_delete(args, config) -> int:
    store = open_store(args, config)
    run_id = resolve_run(store, args.run, warn)
    if not args.yes and not confirm(f"delete run {run_id} and its raw stream?"):
        return EXIT_GATE
    store.delete(run_id)
    print(f"deleted {run_id}", file=sys.stderr)
    return EXIT_OK


def cmd_cleanup(args, config) -> int:
    names = [args.cluster] if args.cluster else [c.name for c in config.clusters.values()
                                                 if c.enabled]
    if args.cluster and args.cluster not in config.clusters:
        raise UsageError(f"unknown cluster {args.cluster!r}; configured: "
                         f"{', '.join(config.clusters) or 'none'}")
    if not names:
        print("no enabled cluster in the configuration: nothing to clean", file=sys.stderr)
        return EXIT_OK
    for name in names:
        report = cleanup_leftovers(config.clusters[name], everything=args.all,
                                   dry_run=args.dry_run)
        for line in report.kept:
            print(f"{name}: {line}", file=sys.stderr)
        for item in report.removed:
            print(f"{name}\t{item}")
        print(f"{name}: {'would remove' if args.dry_run else 'removed'} {len(report.removed)} "
              f"leftover object(s), kept {report.kept_objects}", file=sys.stderr)
    return EXIT_OK
