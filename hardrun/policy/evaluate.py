"""Applying a policy: to the audit engine's options, to one RunSpec, and at `hardrun run`.

Both gates go through the engine's run rules, so `hardrun audit --policy P` and
`hardrun run --policy P` print the same rule ids and messages for the same container.
"""
from __future__ import annotations

from ..errors import HardrunError, UsageError
from ..spec import PROVENANCE_FIELDS
from ..spec.defaults import DEFAULT_PIDS_LIMIT
from .model import Policy
from ..spec.record import dataclass  # not dataclasses: see record.py

TYPE_CHECKING = False  # datetime costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    import datetime

    from .model import Exemption

# `hardrun run` exit status when the policy refuses the container before anything is
# created. 125/126/127 are the runtime's own failures (Docker's meanings) and 128+N a
# command killed by signal N; 1 and 2 mean findings / unreadable input for `hardrun
# audit`; 124 is what `timeout` wrappers in CI return. 3 is none of these, and the
# refusal is also printed on stderr with the rule ids.
GATE_REFUSED_EXIT = 3
EXPIRED_EXEMPTION = "HR0002"


def audit_options(policy: Policy, kind: str | None = None):
    """The engine's AuditOptions for auditing under `policy`."""
    from ..audit.engine import AuditOptions
    from ..audit.rules import all_rules
    from ..audit.shellcheck import is_code
    rules = all_rules().values()
    enabled = frozenset(rule.id for rule in rules if policy.rule_severity(rule))
    # Only the severities the policy names: otherwise a check's own grading of a finding
    # (HR1009's info for a verified download, ShellCheck's levels) stands.
    named = {rule.id: policy.named_severity(rule) for rule in rules if rule.id in enabled}
    return AuditOptions(
        kind=kind,
        trusted_registries=policy.trusted_registries,
        rule_filter=lambda rule: rule.id in enabled,
        severity_override={rule_id: severity for rule_id, severity in named.items() if severity},
        code_switches={code: switch for code, switch in policy.rules.items() if is_code(code)},
        exemptions=_unexpired(policy.exemptions),
        policy=policy,
        run_defaults=lambda spec: harden(spec, policy),
    )


def _unexpired(exemptions: tuple[Exemption, ...]) -> tuple[Exemption, ...]:
    """The exemptions not expired today (only exemptions expire: no date is looked up
    without them)."""
    if not exemptions:
        return ()
    today = _today()
    return tuple(e for e in exemptions if not e.expired(today))


def expired_exemption_findings(policy: Policy, today: datetime.date | None = None) -> list:
    """One HR0002 finding per expired exemption, at the policy line that declares it.

    An expired exemption stops covering anything (its findings count again) and is itself
    reported, at warning by default, so a stale `expires:` is noticed before it hides a
    problem: the policy can raise it with `rules: {HR0002: error}` or switch it off.
    """
    from ..audit.findings import Finding
    from ..audit.rules import all_rules
    rule = all_rules()[EXPIRED_EXEMPTION]
    if policy.rules.get(EXPIRED_EXEMPTION) == "off":       # only naming it switches it off
        return []
    severity = policy.rule_severity(rule) or rule.severity
    if not policy.exemptions:
        return []
    today = today or _today()
    return [Finding(rule.id, rule.practice, severity, exemption.source or policy.name,
                    exemption.line, None,
                    f"exemption of {exemption.describe()} expired on {exemption.expires.isoformat()}: "
                    f"renew it with a new reason or fix the findings it covered")
            for exemption in policy.exemptions
            if exemption.expires is not None and exemption.expired(today)]


def _today() -> datetime.date:
    import datetime   # here, not at the top: only policies with dates need it (start-up time)
    return datetime.date.today()


def evaluate_runspec(spec, policy: Policy) -> list:
    """The run rules' findings for one RunSpec under `policy` (exemptions applied)."""
    from ..audit.engine import check_runspecs
    return check_runspecs([spec], audit_options(policy)) + expired_exemption_findings(policy)


def failing(findings, policy: Policy) -> list:
    from ..audit.findings import severity_rank
    threshold = severity_rank(policy.fail_on)
    return [f for f in findings if not f.suppressed and severity_rank(f.severity) >= threshold]


@dataclass(frozen=True)
class Verdict:
    refused: bool           # the policy refused it (exit GATE_REFUSED_EXIT)
    warned: bool            # findings reach the threshold but the policy only warns

    @property
    def allowed(self) -> bool:
        """The container may start."""
        return not self.refused

    def __str__(self) -> str:
        return "refuse" if self.refused else ("warn" if self.warned else "pass")


def gate_run(spec, policy: Policy):
    """(verdict, findings, hardened_spec) for starting `spec` under `policy`.

    Settings the user left unspecified take the policy's hardened defaults first; the
    hardened spec is then judged by the same run rules `hardrun audit` uses.
    """
    hardened = harden(spec, policy)
    findings = evaluate_runspec(hardened, policy)
    blocking = failing(findings, policy)
    refuse = bool(blocking) and policy.runtime.gate != "warn"
    verdict = Verdict(refused=refuse, warned=bool(blocking) and not refuse)
    return verdict, findings, hardened


