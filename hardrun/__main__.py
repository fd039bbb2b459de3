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
        _exit_now(run_main(argv[1:]))
    if argv[:1] == ["oci"]:            # `hardrun oci …` is `hardrun-oci …`
        from .cli.oci import main as oci_main
        _exit_now(oci_main(argv[1:]))
    from .cli import cli
    cli.main(args=argv, prog_name="hardrun")


def _exit_now(status: int) -> None:
    """Exit without the interpreter's teardown (freeing every module costs milliseconds
    after the container is gone); hardrun registers no exit handlers on this path."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # output closed early (`… | head`): nothing to lose
        pass
    os._exit(status)


if __name__ == "__main__":
    main()
