"""`hardrun policy list|show|validate|import`."""
from __future__ import annotations

import click

from .failures import one_line_errors


@click.group()
def policy():
    """Built-in and repository policies: list, show the effective policy, validate a file,
    import a hadolint configuration."""


@policy.command("list")
def list_policies():
    """List the built-in policies (use one with --policy NAME)."""
    from ..policy import builtin_policies, load_policy
    for name in builtin_policies():
        description = load_policy(name).description or ""
        click.echo(f"{name:<12} {description}")


@policy.command()
@click.argument("policy_ref", metavar="[NAME|FILE]", required=False)
@one_line_errors("hardrun policy show")
def show(policy_ref):
    """Print the effective policy (after `extends:`) as YAML.

    Without an argument: the policy `hardrun audit .` would use here (the repository's
    .hardrun.yaml, else `default`).
    """
    import yaml
    from ..policy.model import policy_document
    policy = _load(policy_ref)
    click.echo(f"# effective policy: {' -> '.join(policy.chain)}")
    click.echo(yaml.safe_dump(policy_document(policy), sort_keys=False, default_flow_style=None),
               nl=False)


@policy.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="FILE...")
def validate(files):
    """Check policy files: exit 0 when every one is valid, else 2 with every error of each
    file, one line each (file, line, column, what was expected) in the file's order."""
    import sys
    from ..display import printable
    from ..policy.load import policy_file_errors
    failed = False
    for path in files:
        errors = policy_file_errors(path)
        for error in errors:
            click.echo(printable(f"{error if error.path else f'{path}: {error}'}"), err=True)
        if not errors:
            click.echo(f"{path}: ok")
        failed = failed or bool(errors)
    sys.exit(2 if failed else 0)


@policy.command("import")
@click.argument("config", metavar="HADOLINT_CONFIG", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default=".hardrun.yaml", show_default=True, metavar="FILE",
              help="Write the policy here (`-` for standard output).")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def import_(config, output, force):
    """Write a hardrun policy from a hadolint configuration (.hadolint.yaml): its ignored
    rules, severity overrides, trusted registries and failure threshold.

    Exit status 0 when written, 2 for a file that cannot be read or parsed, or an
    existing FILE without --force.
    """
    import os
    import sys
    from ..errors import HardrunError
    from ..policy.hadolint import import_hadolint
    from ..userfiles import read_text, write_text
    try:
        text = import_hadolint(read_text(config), config)
        if output == "-":
            click.echo(text, nl=False)
            return
        if os.path.lexists(output) and not force:
            raise HardrunError(f"{output} exists: use --force to replace it, or -o another file")
        write_text(output, text)
    except HardrunError as error:
        message = str(error) if error.path else f"{config}: {error}"
        click.echo(f"hardrun policy import: {message}", err=True)
        sys.exit(2)
    click.echo(f"{output}: written (check it with `hardrun policy validate {output}`)")


def _load(reference: str | None):
    """The named policy, else the one found here (confined to its repository)."""
    from ..policy import named_or_found_policy
    return named_or_found_policy(reference, ".")
