"""`gpubench init [PATH]`: write the commented config.toml (the built-in defaults: the five
reference scenarios, only bare-metal enabled) where the user asks; an existing file is kept
unless --force."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from gpubench.cli.base import EXIT_OK, UsageError
from results.files import atomic_write
from scenarios.builtin_config import template_text

FILE_NAME = "config.toml"


def register(subparsers) -> None:
    i = subparsers.add_parser("init", help="write a commented config.toml to edit (the "
                              "built-in defaults)")
    i.add_argument("path", nargs="?", default=FILE_NAME, metavar="PATH",
                   help=f"file to write, or a folder to write {FILE_NAME} into (default: "
                        f"./{FILE_NAME})")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")
    # the file it writes replaces a configuration that may not load: none is read first
    i.set_defaults(func=cmd_init, needs_config=False)


def cmd_init(args, config) -> int:
    path = Path(args.path)
    if path.is_dir():
        path = path / FILE_NAME
    data = template_text().encode("utf-8")
    try:
        if args.force:
            atomic_write(path, data)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
    except FileExistsError:
        raise UsageError(f"{path} exists: kept as it is (--force overwrites it)") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    print(path)
    print(f"wrote {path}: the five reference scenarios, only bare-metal enabled; edit it, "
          f"then `gpubench run`", file=sys.stderr)
    return EXIT_OK
