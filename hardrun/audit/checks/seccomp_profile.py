"""HR2030: a seccomp profile file a run config names (`--security-opt seccomp=FILE`,
compose `security_opt: [seccomp:FILE]`, a hardrun run config's `security.seccomp`) that
allows a dangerous system call.

The profile is read in Docker's JSON format (or the same data as YAML) without the
runtime: a call is allowed when a rule with an allowing action names it, or when the
default action allows and no rule refuses it. A rule that needs a capability
(`includes.caps`) is the capability's matter (HR2003), and a rule with argument filters
is the filter the call needs (`clone` without namespace flags), so neither is reported.
"""
from __future__ import annotations

import os

from ...spec.seccomp_calls import DANGEROUS_CALLS, WHY
from ..findings import Hit
from . import check

# Since Linux 4.8 a traced process's system calls are still filtered after the tracer
# changes them, so ptrace cannot bypass seccomp: Docker's profile allows these from 4.8 on.
_SAFE_SINCE_4_8 = {"ptrace", "process_vm_readv", "process_vm_writev"}
_ALLOWING = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"}
_NOT_A_FILE = {"default", "unconfined", "runtime/default", "docker/default"}
_MAX_PROFILE_BYTES = 4 * 1024 * 1024


@check("HR2030")
def seccomp_profile_allows_dangerous_call(spec, context):
    path = _profile_path(spec.seccomp, context.path)
    if path is None:
        return
    profile = _read_profile(path)
    if profile is None:
        return
    line = spec.lines.get("seccomp", spec.line)
    for name in allowed_dangerous_calls(profile):
        yield Hit(line, f"the seccomp profile {spec.seccomp} allows {name}: {WHY[name]}",
                  subject=name)


def _profile_path(value: str | None, audited: str) -> str | None:
    if not value or value.lower() in _NOT_A_FILE or value.startswith(("inline:", "localhost/")):
        return None
    if os.path.isabs(value):
        return value
    directory = os.path.dirname(audited) if audited and not audited.startswith("<") else ""
    return os.path.join(directory, value)


def _read_profile(path: str) -> dict | None:
    """The profile's data, or None where it cannot be judged (missing, unreadable, outside
    the audited tree, not a mapping): no finding rather than a guess."""
    from ...errors import HardrunError
    from ...parsing.seccomp_file import read_profile
    from ...userfiles import outside_audited_root
    if outside_audited_root(path):
        return None
    try:
        data, _ = read_profile(path, _MAX_PROFILE_BYTES)
    except (HardrunError, OSError):   # broken: `hardrun run` refuses it, nothing to judge
        return None
    return data if isinstance(data, dict) else None


def allowed_dangerous_calls(profile: dict) -> list[str]:
    """The dangerous calls `profile` allows without a capability or an argument filter."""
    default_allows = profile.get("defaultAction") in _ALLOWING
    allowed: set[str] = set()
    refused: set[str] = set()
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            continue
        names = [n for n in (rule.get("names") or []) + [rule.get("name")] if isinstance(n, str)]
        includes = rule.get("includes")
        if not isinstance(includes, dict):
            includes = {}
        conditional = bool(rule.get("args")) or bool(includes.get("caps"))
        if rule.get("action") in _ALLOWING and not conditional:
            allowed.update(n for n in names if not (n in _SAFE_SINCE_4_8 and _from_4_8(includes)))
        elif rule.get("action") not in _ALLOWING and not rule.get("args"):
            refused.update(names)
    found = [name for name in DANGEROUS_CALLS
             if name in allowed or (default_allows and name not in refused)]
    return sorted(found)


def _from_4_8(includes: dict) -> bool:
    parts = str(includes.get("minKernel") or "0.0").split(".")
    try:
        return (int(parts[0]), int(parts[1])) >= (4, 8)
    except (IndexError, ValueError):
        return False