class PolicyRefused(HardrunError):
    """`hardrun run` refuses a container its policy forbids (exit GATE_REFUSED_EXIT)."""
    run_exit_code = GATE_REFUSED_EXIT


def enforce_at_run(spec, policy: Policy, stream):
    """The hardened spec `hardrun run` starts, after the gate: findings go to `stream` as
    the audit prints them; a refusal raises PolicyRefused."""
    verdict, findings, hardened = gate_run(spec, policy)
    if policy.discovered:
        refuse_loosening(spec, hardened, policy)
    shown = format_findings(findings)
    if verdict.refused:
        if shown:
            stream.write(shown + "\n")
        blocking = len(failing(findings, policy))
        raise PolicyRefused(f"refused by policy {policy.name}: {blocking} finding(s) at "
                            f"{policy.fail_on} or above (nothing was started)")
    if verdict.warned and shown:
        stream.write(shown + "\n")
    return hardened


# The policy setting that changes a RunSpec field, for the refusal's message.
_SETTING_OF = {"pids_limit": "runtime.pids-limit", "memory": "runtime.memory", "user": "runtime.user"}


def refuse_loosening(spec, hardened, policy: Policy) -> None:
    """A policy picked up from the repository may only tighten `hardrun run`: `hardened`
    is compared field by field with what would run without the policy, and any
    difference that is not tighter (or that no judge below knows) refuses the start.
    The gate itself can only refuse, so this covers everything a policy does to a run."""
    from ..spec.record import fields
    baseline = harden(spec, Policy(name="hardrun", chain=()))
    for item in fields(type(hardened)):
        before, after = getattr(baseline, item.name), getattr(hardened, item.name)
        if item.name in PROVENANCE_FIELDS or before == after:
            continue
        judge = _TIGHTER.get(item.name)
        if judge is None or not judge(before, after, hardened):
            setting = _SETTING_OF.get(item.name, item.name)
            raise UsageError(f"{policy.name}: {setting} {after} would loosen `hardrun run` "
                             f"(without the policy: {_shown(item.name, before)}); a policy found "
                             "in the repository may only tighten it",
                             hint=f"name the policy with --policy {policy.name} to accept it")


def _shown(name: str, value) -> str:
    if name == "pids_limit" and value is None:
        return str(DEFAULT_PIDS_LIMIT)
    return {"memory": "no limit", "user": "root"}.get(name, "unset") if value is None else str(value)


def _lower_pids_limit(before, after, spec) -> bool:
    limit = DEFAULT_PIDS_LIMIT if before is None else before
    return after is not None and after > 0 and (limit <= 0 or after <= limit)


def _lower_memory(before, after, spec) -> bool:
    return after is not None and (before is None or after <= before)


def _non_root_in_private_userns(before, after, spec) -> bool:
    """Another user inside a private user namespace is an unprivileged uid on the host
    either way; under `--userns host` it would be a different host user."""
    from ..spec.users import is_root_user
    return (before is None and after is not None and not is_root_user(after)
            and spec.namespaces.get("user") != "host")


# field -> whether the policy's value is at least as strict as hardrun's own
_TIGHTER = {"pids_limit": _lower_pids_limit, "memory": _lower_memory,
            "user": _non_root_in_private_userns}


def harden(spec, policy: Policy):
    """`spec` with every unspecified setting filled by hardrun's and the policy's defaults.

    hardrun's own defaults (what `hardrun run` does anyway: no capabilities,
    no_new_privs, read-only root, the default seccomp profile, a private user namespace)
    apply under every policy; the policy adds the default user and limits. Explicit
    settings are never changed here: a policy that forbids them refuses instead.
    """
    from ..frontends.hardrun_config import apply_hardrun_defaults
    spec = apply_hardrun_defaults(spec)
    runtime = policy.runtime
    changes: dict[str, object] = {}
    if spec.user is None and runtime.user is not None:
        changes["user"] = runtime.user
    if spec.pids_limit is None and runtime.pids_limit is not None:
        changes["pids_limit"] = runtime.pids_limit
    if spec.memory is None and runtime.memory is not None:
        changes["memory"] = runtime.memory
    return spec.evolve(**changes) if changes else spec


def format_findings(findings) -> str:
    """Unsuppressed findings in the text report's `path:line RULE severity message` form."""
    lines = []
    for finding in findings:
        if finding.suppressed:
            continue
        where = f"{finding.path}:{finding.line}" if finding.line else finding.path
        subject = f"[{finding.subject}] " if finding.subject else ""
        lines.append(f"{where} {finding.rule} {finding.severity} {subject}{finding.message}")
    return "\n".join(lines)
