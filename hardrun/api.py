"""The library surface: what the CLI calls and what other programs may call."""
from __future__ import annotations


def audit(paths, options=None, stdin_text=None, docker_run_lines=()):
    """Audit files/directories and `docker run` command lines; returns a
    hardrun.audit.findings.Report."""
    from .audit.engine import audit as _audit
    return _audit(paths, options, stdin_text=stdin_text, docker_run_lines=docker_run_lines)


def audit_with_policy(paths, policy=None, kind=None, stdin_text=None, docker_run_lines=(),
                      skip_unknown=False, progress=None, shellcheck=None, images=()):
    """(Report, Policy): audit `paths` under `policy` (a name, a file, a Policy, or None to
    discover `.hardrun.yaml` at the repository root of the first path, else `default`).
    `skip_unknown`, `progress` and `images`: as for `hardrun.audit.engine.audit`.
    `shellcheck`: the ShellCheck binary for RUN instructions (UsageError if it is not an
    executable file); None uses the one on PATH, if any."""
    from .audit.engine import audit as _audit
    from .policy import audit_options, expired_exemption_findings, named_or_found_policy
    from .policy.model import Policy
    if not isinstance(policy, Policy):
        first = next((p for p in paths if p != "-"), ".")
        policy = named_or_found_policy(policy, first)
    options = audit_options(policy, kind)
    if shellcheck is not None:
        from .audit.shellcheck import checked_binary
        from .spec.record import replace
        options = replace(options, shellcheck=checked_binary(shellcheck))
    report = _audit(paths, options, stdin_text=stdin_text, docker_run_lines=docker_run_lines,
                    skip_unknown=skip_unknown, progress=progress, images=images)
    report.findings.extend(expired_exemption_findings(policy))
    report.findings.sort(key=lambda f: (f.path, f.line or 0, f.rule))
    return report, policy


def fix_findings(report, policy, kind=None):
    """(fixes, problems): `hardrun audit --fix`'s plan for `report`, made under `policy`
    (hardrun.audit.fixes.plan_fixes); write it with hardrun.audit.fixes.write_fixes."""
    from .audit.fixes import plan_fixes
    from .policy import audit_options
    return plan_fixes(report, audit_options(policy, kind))


def run(spec, command=None) -> int:
    """Run `command` (or spec.command) in a hardened container described by a RunSpec;
    returns the exit status. Raises hardrun.errors.UsageError for an invalid spec."""
    from .runtime import run as _run
    return _run(spec, command)
