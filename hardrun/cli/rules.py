"""`hardrun rules` and `hardrun explain RULE`."""
from __future__ import annotations

import click

from ..audit.rules import all_rules


@click.command()
@click.option("--practice", help="Only rules of this practice.")
def rules(practice):
    """List every audit rule: id, severity, practice, title, and `[--fix: KINDS]` for
    the rules `hardrun audit --fix` fixes in those kinds of file."""
    from ..audit.fixes import FIXABLE
    from ..audit.rules import practices
    if practice and practice not in practices():
        # a misspelt practice would otherwise list nothing and look like "no rules"
        raise click.BadParameter(f"no practice named {practice!r} (see `hardrun rules`)",
                                 param_hint="'--practice'")
    for rule in all_rules().values():
        if practice and rule.practice != practice:
            continue
        fixable = [kind for kind, ids in FIXABLE.items() if rule.id in ids]
        marker = f"  [--fix: {', '.join(fixable)}]" if fixable else ""
        click.echo(f"{rule.id}  {rule.severity:<7}  {rule.practice:<22}  {rule.title}{marker}")


@click.command()
@click.argument("rule_id", metavar="RULE")
def explain(rule_id):
    """Print the documentation of RULE (an id such as HR1001, or a practice name)."""
    from ..audit.explain import explain_text
    from ..errors import UsageError
    try:
        click.echo(explain_text(rule_id), nl=False)
    except UsageError as error:
        raise click.UsageError(error.message)
