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
              help="Report format: codeclimate is GitLab Code Quality JSON; html is one "
                   "self-contained page (write it with -o report.html).")
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
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Accept the findings listed in FILE (written by --write-baseline): they are "
                   "reported and counted but never fail the run; only new ones do.")
@click.option("--write-baseline", "write_baseline_path", type=click.Path(dir_okay=False),
              metavar="FILE",
              help="Write every unsuppressed finding to FILE as accepted (keeping the reason and "
                   "expires of entries --baseline FILE already had), then report against it.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print only the summary line (with -f other than text, the report goes to "
                   "-o FILE), and no progress.")
@click.option("--skip-unknown", is_flag=True,
              help="Pass over a named file of no kind hardrun reads, as in a directory, instead "
                   "of exiting 2 (for hooks that name every changed file).")
def audit(paths, fmt, output, fail_on, no_fail, policy_ref, kind, color, docker_run_lines,
          baseline_path, write_baseline_path, quiet, skip_unknown):
    """Audit Dockerfiles and run configs (files or directories, `-` for standard input).

    The policy filters, re-grades and gates the findings; findings it exempts stay in
    the JSON and SARIF reports marked suppressed. With --baseline, findings the baseline
    accepts are reported and counted but do not fail the run.

    On a terminal, an audit of more than 500 files (or one that takes two seconds) shows
    its progress on stderr; never when stderr is redirected.

    Exit status: 0 when no unsuppressed finding reaches the threshold (--fail-on, else
    the policy's), 1 when one does, 2 for usage errors, invalid policies or baselines, or
    files that could not be read or parsed (the other files are still audited and reported).
    """
    from ..api import audit_with_policy
    from ..audit.formats import render
    from ..errors import HardrunError

    if quiet and fmt != "text" and not output:
        raise click.UsageError(f"--quiet prints only the summary line: write the {fmt} report "
                               "with -o FILE")
    baseline = _load_baseline(baseline_path)
    stdin_text = _read_stdin() if "-" in paths else None
    targets = list(paths) or ([] if docker_run_lines else ["."])
    progress = _terminal_progress(quiet)
    try:
        report, policy = audit_with_policy(targets, policy_ref, kind=kind, stdin_text=stdin_text,
                                           docker_run_lines=tuple(docker_run_lines),
                                           skip_unknown=skip_unknown, progress=progress)
    except HardrunError as error:
        _fail(error)
    finally:
        if progress is not None:
            progress.close()
    fail_on = fail_on or policy.fail_on
    _apply_baselines(report, baseline, write_baseline_path)
    if color is None:
        color = output is None and sys.stdout.isatty()
    text = render(fmt, report, color=color, fail_on=fail_on)
    if output:
        _write_or_exit(output, text)
    if quiet:
        from ..audit.formats.text import summary_line
        click.echo(summary_line(report, fail_on))
    elif not output:
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



def _write_or_exit(path: str, text: str) -> None:
    from ..errors import HardrunError
    from ..userfiles import write_text
    try:
        write_text(path, text)
    except HardrunError as error:
        _fail(error)


def _fail(error) -> None:
    from ..display import printable
    click.echo(f"hardrun audit: {printable(error.summary())}", err=True)
    sys.exit(2)


def _load_baseline(path: str | None):
    """The baseline to report against (None without --baseline); exit 2 when malformed."""
    if path is None:
        return None
    from ..audit.baseline import load_baseline
    from ..errors import HardrunError
    try:
        return load_baseline(path)
    except HardrunError as error:
        _fail(error)


def _apply_baselines(report, baseline, write_path: str | None) -> None:
    """Mark the report's findings against --baseline, or against the baseline written
    now by --write-baseline; say each expired entry that still matches a finding."""
    if baseline is None and write_path is None:
        return
    from ..audit.baseline import apply_baseline, expired_notice, render_baseline
    from ..display import printable
    if write_path is not None:
        _write_or_exit(write_path, render_baseline(report, baseline))
        baseline = _load_baseline(write_path)
    for entry in apply_baseline(report, baseline):
        click.echo(f"hardrun audit: {printable(expired_notice(baseline, entry))}", err=True)


def _terminal_progress(quiet: bool):
    """Progress on stderr for a person watching a terminal; None anywhere else."""
    if quiet or not sys.stderr.isatty():
        return None
    from ..audit.progress import TerminalProgress
    return TerminalProgress(sys.stderr)
