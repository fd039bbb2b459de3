"""Linux capability names: the one table every part of hardrun uses.

Names follow Docker: upper case without `CAP_` (`NET_BIND_SERVICE`), `ALL` kept as is.
NAMES[n] is capability n; the table stops at 40 (CHECKPOINT_RESTORE), and newer
kernels' capabilities have no name here. Standard library only: this module is on
`hardrun run`'s start-up path.
"""
from __future__ import annotations

NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
NUMBERS = {name: number for number, name in enumerate(NAMES)}


def normalize_capability(name) -> str:
    """`cap_net_admin`, `NET_ADMIN`, ` Net_Admin ` -> `NET_ADMIN`; `all` -> `ALL`.

    Unknown names pass through (upper case): callers decide whether that is an error.
    """
    upper = str(name).strip().upper()
    return upper[4:] if upper.startswith("CAP_") else upper


def known_capability(name) -> str | None:
    """The normalized name when it is a capability in NAMES, else None (`ALL` is None)."""
    bare = normalize_capability(name)
    return bare if bare in NUMBERS else None
