"""`hardrun seccomp show|diff`: review seccomp profiles (the built-in one, Docker's, learned ones)."""
from __future__ import annotations

import click


def _load(reference: str):
    from ..runtime.seccomp import default_profile, load_profile
    if reference == "default":
        return default_profile(), True
    return load_profile(reference), False


def _fail(error) -> None:
    from ..display import printable
    click.echo(f"hardrun seccomp: {printable(str(error))}", err=True)
    raise SystemExit(2)


@click.group()
def seccomp():
    """Review seccomp profiles: Docker's JSON format, or `default` for the built-in one."""


@seccomp.command()
@click.argument("profile")
def show(profile):
    """Each system call PROFILE names, one per line: allowed or refused (with its errno), under
    which argument, capability or kernel conditions, and why the built-in profile refuses it."""
    from ..errors import HardrunError
    from ..runtime.seccomp_show import allowed_names, show_lines
    try:
        loaded, builtin = _load(profile)
    except HardrunError as error:
        _fail(error)
    for line in show_lines(loaded, builtin):
        click.echo(line)
    click.echo(f"allowed calls (no capabilities): {len(allowed_names(loaded))}")


@seccomp.command()
@click.argument("a")
@click.argument("b")
def diff(a, b):
    """What B says differently from A, per call (`-` A's rules, `+` B's). Exit 0 when they
    say the same, 1 when they differ, 2 on an error."""
    from ..errors import HardrunError
    from ..runtime.seccomp_show import diff_lines
    try:
        lines = diff_lines(_load(a)[0], _load(b)[0])
    except HardrunError as error:
        _fail(error)
    for line in lines:
        click.echo(line)
    raise SystemExit(1 if lines else 0)
