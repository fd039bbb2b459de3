"""An OCI `linux.resources.devices` list -> the writes that make a cgroup v1 devices controller
enforce it, with runc's default allowed devices after the config's rules (as runc appends them).

The v1 controller keeps a default (allow or deny every device) and a list of exceptions:
writing `a` to devices.allow or devices.deny sets the default and clears the list; in deny
mode, devices.allow adds an exception and devices.deny takes access away from an exception of
exactly that type and number. Written in order, the rules mean what the spec says (the last
matching rule wins), except where a rule would narrow an earlier wildcard exception, which
the kernel cannot do: such a list is refused by the rule's index, never applied looser.

cgroup v2 has no devices files: there a BPF_PROG_TYPE_CGROUP_DEVICE program decides
(hardrun/runtime/device_bpf.py). It is built from the same writes, through `v1_state`, the
default and exceptions the v1 controller would hold after them, so one rule list means the
same on either kind of host (and a list refused for v1 is refused for v2 too).
"""
from __future__ import annotations

WILDCARD = None
MAX_DEVICE_NUMBER = 0xFFFFFFFF    # the controller reads a u32, and so does the device program
# runc's default allowed devices (libcontainer/specconv AllowedDevices), in its order: mknod of
# any node (opening one still needs a rule), /dev/null, random, full, tty, zero, urandom, the
# pts nodes, ptmx and tun: (type, major, minor, access).
RUNC_DEFAULT_ALLOWED = (("c", WILDCARD, WILDCARD, "m"), ("b", WILDCARD, WILDCARD, "m"),
                        ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
                        ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, WILDCARD, "rwm"),
                        ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"))


class DeviceRuleError(ValueError):
    """`where`: the config field of the rule the controller cannot enforce."""

    def __init__(self, where: str, message: str):
        super().__init__(message)
        self.where = where


def cgroup_v1_writes(rules: list, where: str = "linux.resources.devices") -> tuple:
    """(file, line) writes for the devices controller: every device denied, then the config's
    rules, then runc's defaults. As in runc, an empty or absent list denies every device but
    the defaults (the cgroup never keeps its parent's allow-all: with CAP_MKNOD the container
    could otherwise make and open a node of a host disk)."""
    parsed: list[tuple] = [(False, "a", WILDCARD, WILDCARD, "rwm", where)]
    parsed += [_parse(rule, f"{where}[{index}]") for index, rule in enumerate(rules)]
    parsed += [(True, kind, major, minor, access, f"{where} (runc's default {kind} {_number(major)}:{_number(minor)})")
               for kind, major, minor, access in RUNC_DEFAULT_ALLOWED]
    writes, deny_mode = [], False
    exceptions: list = []
    for allow, kind, major, minor, access, at in parsed:
        if kind == "a":
            writes.append(("devices.allow" if allow else "devices.deny", "a"))
            deny_mode, exceptions = not allow, []
            continue
        narrowing = allow != deny_mode    # deny in deny mode, allow in allow mode: take access away
        if narrowing and deny_mode:
            exceptions = _take_away(exceptions, kind, major, minor, access, at)
        if not narrowing:
            exceptions.append((kind, major, minor, access))
        writes.append(("devices.allow" if allow else "devices.deny",
                       f"{kind} {_number(major)}:{_number(minor)} {access}"))
    return tuple(writes)


def _parse(rule, where: str) -> tuple:
    if not isinstance(rule, dict):
        raise DeviceRuleError(where, "expected an object")
    unknown = set(rule) - {"allow", "type", "major", "minor", "access"}
    if unknown:
        raise DeviceRuleError(f"{where}.{sorted(unknown)[0]}", "unknown field")
    allow = rule.get("allow")
    if not isinstance(allow, bool):
        raise DeviceRuleError(f"{where}.allow", "expected true or false")
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise DeviceRuleError(f"{where}.type", f"expected a, b or c, got {kind!r}")
    major, minor = (_device_number(rule.get(key), f"{where}.{key}") for key in ("major", "minor"))
    access = rule.get("access") or "rwm"
    if not isinstance(access, str) or not access or set(access) - set("rwm") or len(set(access)) != len(access):
        raise DeviceRuleError(f"{where}.access", f"expected letters of rwm, got {access!r}")
    if kind == "a" and (major is not WILDCARD or minor is not WILDCARD or set(access) != set("rwm")):
        raise DeviceRuleError(where, "a rule for every device type must cover every number and rwm "
                                     "(the devices cgroup has no narrower form of it)")
    return allow, kind, major, minor, "".join(sorted(access, key="rwm".index)), where


def _device_number(value, where: str):
    if value is None or value == -1:
        return WILDCARD
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DEVICE_NUMBER:
        raise DeviceRuleError(where, "expected a device number (or -1 for any)")
    return value


def _take_away(exceptions: list, kind: str, major, minor, access: str, at: str) -> list:
    """The kernel takes access only from the exception of exactly this type and number: any
    other allowed exception overlapping the denied devices would stay, so it is refused."""
    kept = []
    for other in exceptions:
        if other[:3] == (kind, major, minor):
            left = "".join(letter for letter in other[3] if letter not in access)
            if left:
                kept.append(other[:3] + (left,))
            continue
        if _overlap(other, kind, major, minor) and set(other[3]) & set(access):
            raise DeviceRuleError(at, f"cannot deny {kind} {_number(major)}:{_number(minor)} where an earlier "
                                  f"rule allows {other[0]} {_number(other[1])}:{_number(other[2])} (the "
                                  "devices cgroup only takes access from the exact same rule)")
        kept.append(other)
    return kept


def _overlap(exception: tuple, kind: str, major, minor) -> bool:
    other_kind, other_major, other_minor, _ = exception
    return other_kind == kind and (WILDCARD in (other_major, major) or other_major == major) \
        and (WILDCARD in (other_minor, minor) or other_minor == minor)


def _number(value) -> str:
    return "*" if value is WILDCARD else str(value)


def v1_state(writes) -> tuple[bool, list]:
    """(allow by default, [(type, major, minor, access)...]): what the v1 devices controller
    holds after `writes`, as the kernel keeps it: `a` sets the default and clears the
    exceptions; a write that widens (allow in deny mode, deny in allow mode) adds access to the
    exception of exactly that type and numbers (or a new one), the other takes access away
    from exactly that exception."""
    default_allow = True        # the root cgroup's allow-all
    exceptions: list[tuple] = []
    for file, line in writes:
        allow = file == "devices.allow"
        kind, _, rest = line.partition(" ")
        if kind == "a":
            default_allow, exceptions = allow, []
            continue
        numbers, _, access = rest.partition(" ")
        major, minor = (WILDCARD if part == "*" else int(part) for part in numbers.split(":"))
        key = (kind, major, minor)
        found = next((index for index, other in enumerate(exceptions) if other[:3] == key), None)
        if allow != default_allow:
            if found is None:
                exceptions.append(key + (access,))
            else:
                exceptions[found] = key + ("".join(c for c in "rwm" if c in exceptions[found][3] + access),)
        elif found is not None:
            left = "".join(c for c in exceptions[found][3] if c not in access)
            exceptions[found:found + 1] = [key + (left,)] if left else []
    return default_allow, exceptions
