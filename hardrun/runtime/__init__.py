"""The hardened runtime behind `hardrun run` (imported only by the runtime path).

    from hardrun.runtime import run
    status = run(spec, ["sh", "-c", "id"])     # spec: a hardrun.spec.run.RunSpec

`run` validates the whole spec first (a UsageError before anything exists), then
starts the container and returns the command's exit status (125/126/127 for
hardrun's own set-up failures, 128+N when the command is killed by signal N).
"""
from __future__ import annotations


def resolve(spec, command=None, *, tty: bool = False, interactive: bool = False):
    """The resolved configuration (hardened defaults applied) without running anything."""
    from .config import resolve as _resolve
    return _resolve(spec, command, tty=tty, interactive=interactive)


def run(spec, command=None, *, tty: bool = False, interactive: bool = False) -> int:
    """As `hardrun run`: stdin an empty input unless `interactive` (-i), a pty of the
    container's own with `tty` (-t)."""
    from .parent import run as _run
    return _run(resolve(spec, command, tty=tty, interactive=interactive))
