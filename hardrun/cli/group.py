"""The click group behind every command but `hardrun run` (imported only for those)."""
from __future__ import annotations

import importlib

import click

from .. import __version__
from . import COMMANDS, EPILOG


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line, `COMMAND: what is wrong (see `COMMAND --help`)`,
    the way `hardrun run` and every HardrunError end; exit 2."""

    def show(self, file=None) -> None:
        click.echo(self.format_message(), err=True)


def one_line_usage(error: click.UsageError, command: str = "hardrun") -> click.UsageError:
    """`error` as one line naming the command (`command` when the error knows none),
    unless it is click's help for a command given no arguments (which must still print
    the help)."""
    if isinstance(error, (OneLineUsageError, click.exceptions.NoArgsIsHelpError)):
        return error
    command = error.ctx.command_path if error.ctx is not None else command
    message = " ".join(error.format_message().split()).rstrip(".")
    if "(see " not in message:
        message += f" (see `{command} --help`)"
    return OneLineUsageError(f"{command}: {message}", error.ctx)


class LazyGroup(click.Group):
    # Click prints a usage error as three lines; hardrun's commands say it in one.
    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise one_line_usage(error) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            # an option's missing value is raised without a context: name the subcommand
            command = " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))
            raise one_line_usage(error, command) from None

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx, formatter):
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="hardrun")
def cli():
    """hardrun: run containers hardened by default, and audit how containers are built and run."""
