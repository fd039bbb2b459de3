"""`hardrun pull`, `images`, `rmi`, `image inspect`, `load`, `save`: the image store's
commands (hardrun/images/operations.py does the work). The store is $HARDRUN_STORE, else
/var/lib/hardrun for root, else $XDG_DATA_HOME/hardrun."""
from __future__ import annotations

import sys

import click

from .failures import one_line_errors

STORE_HELP = "The image store (default: $HARDRUN_STORE, /var/lib/hardrun as root, else $XDG_DATA_HOME/hardrun)."


def _store_option(function):
    return click.option("--store", metavar="DIR", help=STORE_HELP)(function)


# A HardrunError is one line on stderr and exit 2 (1 for nothing found), never a traceback.
_one_line_errors = one_line_errors("hardrun")


def _store(root):
    from ..images.store import Store
    return Store(root)


def _progress(label: str):
    """Bytes copied, on a terminal only."""
    if not sys.stderr.isatty():
        return None
    done = [0]

    def report(count: int) -> None:
        done[0] += count
        sys.stderr.write(f"\r{label}: {_size(done[0])}")
        sys.stderr.flush()
    return report


@click.command()
@click.argument("reference")
@click.option("--platform", metavar="OS/ARCH", help="Only linux/amd64 is supported.")
@click.option("--tls-verify/--no-tls-verify", "tls_verify", default=True, show_default=True,
              help="Verify the registry's certificate; --no-tls-verify also allows plain HTTP "
                   "(always allowed for a registry on loopback).")
@_store_option
@_one_line_errors
def pull(reference, platform, tls_verify, store):
    """Copy an image into the store: a registry REFERENCE ([REGISTRY[:PORT]/]NAME[:TAG|@DIGEST])
    or oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]."""
    from ..images.operations import pull as pull_image
    name, manifest, _ = pull_image(_store(store), reference, "always", _progress(reference),
                                   tls_verify=tls_verify, platform=platform)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    click.echo(f"{name} {manifest.digest}")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table for people, or JSON (name, repository, tag, digest, size, added).")
@_store_option
@_one_line_errors
def images(fmt, store):
    """List the stored images: repository, tag, digest, size and age."""
    from ..display import printable
    from ..images.operations import listing
    rows = listing(_store(store))
    if fmt == "json":
        import json
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'REPOSITORY':<40} {'TAG':<16} {'DIGEST':<19} {'SIZE':>9}  CREATED")
    for row in rows:
        click.echo(f"{printable(row['repository']):<40} {printable(row['tag']):<16} {row['digest'][:19]:<19} "
                   f"{_size(row['size']):>9}  {_age(row['added'])}")


@click.command()
@click.argument("references", nargs=-1, required=True)
@_store_option
@_one_line_errors
def rmi(references, store):
    """Remove image names from the store (the blobs no image uses go at `hardrun gc`)."""
    from ..display import printable
    from ..images.operations import remove
    for reference in references:
        click.echo(f"untagged {printable(remove(_store(store), reference))}")


@click.group()
def image():
    """Image commands: inspect."""


@image.command("inspect")
@click.argument("reference")
@_store_option
@_one_line_errors
def image_inspect(reference, store):
    """Print a stored image's name, digests, layers and config as JSON."""
    import json
    from ..images.operations import inspect
    click.echo(json.dumps(inspect(_store(store), reference), indent=2))


@click.command()
@click.option("-i", "--input", "path", required=True, metavar="FILE",
              help="A `docker save` archive (either form) or an OCI archive.")
@_store_option
@_one_line_errors
def load(path, store):
    """Load every image of an archive into the store."""
    from ..display import printable
    from ..images.operations import load as load_images
    for name in load_images(_store(store), path):
        click.echo(f"loaded {printable(name)}")


@click.command()
@click.argument("reference")
@click.option("-o", "--output", required=True, metavar="FILE", help="The OCI archive to write.")
@_store_option
@_one_line_errors
def save(reference, output, store):
    """Write a stored image as an OCI archive (oci-archive:FILE)."""
    from ..images.operations import save as save_image
    save_image(_store(store), reference, output)


def _size(count: float) -> str:
    if count < 0:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f}{unit}" if unit == "B" else f"{count:.1f}{unit}"
        count /= 1000
    return str(count)


def _age(added: int) -> str:
    import time
    seconds = max(0, int(time.time()) - int(added or 0))
    for unit, length in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= length:
            return f"{seconds // length} {unit} ago"
    return "just now"
