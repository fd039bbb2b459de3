"""`hardrun gc`: undo what containers of killed hardrun processes left behind."""
from __future__ import annotations

import click

from .failures import one_line_errors


@click.command()
@click.option("--orphans/--no-orphans", default=True, show_default=True,
              help="Also remove container cgroups under the hardrun parent that no state "
                   "directory accounts for.")
@click.option("--images/--no-images", "images", default=True, show_default=True,
              help="Also remove the image store's blobs and unpacked layers that no image references "
                   "($HARDRUN_STORE, /var/lib/hardrun as root, else $XDG_DATA_HOME/hardrun).")
def gc(orphans, images):
    """Remove the cgroups, links, addresses, nftables rules and proxies of containers
    whose hardrun process is gone (state in /run/hardrun, or $HARDRUN_STATE_DIR), and the
    hardrun-oci --explain records kept there (.explain/) once older than 7 days.
    A state directory that is not the caller's own, with mode 0700, that is reached through
    a symbolic link or directory another user controls, or that cannot be used at all, is
    refused (exit 125)."""
    from ..display import printable
    report, removed_images = _collect(orphans, images)
    for line in [*report.removed, *removed_images]:
        click.echo(f"removed {printable(line)}")
    for problem in report.problems:
        click.echo(f"hardrun gc: {printable(problem)}", err=True)
    if report.problems:
        raise SystemExit(1)


@one_line_errors("hardrun gc")
def _collect(orphans: bool, images: bool):
    """The report of the state collection and the image garbage removed; an untrusted or
    unusable state root touches nothing and is a one-line error."""
    from ..runtime.gc import collect
    return collect(orphans=orphans), (_image_garbage() if images else [])


def _image_garbage() -> list[str]:
    """What no stored image references (a store that does not exist is left alone; one a
    running container uses is left for later, said on stderr)."""
    from ..images.store import Store, StoreBusy
    try:
        return Store().collect_garbage()
    except StoreBusy as busy:
        click.echo(f"hardrun gc: {busy}: its garbage is left for a later gc", err=True)
        return []
