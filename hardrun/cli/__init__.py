"""The click CLI. Each command lives in its own module, imported only when invoked,
so `hardrun audit` never imports the runtime and `hardrun --version` imports neither."""
from __future__ import annotations

import importlib

import click

from .. import __version__

# command name -> (module, attribute, one-line help shown by `hardrun --help`)
COMMANDS = {
    "audit": ("hardrun.cli.audit", "audit", "Audit Dockerfiles and run configs for container-security practice."),
    "rules": ("hardrun.cli.rules", "rules", "List every audit rule."),
    "explain": ("hardrun.cli.rules", "explain", "Print the documentation of one rule."),
    "gc": ("hardrun.cli.gc", "gc", "Remove what containers of killed hardrun processes left behind."),
}

EPILOG = """\b
Examples:
  hardrun audit .                          audit every Dockerfile below .
  hardrun audit -f sarif -o hardrun.sarif .   SARIF for code scanning
  hardrun audit --fail-on error Dockerfile only errors fail the build
  hardrun explain HR1001                   why a rule matters and how to fix it
\b
Shell completion (bash; zsh and fish likewise):
  eval "$(_HARDRUN_COMPLETE=bash_source hardrun)"
"""


class LazyGroup(click.Group):
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
