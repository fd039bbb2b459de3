"""`hardrun run --seccomp-learn PROFILE`: every system call allowed but recorded, then a
minimal profile in Docker's JSON format.

The profile names the calls seen. For a call the built-in profile filters by argument
(`clone` flags, `personality`, `socket` families, `ioctl` commands), the built-in's
argument rules are copied when every call seen satisfied them; a call the built-in answers
with ENOSYS so that libc falls back (`clone3`) keeps that answer. The calls the runtime
itself makes after the filter is loaded are recorded like the program's (they go through
the filter too), plus the two the listener hand-over makes unrecorded (sendmsg, close) and
the calls that only wait (WAITING_CALLS), whose use depends on timing.
An existing PROFILE is merged into: its rules stay, calls it does not name are added.
"""
from __future__ import annotations

import json
import os
import sys

from ..errors import HardrunError, UsageError
from ..spec.seccomp_calls import WHY
from . import seccomp_notify as notify
from .seccomp_explain import profile_data, syscall_name

_ENOSYS = 38
_ALLOW = "SCMP_ACT_ALLOW"
# Calls that only wait: whether a run makes them depends on timing (a read that finds no
# data yet, a lock that is taken), and learning slows every call, which changes the timing.
# They reach nothing, so every learned profile allows them.
WAITING_CALLS = ("poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "nanosleep",
                 "clock_nanosleep", "futex", "sched_yield")


class Learn:
    """--seccomp-learn: the listener that continues every call, and the profile after exit."""

    def __init__(self, path: str, stderr=None):
        notify.require_user_notif("--seccomp-learn")
        self.path = path
        self.stderr = stderr or sys.stderr
        self.listener: notify.Listener | None = None
        self.existing = _existing(path)   # a broken file is refused before anything runs
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise UsageError(f"--seccomp-learn {path}: no directory {directory}")

    def prepare(self, bpf, cfg):
        """The learning filter; the built-in profile's (for these capabilities) judges each
        call, to decide which of its argument rules the learned profile can keep."""
        from .seccomp import default_filter

        judge = bytes(default_filter(cfg.caps))
        self.listener = notify.Listener(None, judge=judge)
        return notify.ListenedFilter(notify.learn_program(), 0, self.listener.child_fd)

    def started(self) -> None:
        if self.listener is not None:
            self.listener.start()

    def finish(self, cfg) -> None:
        if self.listener is None:
            return
        self.listener.stop()
        if self.listener.error is not None:
            print(f"hardrun: the seccomp listener failed ({self.listener.error}): {self.path} "
                  "was not written", file=self.stderr, flush=True)
            return
        profile, warnings = learned_profile(self.listener.calls, cfg.caps)
        if self.existing is not None:
            profile = merged(self.existing, profile)
        from ..userfiles import write_text
        try:
            write_text(self.path, json.dumps(profile, indent=2) + "\n")
        except HardrunError as error:
            print(f"hardrun: the learned profile was not written: {error}", file=self.stderr, flush=True)
            return
        names = profile_names(profile)
        print(f"hardrun: learned {len(names)} system calls into {self.path}", file=self.stderr)
        for warning in warnings:
            print(f"hardrun: warning: {warning}", file=self.stderr)
        self.stderr.flush()


def _existing(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    from .seccomp import load_profile
    load_profile(path)   # validated: a UsageError names the file and the line
    try:
        return profile_data(path)
    except (HardrunError, ValueError) as error:
        raise UsageError(f"{path}: cannot merge into it: {error}") from None


def learned_profile(calls, capabilities) -> tuple[dict, list[str]]:
    """The profile for the recorded calls (seccomp_notify.Call with the built-in's verdicts)."""
    from .seccomp import default_profile

    builtin = default_profile()
    builtin_data = profile_data("default")
    resolved = builtin.resolve(capabilities)
    index = {rule.where: i for i, rule in enumerate(builtin.syscalls)}
    seen: dict[str, set[int]] = {}
    for call in calls.values():
        name = syscall_name(call.arch, call.nr)
        if not name.startswith("syscall "):
            seen.setdefault(name, set()).update(call.verdicts)
    for name in notify.HANDOVER_CALLS + WAITING_CALLS:
        seen.setdefault(name, {notify.RET_ALLOW})
    plain, argument_rules, warnings = [], [], []
    for name in sorted(seen):
        verdicts = seen[name]
        rules = [r for r in resolved.rules if r.name == name]
        refused = {v for v in verdicts if v & notify.ACTION_MASK != notify.RET_ALLOW}
        if rules and any(r.args for r in rules) and not refused:
            argument_rules += [_copied(builtin_data, index[r.where], name) for r in rules]
        elif refused == {notify.RET_ERRNO | _ENOSYS} and any(r.action == notify.RET_ERRNO | _ENOSYS for r in rules):
            argument_rules.append({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS,
                                   "comment": "ENOSYS, as the built-in profile: libc falls back"})
        else:
            plain.append(name)
            if refused and rules:   # a call the built-in names and refuses (not just unknown to it)
                why = WHY.get(name, "")
                warnings.append(f"the learned profile allows {name}, which the built-in profile "
                                f"refuses{': ' + why if why else ''}")
    syscalls = [{"names": plain, "action": _ALLOW, "comment": "seen while learning"}] + argument_rules
    return {"comment": "learned by hardrun run --seccomp-learn", "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": _ENOSYS, "archMap": builtin_data.get("archMap", []),
            "syscalls": syscalls}, warnings


def _copied(data: dict, position: int, name: str) -> dict:
    rule = dict(data["syscalls"][position])
    rule.pop("includes", None)
    rule.pop("excludes", None)
    rule.pop("name", None)
    rule["names"] = [name]
    return rule


def profile_names(profile: dict) -> set[str]:
    """Every name a profile's rules mention."""
    names: set[str] = set()
    for rule in profile.get("syscalls") or []:
        names.update(rule.get("names") or [])
        if rule.get("name"):
            names.add(rule["name"])
    return names


def merged(existing: dict, learned: dict) -> dict:
    """`existing` with the learned rules for the calls it does not name yet."""
    known = profile_names(existing)
    added = []
    for rule in learned["syscalls"]:
        names = [n for n in rule["names"] if n not in known]
        if names:
            added.append({**rule, "names": names})
    return {**existing, "syscalls": list(existing.get("syscalls") or []) + added}
