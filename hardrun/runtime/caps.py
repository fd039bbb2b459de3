"""Capability names and Docker's --cap-add/--cap-drop semantics.

Names follow Docker: `NET_BIND_SERVICE` or `CAP_NET_BIND_SERVICE`, any case, `ALL`.
The name table is hardrun/spec/capabilities.py; newer kernels' capabilities beyond it
have no name and are always dropped (the runtime loops to cap_last_cap).
"""
from __future__ import annotations

from ..errors import UsageError
from ..spec.capabilities import NAMES, NUMBERS, normalize_capability


def normalize(name: str) -> str:
    """`cap_net_raw` -> `NET_RAW`; `all` -> `ALL`; unknown names are a UsageError."""
    upper = normalize_capability(name)
    if upper != "ALL" and upper not in NUMBERS:
        raise UsageError(f"unknown capability {name!r}",
                         hint="use a name such as NET_BIND_SERVICE; see capabilities(7)")
    return upper


def resolve(cap_add, cap_drop, privileged: bool = False, bounding: int | None = None) -> tuple[str, ...]:
    """The capabilities the process keeps, in kernel order.

    Docker's rules with hardrun's empty default set: `--privileged` or `--cap-add ALL`
    give everything except what `--cap-drop` names, and, where the container shares the
    caller's user namespace, only what is in the caller's `bounding` set (no process can
    gain more); otherwise exactly the added ones (an add wins over a drop of the same
    capability, as in Docker).
    """
    adds = {normalize(name) for name in cap_add}
    drops = {normalize(name) for name in cap_drop}
    if privileged or "ALL" in adds:
        kept = set(NAMES) - drops
        if bounding is not None:
            kept = {name for name in kept if bounding >> NUMBERS[name] & 1}
    else:
        kept = adds - {"ALL"}
    return tuple(name for name in NAMES if name in kept)


def mask(names) -> int:
    value = 0
    for name in names:
        value |= 1 << NUMBERS[name]
    return value


def names_of(value: int) -> list[str]:
    """Decode a capability mask (as in /proc/PID/status) into names; unnamed bits as `CAP_N`."""
    result = []
    bit = 0
    while value >> bit:
        if value >> bit & 1:
            result.append(NAMES[bit] if bit < len(NAMES) else f"CAP_{bit}")
        bit += 1
    return result


def caller_bounding() -> int:
    """The caller's bounding set (what a container sharing its user namespace can hold)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    raise UsageError("cannot read the capability bounding set from /proc/self/status")
