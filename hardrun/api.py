"""The library surface: what the CLI calls and what other programs may call."""
from __future__ import annotations


def audit(paths, options=None, stdin_text=None, docker_run_lines=()):
    """Audit files/directories and `docker run` command lines; returns a
    hardrun.audit.findings.Report."""
    from .audit.engine import audit as _audit
    return _audit(paths, options, stdin_text=stdin_text, docker_run_lines=docker_run_lines)


def run(spec, command=None) -> int:
    """Run `command` (or spec.command) in a hardened container described by a RunSpec;
    returns the exit status. Raises hardrun.errors.UsageError for an invalid spec."""
    from .runtime import run as _run
    return _run(spec, command)
