"""`hardrun export --to docker-run|compose|kubernetes|oci [--policy P | --config run.yaml]`
and `hardrun export --to validating-admission-policy|kyverno [--policy P]`."""
from __future__ import annotations

import click

from ..policy.admission import ADMISSION_TARGETS
from ..policy.export import TARGETS
from .failures import one_line_errors


@click.command()
@click.option("--to", "target", type=click.Choice(TARGETS + ADMISSION_TARGETS), required=True,
              help="What to write: another runtime's settings, or the policy's Kubernetes "
                   "controls as admission objects (a ValidatingAdmissionPolicy and its binding, "
                   "or a Kyverno ClusterPolicy).")
@click.option("--policy", "policy_ref", metavar="NAME|FILE",
              help="The policy whose run requirements are exported [default: .hardrun.yaml at "
                   "the repository root, else `default`].")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False),
              help="Export this hardrun run config (hardened by the policy's defaults).")
@click.option("--image", metavar="REF",
              help="The image to start (default: the run config's, else the placeholder IMAGE).")
@click.option("--seccomp-out", type=click.Path(dir_okay=False),
              help="Also write the seccomp profile (Docker's JSON format) to FILE and refer to "
                   "it: a Kubernetes Localhost profile, docker/compose seccomp=FILE. An OCI "
                   "config always embeds the profile. Written like -o.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write to FILE instead of standard output (as a new file renamed over "
                   "FILE; a symlink, FIFO or device named FILE is refused).")
@one_line_errors("hardrun export")
def export(target, policy_ref, config, image, seccomp_out, output):
    """Write a policy's run requirements, or a run config, as another runtime's settings.

    What is written is what `hardrun run` would start under the policy: `hardrun audit
    --policy` of the result gives the same verdict (a policy's own requirements pass).

    --to validating-admission-policy / kyverno: every rule the policy fails a Kubernetes
    manifest on becomes a CEL check, so a cluster refuses at admission what `hardrun audit
    --policy` refuses; exemptions scoped to whole objects (`services: ["Deployment/web *"]`)
    become match exclusions, those scoped to containers (`images`, a container's name) leave
    them out of the checks. A gating rule or exemption that cannot be exported is an error
    (`default` and `strict` export with `rules: {HR2016: off}`).
    """
    from ..userfiles import write_text
    text, profile = _export(target, policy_ref, config, image, seccomp_out)
    if seccomp_out:
        import json
        write_text(seccomp_out, json.dumps(profile, indent=2) + "\n")
    if output:
        write_text(output, text)
    if not output:
        click.echo(text, nl=False)


def _export(target, policy_ref, config, image, seccomp_out):
    from ..frontends.hardrun_config import read_run_config
    from ..policy import named_or_found_policy
    from ..policy.export import export, export_spec, seccomp_profile_data
    policy = named_or_found_policy(policy_ref, config or ".")
    if target in ADMISSION_TARGETS:
        from ..errors import UsageError
        from ..policy.admission import export_admission
        if config or image or seccomp_out:
            raise UsageError(f"--to {target} exports the policy's controls: --config, --image and "
                             "--seccomp-out do not apply")
        return export_admission(policy, target), None
    spec = export_spec(policy, read_run_config(config) if config else None, image)
    profile = seccomp_profile_data(spec) if seccomp_out else None
    return export(target, spec, seccomp_file=seccomp_out, seccomp_profile=profile), profile
