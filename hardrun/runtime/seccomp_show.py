"""`hardrun seccomp show` and `hardrun seccomp diff`: a profile one system call per line.

Each line names the call and every rule about it: the action (allowed, or refused with
its errno), the argument conditions and the capability or kernel conditions, then why the
built-in profile refuses it where it does (hardrun.spec.seccomp_calls.WHY).
"""
from __future__ import annotations

import errno

from ..spec.seccomp_calls import WHY
from .seccomp_profile import SeccompProfile

_OPERATORS = {"SCMP_CMP_EQ": "==", "SCMP_CMP_NE": "!=", "SCMP_CMP_LT": "<", "SCMP_CMP_LE": "<=",
              "SCMP_CMP_GT": ">", "SCMP_CMP_GE": ">="}


def action_text(action: str, errno_ret: int | None) -> str:
    if action == "SCMP_ACT_ALLOW":
        return "allowed"
    if action == "SCMP_ACT_ERRNO":
        number = 1 if errno_ret is None else errno_ret
        return f"refused ({errno.errorcode.get(number, number)})"
    return {"SCMP_ACT_KILL": "kills the thread", "SCMP_ACT_KILL_THREAD": "kills the thread",
            "SCMP_ACT_KILL_PROCESS": "kills the process", "SCMP_ACT_TRAP": "SIGSYS",
            "SCMP_ACT_TRACE": "traced", "SCMP_ACT_LOG": "allowed and logged"}[action]


def _condition_text(rule) -> str:
    tests = []
    for arg in rule.args:
        if arg.op == "SCMP_CMP_MASKED_EQ":
            tests.append(f"arg{arg.index} & {arg.value:#x} == {arg.value_two:#x}")
        else:
            tests.append(f"arg{arg.index} {_OPERATORS[arg.op]} {arg.value:#x}")
    parts = []
    inc, exc = rule.includes, rule.excludes
    if inc.caps:
        parts.append("with " + " and ".join("CAP_" + c for c in inc.caps))
    if exc.caps:
        parts.append("without " + " or ".join("CAP_" + c for c in exc.caps))
    if inc.arches:
        parts.append("on " + ", ".join(inc.arches))
    if exc.arches:
        parts.append("not on " + ", ".join(exc.arches))
    if inc.min_kernel:
        parts.append("Linux %d.%d+" % inc.min_kernel)
    if exc.min_kernel:
        parts.append("before Linux %d.%d" % exc.min_kernel)
    return (" if " + " and ".join(tests) if tests else "") + "".join(" " + part for part in parts)


def clauses(profile: SeccompProfile) -> dict[str, list[str]]:
    """name -> each rule about it as text, in the profile's order."""
    found: dict[str, list[str]] = {}
    for rule in profile.syscalls:
        text = action_text(rule.action, rule.errno_ret) + _condition_text(rule)
        for name in rule.names:
            found.setdefault(name, []).append(text)
    return found


def default_text(profile: SeccompProfile) -> str:
    return f"every other call: {action_text(profile.default_action, profile.default_errno_ret)}"


def show_lines(profile: SeccompProfile, builtin: bool) -> list[str]:
    """One line per call the profile names, then its default action."""
    lines = []
    found = clauses(profile)
    width = max((len(name) for name in found), default=0) + 2
    for name in sorted(found):
        text = "; ".join(found[name])
        why = WHY.get(name) if builtin and any(not t.startswith("allowed") for t in found[name]) else None
        lines.append(f"{name.ljust(width)}{text}" + (f"  ({why})" if why else ""))
    lines.append(default_text(profile))
    return lines


def allowed_names(profile: SeccompProfile, capabilities=()) -> set[str]:
    """The calls a container with these capabilities may make (at least with some arguments)."""
    from .seccomp_profile import ACTIONS

    return {rule.name for rule in profile.resolve(capabilities).rules
            if rule.action == ACTIONS["SCMP_ACT_ALLOW"]}


def diff_lines(a: SeccompProfile, b: SeccompProfile) -> list[str]:
    """`-` only A's rules about a call, `+` only B's; empty when they say the same."""
    left, right = clauses(a), clauses(b)
    lines = []
    if default_text(a) != default_text(b):
        lines += [f"- {default_text(a)}", f"+ {default_text(b)}"]
    for name in sorted(set(left) | set(right)):
        old, new = left.get(name, []), right.get(name, [])
        if sorted(old) == sorted(new):
            continue
        lines += [f"- {name}: {text}" for text in old if text not in new]
        lines += [f"+ {name}: {text}" for text in new if text not in old]
    if lines:
        lines.append(f"allowed calls (no capabilities): {len(allowed_names(a))} -> {len(allowed_names(b))}")
    return lines
