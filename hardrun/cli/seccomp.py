"""`hardrun seccomp show|diff`: review seccomp profiles (the built-in one, Docker's, learned ones)."""
from __future__ import annotations

import click

from .failures import one_line_errors


def _load(reference: str):
    from ..runtime.seccomp import default_profile, load_profile
    if reference == "default":
        return default_profile(), True
    return load_profile(reference), False


@click.group()
def seccomp():
    """Review seccomp profiles: Docker's JSON format, or `default` for the built-in one."""


@seccomp.command()
@click.argument("profile")
@one_line_errors("hardrun seccomp", exit_code=2)
def show(profile):
    """Each system call PROFILE names, one per line: allowed or refused (with its errno), under
    which argument, capability or kernel conditions, and why the built-in profile refuses it."""
    from ..runtime.seccomp_show import allowed_names, show_lines
    loaded, builtin = _load(profile)
    for line in show_lines(loaded, builtin):
        click.echo(line)
    click.echo(f"allowed calls (no capabilities): {len(allowed_names(loaded))}")


@seccomp.command()
@click.argument("a")
@click.argument("b")
@one_line_errors("hardrun seccomp", exit_code=2)
def diff(a, b):
    """What B says differently from A, per call (`-` A's rules, `+` B's). Exit 0 when they
    say the same, 1 when they differ, 2 on an error."""
    from ..runtime.seccomp_show import diff_lines
    lines = diff_lines(_load(a)[0], _load(b)[0])
    for line in lines:
        click.echo(line)
    raise SystemExit(1 if lines else 0)
