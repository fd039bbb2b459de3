"""`hardrun run --explain` and `--seccomp-learn`: what the parent does with the calls the
listener (hardrun.runtime.seccomp_notify) saw.

Explain names each refused call, its architecture, how often, who called it first, the
profile's rule (or its default action) with the built-in profile's reason, and the exact
loosening: `--cap-add X` where the built-in profile allows the call with a capability, else
`--security-opt seccomp=FILE` with a generated profile (the same profile, allowing those
calls). Learn writes a minimal profile in Docker's JSON format (hardrun.runtime.seccomp_learn).
"""
from __future__ import annotations

import os
import sys

from ..display import printable
from ..errors import UsageError
from ..spec.record import dataclass
from ..spec.seccomp_calls import WHY
from . import seccomp_notify as notify

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .seccomp_profile import SeccompProfile

EXPLAIN_MODES = ("auto", "always", "never")


def explain_mode(value: str | None, stderr_is_tty: bool) -> bool:
    """--explain[=auto|always|never] (given without a value: always) to on or off."""
    mode = value or "auto"
    if mode == "true":
        mode = "always"
    if mode not in EXPLAIN_MODES:
        raise UsageError(f"invalid value {value!r} for --explain: expected auto, always or never")
    return mode == "always" or (mode == "auto" and stderr_is_tty)


def syscall_name(arch: int, nr: int) -> str:
    """The name libseccomp gives syscall `nr` of the ABI with audit value `arch`."""
    import ctypes

    from .seccomp_bpf import ARCH_TOKENS, libseccomp

    token = arch
    if arch == ARCH_TOKENS["SCMP_ARCH_X86_64"] and nr & 0x40000000:
        token = ARCH_TOKENS["SCMP_ARCH_X32"]
    lib = libseccomp()
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = (ctypes.c_uint32, ctypes.c_int)
    pointer = lib.seccomp_syscall_resolve_num_arch(token, nr)
    if not pointer:
        return f"syscall {nr}"
    name = ctypes.string_at(pointer).decode()
    ctypes.CDLL(None).free(ctypes.c_void_p(pointer))
    return name


def arch_name(arch: int) -> str:
    """`x86_64` for AUDIT_ARCH_X86_64 (libseccomp's name without its prefix)."""
    from .seccomp_bpf import ARCH_TOKENS

    for name, token in ARCH_TOKENS.items():
        if token == arch and name != "SCMP_ARCH_X32":
            return name[len("SCMP_ARCH_"):].lower()
    return hex(arch)


@dataclass(frozen=True)
class Denial:
    """One refused system call, as the report shows it."""
    syscall: str
    arch: str
    count: int
    pid: int | None
    comm: str
    errno: int
    rule: str          # "syscalls[60]" or "defaultAction"
    reason: str        # the rule's comment, or what the default does
    why: str           # the built-in profile's reason for this call, if any
    cap_add: str | None

    def as_json(self) -> dict:
        return {"syscall": self.syscall, "arch": self.arch, "count": self.count, "pid": self.pid,
                "comm": self.comm, "errno": self.errno, "errno_name": _errno_name(self.errno),
                "rule": self.rule, "reason": self.reason, "why": self.why, "cap_add": self.cap_add}


def _errno_name(number: int) -> str:
    import errno

    return errno.errorcode.get(number, str(number))


def denials(calls, profile: SeccompProfile, capabilities, builtin: bool) -> list[Denial]:
    """The recorded calls (seccomp_notify.Call) explained against `profile`."""
    resolved = profile.resolve(capabilities)
    comments = {rule.where: rule.comment for rule in profile.syscalls}
    default_profile = _builtin() if builtin else None
    found = []
    for call in sorted(calls.values(), key=lambda c: (-c.count, c.nr)):
        name = syscall_name(call.arch, call.nr)
        number = call.verdict & 0xFFFF
        rule = _matching_rule(resolved.rules, name, call.verdict, call.args)
        if rule is not None:
            where, reason = rule.where, _group_comment(profile, rule.where, comments)
        elif not any(r.name == name for r in resolved.rules) and resolved.default_action != call.verdict:
            where, reason = "ENOSYS", "newer than every call the profile names: ENOSYS, so programs fall back"
        else:
            where, reason = "defaultAction", f"not allowed by any rule: the default action ({_errno_name(number)})"
        cap = _cap_that_allows(default_profile, name, capabilities) if builtin else None
        found.append(Denial(name, arch_name(call.arch), call.count, call.container_pid, call.comm,
                            number, where, reason, WHY.get(name, "") if builtin else "", cap))
    return found


def _builtin():
    from .seccomp import default_profile
    return default_profile()


def _group_comment(profile, where: str, comments: dict) -> str:
    """A rule's comment, or that of the rule above it that starts its group (the built-in
    profile comments each group once)."""
    index = next((i for i, rule in enumerate(profile.syscalls) if rule.where == where), None)
    while index is not None and index >= 0:
        comment = profile.syscalls[index].comment
        if comment:
            return comment
        index -= 1
    return comments.get(where, "")


def _matching_rule(rules, name: str, verdict: int, args: tuple):
    candidates = [r for r in rules if r.name == name and r.action == verdict]
    # A rule with argument conditions that all hold says more than an unconditional one.
    for rule in sorted(candidates, key=lambda r: -len(r.args)):
        if all(_holds(condition, args) for condition in rule.args):
            return rule
    return None


def _holds(condition, args: tuple) -> bool:
    value = args[condition.index]
    op, expected = condition.op, condition.value
    if op == "SCMP_CMP_MASKED_EQ":
        return value & expected == condition.value_two
    return {"SCMP_CMP_EQ": value == expected, "SCMP_CMP_NE": value != expected,
            "SCMP_CMP_LT": value < expected, "SCMP_CMP_LE": value <= expected,
            "SCMP_CMP_GT": value > expected, "SCMP_CMP_GE": value >= expected}[op]


