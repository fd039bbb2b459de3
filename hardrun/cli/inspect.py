"""`hardrun inspect [PID]`."""
from __future__ import annotations

import click


@click.command()
@click.argument("pid", required=False, default="self")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect(pid, as_json):
    """Report how process PID (default: this one) is confined: the five capability sets,
    no_new_privs, seccomp mode, namespaces (compared with PID 1 and the caller) and id maps."""
    from ..errors import HardrunError
    from ..runtime.introspect import format_text, inspect_process
    if pid != "self" and not pid.isdigit():
        raise click.UsageError(f"PID must be a number, not {pid!r}")
    try:
        report = inspect_process(pid)
    except HardrunError as error:
        raise click.ClickException(str(error))
    if as_json:
        import json
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_text(report), nl=False)
