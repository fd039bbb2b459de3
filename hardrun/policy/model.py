"""The policy model: one effective policy after its `extends:` chain is merged."""
from __future__ import annotations

from functools import cached_property

from ..spec.record import dataclass, field  # not dataclasses: see record.py

TYPE_CHECKING = False  # datetime costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    import datetime

SWITCH_ON, SWITCH_OFF = "on", "off"


@dataclass(frozen=True)
class HostMount:
    """A host path (and everything below it) that may be mounted."""
    path: str
    read_only: bool = True

    def covers(self, source: str) -> bool:
        base = self.path.rstrip("/") or "/"
        return base == "/" or source == base or source.startswith(base + "/")


@dataclass(frozen=True)
class Seccomp:
    required: bool | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Runtime:
    """Settings a container must have, and defaults `hardrun run` fills in."""
    gate: str | None = None               # "refuse" (when unset) or "warn"
    no_new_privileges: bool | None = None
    read_only_root: bool | None = None
    drop_all_capabilities: bool | None = None
    non_root: bool | None = None
    userns: bool | None = None
    resource_limits: bool | None = None
    seccomp: Seccomp = field(default_factory=Seccomp)
    user: str | None = None
    pids_limit: int | None = None
    memory: int | None = None              # bytes


@dataclass(frozen=True)
class Exemption:
    reason: str
    rule: str | None = None
    practice: str | None = None
    files: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    expires: datetime.date | None = None
    source: str | None = None              # the policy file that declares it
    line: int | None = None

    def expired(self, today: datetime.date) -> bool:
        return self.expires is not None and today > self.expires

    def covers(self, finding, subjects: tuple[str, ...], images: tuple[str, ...]) -> bool:
        """True when this exemption names `finding`'s rule or practice and its scope matches."""
        if self.rule is not None and finding.rule != self.rule:
            return False
        if self.practice is not None and finding.practice != self.practice:
            return False
        if self.files and not _any_glob(self.files, (finding.path,)):
            return False
        if self.services and not _any_glob(self.services, subjects):
            return False
        if self.images and not _any_glob(self.images, images):
            return False
        return True

    def describe(self) -> str:
        return f"rule {self.rule}" if self.rule else f"practice {self.practice}"


def _any_glob(patterns, values) -> bool:
    import fnmatch     # here: it imports `re`, which an audit whose patterns are cached never needs
    return any(value and fnmatch.fnmatchcase(value, pattern)
               for pattern in patterns for value in values)


@dataclass(frozen=True)
class Policy:
    name: str                              # built-in name or file path
    chain: tuple[str, ...]                 # this policy and the ones it extends, child first
    description: str | None = None
    fail_on: str = "warning"
    default_rules: str = SWITCH_ON                   # "on" | "off" | a severity
    rules: dict = field(default_factory=dict)        # rule id -> "on" | "off" | severity
    practices: dict = field(default_factory=dict)    # practice -> "on" | "off" | severity
    trusted_registries: tuple[str, ...] | None = None
    allowed_capabilities: tuple[str, ...] | None = None
    allowed_host_mounts: tuple[HostMount, ...] | None = None
    allowed_host_ports: tuple[int, ...] | None = None
    allowed_volume_types: tuple[str, ...] | None = None
    allowed_sysctls: tuple[str, ...] | None = None
    runtime: Runtime = field(default_factory=Runtime)
    exemptions: tuple[Exemption, ...] = ()
    discovered: bool = False       # found in a repository, not named: may only tighten `hardrun run`

    def setting_is_set(self, key: str) -> bool:
        """Whether the policy setting `key` (a rule's `enabled_by`) is in force."""
        attribute = {
            "allowed-capabilities": self.allowed_capabilities,
            "allowed-host-mounts": self.allowed_host_mounts,
            "allowed-host-ports": self.allowed_host_ports,
            "allowed-volume-types": self.allowed_volume_types,
            "allowed-sysctls": self.allowed_sysctls,
            "runtime.non-root": self.runtime.non_root or None,
            "runtime.userns": self.runtime.userns or None,
            "runtime.seccomp": (self.runtime.seccomp.required or None)
            if self.runtime.seccomp.allowed is None else True,
        }.get(key)
        return attribute is not None

    def implied_practices(self) -> dict[str, str]:
        """Practices the runtime requirements switch on at error."""
        implied = {}
        pairs = (("no-nnp", self.runtime.no_new_privileges),
                 ("writable-root", self.runtime.read_only_root),
                 ("no-cap-drop", self.runtime.drop_all_capabilities),
                 ("run-as-root", self.runtime.non_root),
                 ("seccomp-unconfined", self.runtime.seccomp.required),
                 ("no-resource-limits", self.runtime.resource_limits))
        for practice, required in pairs:
            if required:
                implied[practice] = "error"
        return implied

    @cached_property
    def _practice_switches(self) -> dict[str, str]:
        """practice -> switch: the implied practices under the ones the policy names.
        Computed once: rule_severity asks it for every rule of every audit."""
        return {**self.implied_practices(), **self.practices}

    def rule_severity(self, rule) -> str | None:
        """The severity `rule` has under this policy, or None when it is off."""
        by_rule = self.rules.get(rule.id)
        by_practice = self._practice_switches.get(rule.practice)
        if by_rule is not None:
            enabled = by_rule != SWITCH_OFF
        elif by_practice == SWITCH_OFF:
            enabled = False
        elif getattr(rule, "enabled_by", None):
            enabled = rule.enabled_by != "policy" and self.setting_is_set(rule.enabled_by)
        elif by_practice is not None:
            enabled = True
        else:
            enabled = self.default_rules != SWITCH_OFF
        if not enabled:
            return None
        return self.named_severity(rule) or rule.severity

    def named_severity(self, rule) -> str | None:
        """The severity this policy names for `rule` (by id, practice or `default-rules`);
        None when it keeps the rule's own, which a check may grade per finding."""
        for value in (self.rules.get(rule.id), self._practice_switches.get(rule.practice),
                      self.default_rules):
            if value not in (None, SWITCH_ON, SWITCH_OFF):
                return value
        return None


