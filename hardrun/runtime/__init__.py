"""The hardened runtime behind `hardrun run` (imported only by the runtime path).

    from hardrun.runtime import run
    status = run(spec, ["sh", "-c", "id"])     # spec: a hardrun.spec.run.RunSpec

`run` validates the whole spec first (a UsageError before anything exists), then
starts the container and returns the command's exit status (125/126/127 for
hardrun's own set-up failures, 128+N when the command is killed by signal N).
"""
from __future__ import annotations


def resolve(spec, command=None, *, tty: bool = False, interactive: bool = False, id_lease=None):
    """The resolved configuration (hardened defaults applied) without running anything
    (without `id_lease`, real root's container gets the fixed range DEFAULT_REMAP)."""
    from .config import resolve as _resolve
    return _resolve(spec, command, tty=tty, interactive=interactive, id_lease=id_lease)


def run(spec, command=None, *, tty: bool = False, interactive: bool = False) -> int:
    """As `hardrun run`: stdin an empty input unless `interactive` (-i), a pty of the
    container's own with `tty` (-t), an id range of the container's own."""
    from .config import lease_id_range
    from .parent import run as _run
    id_lease = lease_id_range(spec)
    try:
        return _run(resolve(spec, command, tty=tty, interactive=interactive, id_lease=id_lease))
    finally:
        if id_lease is not None:
            id_lease.release()
