"""A seccomp profile (Docker's JSON format, as data) in the form libseccomp applies as hardrun does.

hardrun lets an argument rule override its call's unconditional rule; libseccomp (and so
runc, crun, Docker and Podman) ignores conditional rules whose action differs from the
call's unconditional one. `for_libseccomp` rewrites the two shapes where that matters so
that the exported profile allows and refuses exactly what hardrun does; any other such
shape is an error naming the call, never a looser profile.
"""
from __future__ import annotations

from ..errors import UsageError

_ALLOW = "SCMP_ACT_ALLOW"
_LOOSE_DEFAULTS = {_ALLOW, "SCMP_ACT_LOG"}
_LOW_32_BITS = 0xFFFFFFFF

NOTE = ("Exported for libseccomp (runc, crun, Docker, Podman): a call refused unless its "
        "arguments match (clone, personality) answers the default errno when refused, not "
        "EPERM; a call allowed except for some argument values (socket, ioctl) is allowed by "
        "blocks of values that leave the refused ones out.")


def for_libseccomp(profile: dict) -> dict:
    """`profile` rewritten so that libseccomp applies it as hardrun does (a new dict)."""
    rules = [dict(rule, names=_names(rule)) for rule in profile.get("syscalls") or ()]
    conflicting = [name for name in dict.fromkeys(n for rule in rules for n in rule["names"])
                   if _conflict(name, rules)]
    if not conflicting:
        return profile
    for name in conflicting:
        rules = _rewrite(name, rules, profile.get("defaultAction"))
    result = dict(profile, syscalls=[rule for rule in rules if rule["names"]])
    result["comment"] = " ".join(filter(None, [profile.get("comment"), NOTE]))
    return result


def _names(rule: dict) -> list:
    return list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))


def _key(rule: dict) -> tuple:
    return (_action(rule), repr(rule.get("includes") or {}), repr(rule.get("excludes") or {}))


def _action(rule: dict) -> tuple:
    return (rule.get("action"), rule.get("errnoRet"))


def _conflict(name: str, rules: list) -> bool:
    """True when `name` has an unconditional rule and a conditional one with another action."""
    mine = [rule for rule in rules if name in rule["names"]]
    plain = [rule for rule in mine if not rule.get("args")]
    return bool(plain) and any(rule.get("args") and _action(rule) != _action(plain[0]) for rule in mine)


def _rewrite(name: str, rules: list, default_action: str | None) -> list:
    mine = [rule for rule in rules if name in rule["names"]]
    plain = next(rule for rule in mine if not rule.get("args"))
    conditions = (plain.get("includes") or {}, plain.get("excludes") or {})
    others = [rule for rule in mine if (rule.get("includes") or {}, rule.get("excludes") or {}) == conditions
              and rule is not plain]
    if any(not _disjoint(rule, plain) for rule in mine if rule is not plain and rule not in others):
        raise _cannot(name, "its rules under other includes/excludes overlap")
    if plain["action"] != _ALLOW and all(rule["action"] == _ALLOW for rule in others):
        if default_action in _LOOSE_DEFAULTS:
            raise _cannot(name, "the default action allows what its unconditional rule refuses")
        # the conditional ALLOWs are then the whole rule; everything else meets the default
        return [_without(rule, name) if rule is plain else rule for rule in rules]
    if plain["action"] == _ALLOW and all(rule["action"] != _ALLOW for rule in others):
        allows = _allow_other_values(name, plain, others)
        result = []
        for rule in rules:
            if rule is plain:
                result.append(_without(rule, name))
                result.extend(allows)
            else:
                result.append(rule)
        return result
    raise _cannot(name, "its conditional rules mix actions")


def _disjoint(one: dict, other: dict) -> bool:
    """Two rules that never apply to the same container (one includes what the other excludes)."""
    for a, b in ((one, other), (other, one)):
        inc, exc = a.get("includes") or {}, b.get("excludes") or {}
        for field in ("caps", "arches"):
            if set(inc.get(field) or ()) & set(exc.get(field) or ()):
                return True
    return False


def _allow_other_values(name: str, plain: dict, refusals: list) -> list:
    """ALLOW rules that together match every value of the argument but the refused ones:
    the complement of the refused values as blocks of values sharing their high bits, each
    one MASKED_EQ (so the count is about the argument's width times the refused values)."""
    refused, index, width = set(), None, 0
    for rule in refusals:
        args = rule["args"]
        if len(args) != 1 or index not in (None, args[0]["index"]):
            raise _cannot(name, "its refusals compare more than one argument")
        arg = args[0]
        index = arg["index"]
        if arg["op"] == "SCMP_CMP_MASKED_EQ" and arg.get("value") == _LOW_32_BITS:
            refused.add(arg.get("valueTwo", 0) & _LOW_32_BITS)
            bits = 32
        elif arg["op"] == "SCMP_CMP_EQ":
            refused.add(arg["value"])
            bits = 64
        else:
            raise _cannot(name, f"its refusal compares with {arg['op']}")
        if width not in (0, bits):
            raise _cannot(name, "its refusals mix 32-bit and 64-bit comparisons")
        width = bits
    base = {key: value for key, value in plain.items() if key not in ("names", "name", "comment", "args")}
    return [dict(base, names=[name], args=[{"index": index, "value": mask, "valueTwo": prefix,
                                            "op": "SCMP_CMP_MASKED_EQ"}])
            for prefix, mask in _complement(sorted(refused), width)]


def _complement(points: list, width: int, prefix: int = 0, fixed: int = 0):
    """(value, mask) blocks covering every `width`-bit value except `points`: a block is the
    values whose top `fixed` bits equal those of `prefix`."""
    inside = [p for p in points if p >> (width - fixed) == prefix >> (width - fixed)] if fixed else points
    if not inside:
        yield prefix, ((1 << width) - 1) ^ ((1 << (width - fixed)) - 1)
        return
    if fixed == width:
        return
    bit = 1 << (width - fixed - 1)
    yield from _complement(inside, width, prefix, fixed + 1)
    yield from _complement(inside, width, prefix | bit, fixed + 1)


def _without(rule: dict, name: str) -> dict:
    return dict(rule, names=[n for n in rule["names"] if n != name])


def _cannot(name: str, why: str) -> UsageError:
    return UsageError(f"seccomp profile: the rules of {name!r} cannot be written so that libseccomp "
                      f"(runc, crun, Docker, Podman) applies them as hardrun does: {why}")