def _cap_that_allows(profile, name: str, capabilities) -> str | None:
    """The capability with which the built-in profile allows `name`, if one does."""
    from .seccomp_platform import normalized_capabilities

    held = normalized_capabilities(capabilities)
    for rule in profile.syscalls:
        if (rule.action == "SCMP_ACT_ALLOW" and name in rule.names and len(rule.includes.caps) == 1
                and not rule.args and rule.includes.caps[0] not in held):
            return rule.includes.caps[0]
    return None


def loosened_profile(data: dict, names) -> dict:
    """Profile `data` (Docker's JSON format) allowing `names` unconditionally as well."""
    names = sorted(set(names))
    rules = []
    for rule in data.get("syscalls") or []:
        kept = [n for n in rule.get("names") or [rule.get("name")] if n not in names]
        if kept:
            rule = {k: v for k, v in rule.items() if k != "name"}
            rule["names"] = kept
            rules.append(rule)
    allow = {"names": names, "action": "SCMP_ACT_ALLOW",
             "comment": "allowed after hardrun run --explain showed them refused"}
    return {**data, "syscalls": [allow] + rules}


def profile_data(source: str) -> dict:
    """A profile file's data (JSON or YAML), already validated by its loader."""
    from ..parsing.seccomp_file import read_profile
    from .seccomp import DEFAULT_PROFILE_PATH

    return read_profile(DEFAULT_PROFILE_PATH if source == "default" else source)[0]


def write_generated(data: dict, directory: str | None = None) -> str:
    """Write a generated profile under hardrun's cache (named by its content) and return its path."""
    import json

    from ..userfiles import write_private
    from .seccomp_cache import default_cache_dir, sha256

    text = json.dumps(data, indent=2) + "\n"
    directory = directory or os.path.join(os.path.dirname(default_cache_dir()), "profiles")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    name = f"explained-{sha256(text.encode()).hexdigest()[:16]}.json"
    if not write_private(directory, name, text.encode()):
        raise OSError(f"cannot write {os.path.join(directory, name)}")
    return os.path.join(directory, name)


def report_lines(found: list[Denial], profile_label: str, loosen_path: str | None) -> list[str]:
    """The report printed on stderr after the container exits."""
    if not found:
        return []
    plural = "s" if len(found) != 1 else ""
    lines = [f"hardrun: the seccomp profile ({profile_label}) refused {len(found)} system call{plural}:"]
    for denial in found:
        who = f"pid {denial.pid} ({printable(denial.comm)})" if denial.pid is not None else "a process"
        times = "once" if denial.count == 1 else f"{denial.count} times"
        lines.append(f"  {denial.syscall} ({denial.arch}): {times}, first by {who}: "
                     f"{_errno_name(denial.errno)} from {denial.rule}")
        if denial.why:
            lines.append(f"    why: {denial.syscall}: {denial.why}")
        elif denial.reason:
            lines.append(f"    rule: {printable(denial.reason)}")
        if denial.cap_add:
            lines.append(f"    to allow: --cap-add {denial.cap_add}")
    if loosen_path:
        others = ", ".join(d.syscall for d in found if not d.cap_add)
        lines.append(f"  to allow {others}: --security-opt seccomp={loosen_path}")
    return lines


class Explain:
    """--explain: the filter whose refusals reach the parent, and the report after exit."""

    def __init__(self, json_path: str | None = None, stderr=None):
        notify.require_user_notif("--explain")
        self.json_path = json_path
        self.stderr = stderr or sys.stderr
        self.listener: notify.Listener | None = None

    def prepare(self, bpf, cfg):
        """The child's filter: `bpf` (the profile's, from the cache) with refusals notified.
        The cached program itself is never changed."""
        if bpf is None:
            return None
        self.listener = notify.Listener(bytes(bpf))
        return notify.ListenedFilter(notify.explain_program(bytes(bpf)), bpf.flags, self.listener.child_fd)

    def started(self) -> None:
        if self.listener is not None:
            self.listener.start()

    def finish(self, cfg) -> None:
        """Stop the listener and report; a report that cannot be made is a warning, never
        the command's exit status."""
        if self.listener is None:
            return
        self.listener.stop()
        from ..errors import HardrunError
        try:
            self._report(cfg, self.listener)
        except (HardrunError, OSError) as error:
            print(f"hardrun: warning: the --explain report failed: {error}", file=self.stderr, flush=True)

    def _report(self, cfg, listener: notify.Listener) -> None:
        from .seccomp import default_profile, load_profile

        builtin = cfg.seccomp == "default"
        profile = default_profile() if builtin else load_profile(cfg.seccomp)
        found = denials(listener.calls, profile, cfg.caps, builtin)
        loosen_path = None
        if any(not d.cap_add for d in found):
            names = [d.syscall for d in found if not d.cap_add]
            loosen_path = write_generated(loosened_profile(profile_data(cfg.seccomp), names))
        label = "built-in" if builtin else cfg.seccomp
        for line in report_lines(found, label, loosen_path):
            print(line, file=self.stderr)
        if listener.error is not None:
            print(f"hardrun: warning: the seccomp listener failed: {listener.error}", file=self.stderr)
        self.stderr.flush()
        if self.json_path:
            import json

            from ..userfiles import write_text
            document = {"profile": label, "denials": [d.as_json() for d in found],
                        "loosen": {"cap_add": sorted({d.cap_add for d in found if d.cap_add}),
                                   "security_opt": f"seccomp={loosen_path}" if loosen_path else None}}
            write_text(self.json_path, json.dumps(document, indent=2) + "\n")
