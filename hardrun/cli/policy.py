"""`hardrun policy list|show|validate`."""
from __future__ import annotations

import click


@click.group()
def policy():
    """Built-in and repository policies: list, show the effective policy, validate a file."""


@policy.command("list")
def list_policies():
    """List the built-in policies (use one with --policy NAME)."""
    from ..policy import builtin_policies, load_policy
    for name in builtin_policies():
        description = load_policy(name).description or ""
        click.echo(f"{name:<12} {description}")


@policy.command()
@click.argument("policy_ref", metavar="[NAME|FILE]", required=False)
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


def _load(reference: str | None):
    """The named policy, else the one found here (confined to its repository)."""
    from ..errors import HardrunError
    from ..policy import named_or_found_policy
    try:
        return named_or_found_policy(reference, ".")
    except HardrunError as error:
        raise click.ClickException(error.summary()) from None
