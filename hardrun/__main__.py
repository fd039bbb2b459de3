"""Entry point of the `hardrun` command.

`hardrun run` is parsed without click: its start-up time is measured against crun,
and its Docker-style flags have their own parser (shared with the `docker run`
front end). `hardrun audit` is parsed without click when its words are plain (see
hardrun/cli/options.py). Everything else goes through the click CLI.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"] and "_HARDRUN_COMPLETE" not in os.environ:
        from .cli.run import main as run_main
        _exit_now(run_main(argv[1:]))
    if argv[:1] == ["audit"] and "_HARDRUN_COMPLETE" not in os.environ:
        _audit_without_click(argv[1:])
    if argv[:1] == ["oci"]:            # `hardrun oci …` is `hardrun-oci …`
        from .cli.oci import main as oci_main
        _exit_now(oci_main(argv[1:]))
    from .cli import cli
    cli.main(args=argv, prog_name="hardrun")


def _audit_without_click(argv: list[str]) -> None:
    """Run `hardrun audit` when its words need no click; return when they do."""
    import gc
    # Start-up allocates tens of thousands of long-lived objects (modules, functions,
    # rules), and the default threshold (700) walks them again and again: about 1.5 ms
    # of a one-file audit. Collections still run, ten times less often.
    gc.set_threshold(10_000, 10, 10)
    from .cli.audit import NotFast, main as audit_main
    try:
        status = audit_main(argv)
        sys.stdout.flush()
    except NotFast:
        return
    except BrokenPipeError:   # `hardrun audit … | head`: as click does, exit 1 quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    # The report is written and closed (-o renames a finished file): tearing down every
    # module would only add milliseconds to each pre-commit or CI run.
    _exit_now(status)


def _exit_now(status: int) -> None:
    """Exit without the interpreter's teardown (freeing every module costs milliseconds
    after the container is gone or the report written); hardrun registers no exit
    handlers on these paths."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # output closed early (`… | head`): nothing to lose
        pass
    os._exit(status)


if __name__ == "__main__":
    main()