def policy_document(policy: Policy) -> dict:
    """The effective `policy` in its own YAML format (no `extends:`: the chain is merged)."""
    document: dict = {"version": 1}
    if policy.description:
        document["description"] = policy.description
    document["fail-on"] = policy.fail_on
    document["default-rules"] = policy.default_rules
    for key, value in (("rules", policy.rules), ("practices", policy.practices)):
        if value:
            document[key] = dict(sorted(value.items()))
    for key, allowed in (("trusted-registries", policy.trusted_registries),
                         ("allowed-capabilities", policy.allowed_capabilities),
                         ("allowed-host-ports", policy.allowed_host_ports),
                         ("allowed-volume-types", policy.allowed_volume_types),
                         ("allowed-sysctls", policy.allowed_sysctls)):
        if allowed is not None:
            document[key] = list(allowed)
    if policy.allowed_host_mounts is not None:
        document["allowed-host-mounts"] = [
            {"path": m.path, "read-only": m.read_only} for m in policy.allowed_host_mounts]
    runtime = _runtime_document(policy.runtime)
    if runtime:
        document["runtime"] = runtime
    if policy.exemptions:
        document["exemptions"] = [_exemption_document(e) for e in policy.exemptions]
    return document


def _runtime_document(runtime: Runtime) -> dict:
    out: dict = {}
    for key, value in (("gate", runtime.gate), ("no-new-privileges", runtime.no_new_privileges),
                       ("read-only-root", runtime.read_only_root),
                       ("drop-all-capabilities", runtime.drop_all_capabilities),
                       ("non-root", runtime.non_root), ("userns", runtime.userns),
                       ("resource-limits", runtime.resource_limits), ("user", runtime.user),
                       ("pids-limit", runtime.pids_limit), ("memory", runtime.memory)):
        if value is not None:
            out[key] = value
    seccomp: dict = {}
    if runtime.seccomp.required is not None:
        seccomp["required"] = runtime.seccomp.required
    if runtime.seccomp.allowed is not None:
        seccomp["allowed"] = list(runtime.seccomp.allowed)
    if seccomp:
        out["seccomp"] = seccomp
    return out


def _exemption_document(exemption: Exemption) -> dict:
    out: dict = {"rule": exemption.rule} if exemption.rule else {"practice": exemption.practice}
    for key in ("files", "services", "images"):
        if getattr(exemption, key):
            out[key] = list(getattr(exemption, key))
    out["reason"] = exemption.reason
    if exemption.expires:
        out["expires"] = exemption.expires.isoformat()
    return out
