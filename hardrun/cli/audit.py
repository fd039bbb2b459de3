"""`hardrun audit`: parse options, call the library, map the report to an exit code.

The options are declared once (OPTIONS); `main` parses the common case without click
(hardrun/__main__.py calls it first), and `audit` is the click command built from the
same declarations, which serves `--help`, completion and every usage error.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

from ..audit.findings import SEVERITIES
from ..frontends.registry import FILE_KINDS
from ..audit.formats import FORMATS
from .options import NotFast, Option, click_params, parse

HELP = """Audit Dockerfiles and run configs (files or directories, `-` for standard input) and
    container images (--image, or oci:DIR, oci-archive:FILE, docker-archive:FILE).

    The policy filters, re-grades and gates the findings; findings it exempts stay in
    the JSON and SARIF reports marked suppressed. With --baseline, findings the baseline
    accepts are reported and counted but do not fail the run.

    On a terminal, an audit of more than 500 files (or one that takes two seconds) shows
    its progress on stderr; never when stderr is redirected.

    Exit status: 0 when no unsuppressed finding reaches the threshold (--fail-on, else
    the policy's), 1 when one does, 2 for usage errors, invalid policies or baselines, or
    files that could not be read or parsed (the other files are still audited and reported).
    """

OPTIONS = (
    Option("-f", "--format", dest="fmt", choices=FORMATS, default="text", show_default=True,
           help="Report format: codeclimate is GitLab Code Quality JSON; html is one "
                "self-contained page (write it with -o report.html)."),
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
    Option("--kind", dest="kind", choices=FILE_KINDS,
           help="Read every file as this kind instead of guessing."),
    Option("--color", dest="color", flag=True, negation="--no-color",
           help="Colour the text report (default: when on a terminal)."),
    Option("--docker-run", dest="docker_run_lines", multiple=True, metavar="COMMAND",
           help='Audit one `docker run …` command line given as text (repeatable), e.g. '
                '--docker-run "docker run --privileged alpine".'),
    Option("--image", dest="images", multiple=True, metavar="REF",
           help="Audit a container image (repeatable): oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                "docker-archive:FILE[:NAME:TAG], an image of hardrun's store, or a registry "
                "reference (streamed, nothing unpacked or run). Positional oci:, oci-archive: and "
                "docker-archive: arguments are images too."),
    Option("--baseline", dest="baseline_path", path=True, metavar="FILE",
           help="Accept the findings listed in FILE (written by --write-baseline): they are "
                "reported and counted but never fail the run; only new ones do."),
    Option("--write-baseline", dest="write_baseline_path", path=True, metavar="FILE",
           help="Write every unsuppressed finding to FILE as accepted (keeping the reason and "
                "expires of entries --baseline FILE already had), then report against it."),
    Option("-q", "--quiet", dest="quiet", flag=True, default=False,
           help="Print only the summary line (with -f other than text, the report goes to "
                "-o FILE), and no progress."),
    Option("--skip-unknown", dest="skip_unknown", flag=True, default=False,
           help="Pass over a named file of no kind hardrun reads, as in a directory, instead "
                "of exiting 2 (for hooks that name every changed file)."),
    Option("--shellcheck", dest="shellcheck_path", metavar="PATH",
           help="Check the shell code of RUN instructions with the ShellCheck binary at PATH "
                "[default: `shellcheck` on PATH, if there is one; without it RUNs are not "
                "checked by ShellCheck]."),
    Option("--fix", dest="fix", flag=True, default=False,
           help="Fix in place the findings that have one safe mechanical fix, then report "
                "what remains: compose HR2004 HR2005 HR2006 HR2011 HR2013, Kubernetes HR2004 "
                "HR2005 HR2006 HR2012 HR3008 HR3009, Dockerfile HR1011 HR1017 (`hardrun "
                "rules` marks them). Only what is missing is added; the rest of the file "
                "stays byte for byte; a file that cannot be parsed is never touched."),
    Option("--diff", dest="fix_diff", flag=True, default=False,
           help="With --fix: print the fixes as a unified diff instead of writing them "
                "(exit 1 when there is one, 0 when there is nothing to fix)."),
)


class _Exit(Exception):
    """Stop the audit with this exit status (its message already printed)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def main(argv: list[str]) -> int:
    """`hardrun audit ARGV…` without click; NotFast when click must parse the words."""
    values, paths = parse(argv, OPTIONS)
    return run_audit(paths, **values)


def run_audit(paths, **values) -> int:
    """Audit, write the report, and return the exit status (`values`: OPTIONS by dest)."""
    request = SimpleNamespace(paths=tuple(paths), **values)
    problem = _usage_problem(request)
    if problem:
        return _usage_error(problem)
    try:
        report, fail_on = _audit(request)
    except _Exit as stop:
        return stop.status
    code = report.exit_code(fail_on)
    return 0 if request.no_fail and code == 1 else code


def _usage_problem(request) -> str | None:
    if request.quiet and request.fmt != "text" and not request.output:
        return (f"--quiet prints only the summary line: write the {request.fmt} report with "
                "-o FILE")
    if request.fix_diff and not request.fix:
        return "--diff shows what --fix would change: give both"
    if request.fix and "-" in request.paths:
        return "--fix rewrites files: it cannot fix standard input"
    return None


def _audit(request):
    from ..audit.formats import render

    baseline = _load_baseline(request.baseline_path)
    report, policy = _audit_once(request, request.policy_ref)
    if request.fix:
        report = _fix(report, policy, request.kind, request.fix_diff,
                      lambda: _audit_once(request, policy)[0])
    fail_on = request.fail_on or policy.fail_on
    _apply_baselines(report, baseline, request.write_baseline_path)
    color = request.color
    if color is None:
        color = request.output is None and sys.stdout.isatty()
    text = render(request.fmt, report, color=color, fail_on=fail_on)
    if request.output:
        _write_or_exit(request.output, text)
    if request.quiet:
        from ..audit.formats.text import summary_line
        _write_stdout(summary_line(report, fail_on) + "\n")
    elif not request.output:
        _write_stdout(text)
    return report, fail_on


def _audit_once(request, policy):
    """(Report, Policy) of one pass over the request's inputs; exit 2 on a usage error."""
    from ..api import audit_with_policy
    from ..errors import HardrunError

    progress = _terminal_progress(request.quiet)
    try:
        stdin_text = _read_stdin() if "-" in request.paths else None
        targets = list(request.paths) or (
            [] if request.docker_run_lines or request.images else ["."])
        return audit_with_policy(targets, policy, kind=request.kind, stdin_text=stdin_text,
                                 docker_run_lines=tuple(request.docker_run_lines),
                                 images=tuple(request.images), skip_unknown=request.skip_unknown,
                                 progress=progress, shellcheck=request.shellcheck_path)
    except HardrunError as error:
        raise _Exit(_usage_error(error.summary())) from None
    finally:
        if progress is not None:
            progress.close()


def _fix(report, policy, kind, diff_only: bool, audit_again):
    """Fix the report's files (or print the diff and stop); the report of what remains."""
    from ..api import fix_findings
    from ..audit.fixes import write_fixes
    from ..display import printable
    from ..errors import HardrunError
    fixes, problems = fix_findings(report, policy, kind)
    for problem in problems:
        print(f"hardrun audit: {printable(problem)}", file=sys.stderr)
    if diff_only:
        _write_stdout("".join(fix.diff() for fix in fixes))
        raise _Exit(1 if fixes else 0)
    try:
        write_fixes(fixes)
    except HardrunError as error:
        raise _Exit(_usage_error(error.summary())) from None
    count = sum(len(fix.fixed) for fix in fixes)
    print(f"hardrun audit: fixed {count} finding(s) in {len(fixes)} file(s)", file=sys.stderr)
    return audit_again() if fixes else report


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


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


def _write_or_exit(path: str, text: str) -> None:
    from ..errors import HardrunError
    from ..userfiles import write_text
    try:
        write_text(path, text)
    except HardrunError as error:
        raise _Exit(_usage_error(error.summary())) from None


def _load_baseline(path: str | None):
    """The baseline to report against (None without --baseline); exit 2 when malformed."""
    if path is None:
        return None
    from ..audit.baseline import load_baseline
    from ..errors import HardrunError
    try:
        return load_baseline(path)
    except HardrunError as error:
        raise _Exit(_usage_error(error.summary())) from None


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
        print(f"hardrun audit: {printable(expired_notice(baseline, entry))}", file=sys.stderr)


def _terminal_progress(quiet: bool):
    """Progress on stderr for a person watching a terminal; None anywhere else."""
    if quiet or not sys.stderr.isatty():
        return None
    from ..audit.progress import TerminalProgress
    return TerminalProgress(sys.stderr)


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
