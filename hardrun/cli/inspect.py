"""`hardrun inspect [PID]`."""
from __future__ import annotations

import click

from .failures import one_line_errors


@click.command()
@click.argument("pid", required=False, default="self")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--oci-root", default="/run/hardrun-oci", show_default=True, metavar="DIR",
              help="hardrun-oci's state root: name the container PID belongs to and what the floor raised.")
@one_line_errors("hardrun inspect")
def inspect(pid, as_json, oci_root):
    """Report how process PID (default: this one) is confined: the five capability sets,
    no_new_privs, seccomp mode, namespaces (compared with PID 1 and the caller) and id maps;
    for a process of a hardrun-oci container, the container and the floor's changes, and for
    one created with `hardrun-oci --explain` the calls its seccomp filter refused (said to be
    incomplete when the holder could not write its record)."""
    from ..runtime.introspect import format_text, inspect_process
    if pid != "self" and not pid.isdigit():
        raise click.UsageError(f"PID must be a number, not {pid!r}")
    report = inspect_process(pid)
    from ..runtime.oci import container_of      # the hardrun-oci container it belongs to
    container = container_of(report["pid"], oci_root)
    if container is not None:
        report["oci_container"] = container
    _add_run_container(report)
    if as_json:
        import json
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_text(report), nl=False)


def _add_run_container(report: dict) -> None:
    """The `hardrun run` container the process belongs to: its id and, from an image, the
    image's name and manifest digest (from the container's state record)."""
    from ..runtime.state import container_of_process
    state = container_of_process(report["pid"])
    if state is None:
        return
    found = {"id": state.id}
    for value in state.resources("image")[:1]:
        found["image"], _, found["image_digest"] = value.partition(" ")
    report["container"] = found
