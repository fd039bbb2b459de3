"""`hardrun audit`: parse options, call the library, map the report to an exit code."""
from __future__ import annotations

import sys

import click

from ..audit.findings import SEVERITIES
from ..frontends.registry import KINDS
from ..audit.formats import FORMATS


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(), metavar="[PATH]...")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the report to FILE instead of standard output (as a new file renamed "
                   "over FILE; a symlink, FIFO or device named FILE is refused).")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
              help="Exit 1 when an unsuppressed finding has this severity or a higher one "
                   "[default: the policy's fail-on; warning for the default policy].")
@click.option("--no-fail", is_flag=True,
              help="Exit 0 even when findings reach --fail-on (files that cannot be parsed still exit 2).")
@click.option("--policy", "policy_ref", metavar="NAME|FILE",
              help="Judge by this policy (a built-in name or a file) [default: .hardrun.yaml at "
                   "the repository root, else `default`].")
@click.option("--kind", type=click.Choice(KINDS), help="Read every file as this kind instead of guessing.")
@click.option("--color/--no-color", default=None, help="Colour the text report (default: when on a terminal).")
@click.option("--docker-run", "docker_run_lines", multiple=True, metavar="COMMAND",
              help='Audit one `docker run …` command line given as text (repeatable), e.g. '
                   '--docker-run "docker run --privileged alpine".')
@click.option("--shellcheck", "shellcheck_path", metavar="PATH",
              help="Check the shell code of RUN instructions with the ShellCheck binary at PATH "
                   "[default: `shellcheck` on PATH, if there is one; without it RUNs are not "
                   "checked by ShellCheck].")
def audit(paths, fmt, output, fail_on, no_fail, policy_ref, kind, color, docker_run_lines,
          shellcheck_path):
    """Audit Dockerfiles and run configs (files or directories, `-` for standard input).

    The policy filters, re-grades and gates the findings; findings it exempts stay in
    the JSON and SARIF reports marked suppressed.

    Exit status: 0 when no unsuppressed finding reaches the threshold (--fail-on, else
    the policy's), 1 when one does, 2 for usage errors, invalid policies or files that
    could not be read or parsed (the other files are still audited and reported).
    """
    from ..api import audit_with_policy
    from ..audit.formats import render
    from ..display import printable
    from ..errors import HardrunError
    from ..userfiles import write_text

    stdin_text = _read_stdin() if "-" in paths else None
    targets = list(paths) or ([] if docker_run_lines else ["."])
    try:
        report, policy = audit_with_policy(targets, policy_ref, kind=kind, stdin_text=stdin_text,
                                           docker_run_lines=tuple(docker_run_lines),
                                           shellcheck=shellcheck_path)
    except HardrunError as error:
        click.echo(f"hardrun audit: {printable(error.summary())}", err=True)
        sys.exit(2)
    fail_on = fail_on or policy.fail_on
    if color is None:
        color = output is None and sys.stdout.isatty()
    text = render(fmt, report, color=color, fail_on=fail_on)
    if output:
        try:
            write_text(output, text)
        except HardrunError as error:
            click.echo(f"hardrun audit: {printable(error.summary())}", err=True)
            sys.exit(2)
    else:
        click.echo(text, nl=False, color=color)
    code = report.exit_code(fail_on)
    sys.exit(0 if no_fail and code == 1 else code)


def _read_stdin() -> str:
    from ..errors import HardrunError
    from ..userfiles import read_stream
    try:
        return read_stream(sys.stdin.buffer)
    except HardrunError as error:
        raise click.UsageError(f"<stdin>: {error.located()}")

