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
@click.option("--fix", is_flag=True,
              help="Fix in place the findings that have one safe mechanical fix, then report "
                   "what remains: compose HR2004 HR2005 HR2006 HR2011 HR2013, Kubernetes HR2004 "
                   "HR2005 HR2006 HR2012 HR3008 HR3009, Dockerfile HR1011 HR1017 (`hardrun "
                   "rules` marks them). Only what is missing is added; the rest of the file "
                   "stays byte for byte; a file that cannot be parsed is never touched.")
@click.option("--diff", "fix_diff", is_flag=True,
              help="With --fix: print the fixes as a unified diff instead of writing them "
                   "(exit 1 when there is one, 0 when there is nothing to fix).")
def audit(paths, fmt, output, fail_on, no_fail, policy_ref, kind, color, docker_run_lines,
          fix=False, fix_diff=False):
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

    if fix_diff and not fix:
        raise click.UsageError("--diff shows what --fix would change: give both")
    if fix and "-" in paths:
        raise click.UsageError("--fix rewrites files: it cannot fix standard input")
    stdin_text = _read_stdin() if "-" in paths else None
    targets = list(paths) or ([] if docker_run_lines else ["."])
    try:
        report, policy = audit_with_policy(targets, policy_ref, kind=kind, stdin_text=stdin_text,
                                           docker_run_lines=tuple(docker_run_lines))
    except HardrunError as error:
        click.echo(f"hardrun audit: {printable(error.summary())}", err=True)
        sys.exit(2)
    if fix:
        report = _fix(report, policy, kind, fix_diff,
                      lambda: audit_with_policy(targets, policy, kind=kind,
                                                docker_run_lines=tuple(docker_run_lines))[0])
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


def _fix(report, policy, kind, diff_only: bool, audit_again):
    """Fix the report's files (or print the diff and exit); the report of what remains."""
    from ..api import fix_findings
    from ..audit.fixes import write_fixes
    from ..display import printable
    from ..errors import HardrunError
    fixes, problems = fix_findings(report, policy, kind)
    for problem in problems:
        click.echo(f"hardrun audit: {printable(problem)}", err=True)
    if diff_only:
        click.echo("".join(fix.diff() for fix in fixes), nl=False)
        sys.exit(1 if fixes else 0)
    try:
        write_fixes(fixes)
    except HardrunError as error:
        click.echo(f"hardrun audit: {printable(error.summary())}", err=True)
        sys.exit(2)
    count = sum(len(fix.fixed) for fix in fixes)
    click.echo(f"hardrun audit: fixed {count} finding(s) in {len(fixes)} file(s)", err=True)
    return audit_again() if fixes else report


def _read_stdin() -> str:
    from ..errors import HardrunError
    from ..userfiles import read_stream
    try:
        return read_stream(sys.stdin.buffer)
    except HardrunError as error:
        raise click.UsageError(f"<stdin>: {error.located()}")

