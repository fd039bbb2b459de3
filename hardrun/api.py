"""The library surface: what the CLI calls and what other programs may call."""
from __future__ import annotations


def audit(paths, options=None, stdin_text=None, docker_run_lines=()):
    """Audit files/directories and `docker run` command lines; returns a
    hardrun.audit.findings.Report."""
    from .audit.engine import audit as _audit
    return _audit(paths, options, stdin_text=stdin_text, docker_run_lines=docker_run_lines)
