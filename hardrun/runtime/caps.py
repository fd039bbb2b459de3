"""Capability names and Docker's --cap-add/--cap-drop semantics.

Names follow Docker: `NET_BIND_SERVICE` or `CAP_NET_BIND_SERVICE`, any case, `ALL`.
The table stops at 40 (CHECKPOINT_RESTORE); newer kernels' extra capabilities have
no name here and are always dropped (the runtime loops to cap_last_cap).
"""
from __future__ import annotations

from ..errors import UsageError

NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
NUMBERS = {name: number for number, name in enumerate(NAMES)}


def normalize(name: str) -> str:
    """`cap_net_raw` -> `NET_RAW`; `all` -> `ALL`; unknown names are a UsageError."""
    upper = name.strip().upper()
    if upper.startswith("CAP_"):
        upper = upper[4:]
    if upper != "ALL" and upper not in NUMBERS:
        raise UsageError(f"unknown capability {name!r}",
                         hint="use a name such as NET_BIND_SERVICE; see capabilities(7)")
    return upper


def resolve(cap_add, cap_drop, privileged: bool = False) -> tuple[str, ...]:
    """The capabilities the process keeps, in kernel order.

    Docker's rules with hardrun's empty default set: `--privileged` or `--cap-add ALL`
    give everything except what `--cap-drop` names; otherwise exactly the added ones
    (an add wins over a drop of the same capability, as in Docker).
    """
    adds = {normalize(name) for name in cap_add}
    drops = {normalize(name) for name in cap_drop}
    if privileged or "ALL" in adds:
        kept = set(NAMES) - drops
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
