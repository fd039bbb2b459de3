"""`hardrun run` as a click command, for shell completion and `hardrun --help`.

The `hardrun` entry point runs `hardrun run` without click (hardrun/__main__.py); this
command exists so completion knows `run` and its flags, and so callers of the click group
reach the same code. Its options come from the flag table (only the flags the runtime
supports), its help is `hardrun run --help`, and invoking it hands the words as given to
hardrun/cli/run.py: click never parses them (Docker's flag syntax is not click's).
"""
from __future__ import annotations

import click

from ..frontends.docker_flags import FLAGS, run_help

_ARGV = "hardrun.run_argv"


def _option(flag) -> click.Option:
    names = [f"--{flag.name}", *(f"--{alias}" for alias in flag.aliases)]
    if flag.short:
        names.append(f"-{flag.short}")
    return click.Option(names, is_flag=not flag.takes_value, multiple=flag.repeatable,
                        metavar=flag.metavar or None, help=flag.help, expose_value=False)


class RunCommand(click.Command):
    def parse_args(self, ctx, args):
        ctx.meta[_ARGV] = list(args)
        if ctx.resilient_parsing:          # completion: let click see the options
            return super().parse_args(ctx, args)
        ctx.args = []
        return []

    def invoke(self, ctx):
        from .run import main
        ctx.exit(main(ctx.meta[_ARGV]))

    def get_help(self, ctx):
        return run_help().rstrip("\n")


run = RunCommand(
    "run",
    params=[_option(flag) for flag in FLAGS if flag.runtime and flag.name != "help"]
    + [click.Argument(["command"], nargs=-1, type=click.UNPROCESSED, expose_value=False)],
    # -h is --hostname, as in Docker
    context_settings={"help_option_names": ["--help"], "allow_interspersed_args": False},
    help="Run a command in a container hardened by default.",
)
