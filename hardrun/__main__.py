"""Entry point of the `hardrun` command.

`hardrun run` is parsed without click: its start-up time is measured against crun,
and its Docker-style flags have their own parser (shared with the `docker run`
front end). The usual `hardrun audit` command lines skip click too (importing it
costs more than auditing a small file; see cli/audit_fast.py). Everything else goes
through the click CLI.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"] and "_HARDRUN_COMPLETE" not in os.environ:
        from .cli.run import main as run_main
        sys.exit(run_main(argv[1:]))
    if argv[:1] == ["audit"] and "_HARDRUN_COMPLETE" not in os.environ:
        from .cli.audit_fast import main as audit_main
        code = audit_main(argv[1:])     # None: a command line only click reads
        if code is not None:
            sys.exit(code)
    from .cli import cli
    cli.main(args=argv, prog_name="hardrun")


if __name__ == "__main__":
    main()
