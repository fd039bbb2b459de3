"""The one way a click command of hardrun ends on an error: one line on stderr, no traceback."""
from __future__ import annotations

import functools

import click


def one_line_errors(prefix: str, exit_code: int | None = None):
    """Decorate a command so that a HardrunError is `PREFIX: message` on stderr and exit
    `exit_code` (the error's own exit code when None)."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            from ..display import printable
            from ..errors import HardrunError
            try:
                return function(*args, **kwargs)
            except HardrunError as error:
                click.echo(f"{prefix}: {printable(str(error))}", err=True)
                raise SystemExit(error.exit_code if exit_code is None else exit_code) from None
        return wrapper
    return decorate
