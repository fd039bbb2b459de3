"""Entry point of the `hardrun` command.

`hardrun run` is parsed without click: its start-up time is measured against crun,
and its Docker-style flags have their own parser (shared with the `docker run`
front end). Everything else goes through the click CLI.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"] and "_HARDRUN_COMPLETE" not in os.environ:
        from .cli.run import main as run_main
        sys.exit(run_main(argv[1:]))
    from .cli import cli
    cli.main(args=argv, prog_name="hardrun")


if __name__ == "__main__":
    main()
