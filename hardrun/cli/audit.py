"""`hardrun audit`: parse options, call the library, map the report to an exit code.

The options are declared once (OPTIONS); `main` parses the common case without click
(hardrun/__main__.py calls it first), and `audit` is the click command built from the
same declarations, which serves `--help`, completion and every usage error.
"""
from __future__ import annotations

import sys

from ..audit.findings import SEVERITIES
from ..frontends.registry import KINDS
from ..audit.formats import FORMATS
from .options import NotFast, Option, click_params, parse

HELP = """Audit Dockerfiles and run configs (files or directories, `-` for standard input).

    The policy filters, re-grades and gates the findings; findings it exempts stay in
    the JSON and SARIF reports marked suppressed.

    Exit status: 0 when no unsuppressed finding reaches the threshold (--fail-on, else
    the policy's), 1 when one does, 2 for usage errors, invalid policies or files that
    could not be read or parsed (the other files are still audited and reported).
    """

OPTIONS = (
    Option("-f", "--format", dest="fmt", choices=FORMATS, default="text", show_default=True,
           help="Report format."),
    Option("-o", "--output", dest="output", path=True,
           help="Write the report to FILE instead of standard output (as a new file renamed "
                "over FILE; a symlink, FIFO or device named FILE is refused)."),
    Option("--fail-on", dest="fail_on", choices=SEVERITIES,
           help="Exit 1 when an unsuppressed finding has this severity or a higher one "
                "[default: the policy's fail-on; warning for the default policy]."),
    Option("--no-fail", dest="no_fail", flag=True, default=False,
           help="Exit 0 even when findings reach --fail-on (files that cannot be parsed still "
                "exit 2)."),
    Option("--policy", dest="policy_ref", metavar="NAME|FILE",
           help="Judge by this policy (a built-in name or a file) [default: .hardrun.yaml at "
                "the repository root, else `default`]."),
    Option("--kind", dest="kind", choices=KINDS,
           help="Read every file as this kind instead of guessing."),
    Option("--color", dest="color", flag=True, negation="--no-color",
           help="Colour the text report (default: when on a terminal)."),
    Option("--docker-run", dest="docker_run_lines", multiple=True, metavar="COMMAND",
           help='Audit one `docker run …` command line given as text (repeatable), e.g. '
                '--docker-run "docker run --privileged alpine".'),
)


def main(argv: list[str]) -> int:
    """`hardrun audit ARGV…` without click; NotFast when click must parse the words."""
    values, paths = parse(argv, OPTIONS)
    return run_audit(paths, **values)


def run_audit(paths, fmt, output, fail_on, no_fail, policy_ref, kind, color,
              docker_run_lines) -> int:
    """Audit, write the report, and return the exit status."""
    from ..api import audit_with_policy
    from ..audit.formats import render
    from ..errors import HardrunError
    from ..userfiles import write_text

    try:
        stdin_text = _read_stdin() if "-" in paths else None
        targets = list(paths) or ([] if docker_run_lines else ["."])
        report, policy = audit_with_policy(targets, policy_ref, kind=kind, stdin_text=stdin_text,
                                           docker_run_lines=tuple(docker_run_lines))
        fail_on = fail_on or policy.fail_on
        if color is None:
            color = output is None and sys.stdout.isatty()
        text = render(fmt, report, color=color, fail_on=fail_on)
        if output:
            write_text(output, text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except HardrunError as error:
        return _usage_error(error.summary())
    code = report.exit_code(fail_on)
    return 0 if no_fail and code == 1 else code


def _usage_error(message: str) -> int:
    from ..display import printable
    print(f"hardrun audit: {printable(message)}", file=sys.stderr, flush=True)
    return 2


def _read_stdin() -> str:
    from ..errors import HardrunError
    from ..userfiles import read_stream
    try:
        return read_stream(sys.stdin.buffer)
    except HardrunError as error:
        raise HardrunError(f"<stdin>: {error.located()}") from None


def _click_command():
    import click

    @click.pass_context
    def invoke(ctx, paths, **values):
        ctx.exit(run_audit(paths, **values))

    return click.Command(
        "audit", callback=invoke, help=HELP,
        params=[click.Argument(["paths"], nargs=-1, type=click.Path(), metavar="[PATH]...")]
        + click_params(OPTIONS))


def __getattr__(name: str):
    if name == "audit":       # the click command, built on first use (click is imported then)
        return _click_command()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["OPTIONS", "NotFast", "main", "run_audit"]
