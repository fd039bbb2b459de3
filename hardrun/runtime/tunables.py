"""Kernel settings of the container's own: namespaced sysctls and its OOM score adjustment.

Plans (parent): `plan_sysctls` accepts only the sysctls the kernel keeps per namespace,
as Docker does, and only with that namespace private: `net.*` (network),
`kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*` (ipc), `kernel.domainname` and
`kernel.hostname` (uts). Anything else would change the host for every process on it.
`check_oom_score_adj`: -1000..1000; lowering it below the caller's needs CAP_SYS_RESOURCE.

Steps (child): `write_oom_score_adj` first (its own value, inherited by the command),
`write_sysctls` once the parent has wired the network, before /proc/sys turns read-only.
"""
from __future__ import annotations

import os

from ..errors import UsageError
from . import syscalls
from .process import StepFailure

IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                         "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})
UTS_SYSCTLS = frozenset({"kernel.domainname", "kernel.hostname"})
OOM_SCORE_ADJ_RANGE = (-1000, 1000)
CAP_SYS_RESOURCE = 24


def sysctl_namespace(name: str) -> str | None:
    """The namespace that owns sysctl `name` (dotted or slashed), or None for a host-wide one."""
    dotted = name.replace("/", ".")
    if dotted.startswith("net."):
        return "network"
    if dotted in IPC_SYSCTLS or dotted.startswith("fs.mqueue."):
        return "ipc"
    if dotted in UTS_SYSCTLS:
        return "uts"
    return None


def plan_sysctls(sysctls: dict, namespaces, line_of=lambda name: None) -> tuple[tuple[str, str], ...]:
    """(name, value) pairs to write, in the order given; UsageError for a sysctl that is not
    namespaced, whose namespace is the host's, or a malformed name or value."""
    planned = []
    for name, value in sysctls.items():
        namespace = sysctl_namespace(name)
        problem = _sysctl_problem(name, str(value), namespace, namespaces)
        if problem:
            raise UsageError(f"--sysctl {name}: {problem}", line=line_of(f"sysctl:{name}"))
        planned.append((name, str(value)))
    return tuple(planned)


def _sysctl_problem(name: str, value: str, namespace, namespaces) -> str | None:
    parts = name.split("/") if "/" in name else name.split(".")
    if not name or any(part in ("", ".", "..") for part in parts) or not name.isascii() \
            or any(char.isspace() or char == "\0" for char in name):
        return "invalid name"
    if "\0" in value or "\n" in value:
        return "the value holds a NUL or a newline"
    if namespace is None:
        return ("not a namespaced sysctl: it would change the host (allowed: net.*, kernel.msg*, "
                "kernel.sem, kernel.shm*, fs.mqueue.*, kernel.domainname, kernel.hostname)")
    if namespace not in namespaces:
        flag = {"network": "--network host", "ipc": "--ipc host", "uts": "--uts host"}[namespace]
        return f"it would change the host's, since the {namespace} namespace is shared ({flag})"
    return None


def sysctl_path(name: str) -> str:
    """/proc/sys path of `name`: dots are separators unless the name is written with slashes
    (an interface name such as eth0.1 needs the slashed form, as in runc)."""
    return "/proc/sys/" + (name if "/" in name else name.replace(".", "/"))


def write_sysctls(pairs, steps, k=syscalls) -> None:
    """In the child, in the container's namespaces, after pivot_root and before the read-only
    kernel paths: each value written, never through a symlink. kernel.domainname by
    setdomainname(2): its /proc/sys file is writable by the host's root only."""
    for name, value in pairs:
        steps.name = f"sysctl {name}"
        try:
            if name.replace("/", ".") == "kernel.domainname":
                k.setdomainname(value)
                continue
            fd = k.open_fd(sysctl_path(name), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                k.write(fd, value.encode())
            finally:
                k.close(fd)
        except OSError as error:
            raise StepFailure(steps.name, error.errno or 0,
                              "the kernel refused the value, or this kernel has no such sysctl") from None


def check_oom_score_adj(value: int, own_user_namespace: bool, current: int | None = None,
                        caps: int | None = None, line: int | None = None) -> None:
    """UsageError unless -1000 <= value <= 1000, or when it lowers the caller's own where the
    container cannot hold CAP_SYS_RESOURCE over the host: always in a user namespace of its
    own, else when the caller lacks it (the kernel would refuse it in the container)."""
    low, high = OOM_SCORE_ADJ_RANGE
    if not low <= value <= high:
        raise UsageError(f"--oom-score-adj {value}: out of range (expected {low}..{high})", line=line)
    live = current is None
    current = _own_oom_score_adj() if current is None else current
    caps = _own_effective_caps() if caps is None else caps
    if current is not None and value < current and (own_user_namespace or not caps >> CAP_SYS_RESOURCE & 1):
        # e.g. containerd's shim, one above its parent, asking for the parent's 0; the kernel's
        # floor (oom_score_adj_min) is inherited, so a container in a user namespace of its
        # own may lower its value to it just the same
        if live and _can_lower_own_to(value, current):
            return
        where = ("the container's root has none over the host" if own_user_namespace
                 else "the caller has none")
        raise UsageError(f"--oom-score-adj {value}: lowering it below the caller's ({current}) needs "
                         f"CAP_SYS_RESOURCE, and {where}", line=line,
                         hint=f"give {current} or more" + ("" if own_user_namespace else
                                                            ", or run hardrun with CAP_SYS_RESOURCE"))


def _can_lower_own_to(value: int, current: int) -> bool:
    """Whether this process (without CAP_SYS_RESOURCE) may lower its oom_score_adj to `value`:
    the kernel's floor is a hidden minimum set only by privileged writers, not the current
    value. Tried and undone: unprivileged writes leave that minimum, which the container
    inherits, as it was."""
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write(str(value))
    except OSError:
        return False
    with open("/proc/self/oom_score_adj", "w") as handle:
        handle.write(str(current))
    return True


def _own_oom_score_adj() -> int | None:
    try:
        with open("/proc/self/oom_score_adj") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


def _own_effective_caps() -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def write_oom_score_adj(value: int, steps) -> None:
    """In the child, first (the host's /proc still visible): the command inherits it."""
    steps.name = "oom_score_adj"
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as error:
        raise StepFailure(steps.name, error.errno or 0,
                          "lowering the OOM score adjustment needs CAP_SYS_RESOURCE on the host") from None
