"""Thin ctypes wrappers for the system calls Python's `os` module lacks.

Every wrapper raises OSError(errno, strerror) on failure, so callers see one error
type. This module is the single seam between the runtime and the kernel: tests and
`hardrun inspect` call the same functions. Only ctypes is imported (no prctl package):
it is on the start-up path of every container.
"""
from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

# clone(2) / unshare(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17
CLONE_INTO_CGROUP = 0x200000000   # clone3 only

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 0x2

# mount_setattr(2) / open_tree(2) / move_mount(2)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# System call numbers that differ between architectures (the newer ones are shared).
_SYSCALLS = {
    "x86_64": {"clone": 56, "pivot_root": 155, "capget": 125, "capset": 126, "setns": 308},
    "aarch64": {"clone": 220, "pivot_root": 41, "capget": 90, "capset": 91, "setns": 268},
}
_COMMON = {"open_tree": 428, "move_mount": 429, "clone3": 435, "close_range": 436,
           "openat2": 437, "mount_setattr": 442}
_MACHINE = os.uname().machine
if _MACHINE not in _SYSCALLS:  # pragma: no cover - other architectures are not supported
    raise ImportError(f"hardrun's runtime supports x86_64 and aarch64, not {_MACHINE}")
NR = dict(_SYSCALLS[_MACHINE], **_COMMON)

_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _check(result: int, what: str = "") -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what or None)
    return result


def _path(value: str | bytes | None):
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else value


# -- processes and namespaces ------------------------------------------------------

class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


def clone(flags: int, cgroup_fd: int | None = None) -> int:
    """fork(2) with namespace flags: returns 0 in the child, the child's pid in the parent.

    No new stack is given, so the child continues on a copy of the caller's stack,
    exactly like fork(); the caller must be single-threaded. With `cgroup_fd` (a cgroup
    v2 directory) the child starts in that cgroup (clone3's CLONE_INTO_CGROUP).
    """
    if cgroup_fd is None:
        return _check(_syscall(NR["clone"], ctypes.c_ulong(flags | SIGCHLD), None, None, None, None),
                      "clone")
    args = _CloneArgs(flags=flags | CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=cgroup_fd)
    return _check(_syscall(NR["clone3"], ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))),
                  "clone3")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def close_range(first: int, last: int = 0xFFFFFFFF) -> None:
    _check(_syscall(NR["close_range"], ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(0)),
           "close_range")


# -- mounts --------------------------------------------------------------------------

def mount(source, target, fstype=None, flags: int = 0, data=None) -> None:
    _check(_libc.mount(_path(source), _path(target), _path(fstype), ctypes.c_ulong(flags),
                       _path(data)), f"mount {target}")


def umount2(target, flags: int = 0) -> None:
    _check(_libc.umount2(_path(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root, put_old) -> None:
    _check(_syscall(NR["pivot_root"], _path(new_root), _path(put_old)), "pivot_root")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(fd: int, attr_set: int, attr_clr: int = 0, recursive: bool = True,
                  path: str = "") -> None:
    """Change the flags of the mount `fd` refers to (and, recursively, of its submounts)
    without repeating the locked ones, which a MS_REMOUNT would have to."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = (AT_EMPTY_PATH if not path else 0) | (AT_RECURSIVE if recursive else 0)
    _check(_syscall(NR["mount_setattr"], ctypes.c_int(fd), _path(path), ctypes.c_uint(flags),
                    ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")


def open_tree(fd: int, recursive: bool = True) -> int:
    """A detached copy of the mount tree at `fd` (a bind mount not yet attached)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    return _check(_syscall(NR["open_tree"], ctypes.c_int(fd), b"", ctypes.c_uint(flags)), "open_tree")


def move_mount(tree_fd: int, target_fd: int) -> None:
    """Attach the detached tree `tree_fd` on the directory or file `target_fd`."""
    _check(_syscall(NR["move_mount"], ctypes.c_int(tree_fd), b"", ctypes.c_int(target_fd), b"",
                    ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)), "move_mount")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(_syscall(NR["openat2"], ctypes.c_int(dirfd), _path(path), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how))), f"open {path}")


# -- prctl and capabilities ------------------------------------------------------------

_prctl = _libc.prctl
_prctl.restype = ctypes.c_int


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                         ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), "prctl")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of `pid` (0: the caller) as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_syscall(NR["capget"], ctypes.byref(header), data), "capget")
    return tuple(getattr(data[0], name) | (getattr(data[1], name) << 32)
                 for name in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index in (0, 1):
        shift = 32 * index
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(NR["capset"], ctypes.byref(header), data), "capset")


def last_cap() -> int:
    """The highest capability number this kernel knows (40 on 6.x)."""
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        return int(handle.read())


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_parent_death_signal(signum: int) -> None:
    prctl(PR_SET_PDEATHSIG, signum)


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, int(on))


def set_keep_caps(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, int(on))


def drop_bounding(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def raise_ambient(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def clear_ambient() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


# -- network ------------------------------------------------------------------------

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_AF_INET = 2
_SOCK_DGRAM = 2


class _IfReq(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 16), ("flags", ctypes.c_short), ("pad", ctypes.c_char * 22)]


def interface_up(name: str = "lo") -> None:
    """Set IFF_UP on an interface of the caller's network namespace (two ioctls,
    no netlink library)."""
    sock = _check(_libc.socket(_AF_INET, _SOCK_DGRAM | os.O_CLOEXEC, 0), "socket")
    try:
        request = _IfReq(name.encode(), 0)
        _check(_libc.ioctl(sock, ctypes.c_ulong(_SIOCGIFFLAGS), ctypes.byref(request)), "SIOCGIFFLAGS")
        request.flags |= _IFF_UP
        _check(_libc.ioctl(sock, ctypes.c_ulong(_SIOCSIFFLAGS), ctypes.byref(request)), "SIOCSIFFLAGS")
    finally:
        os.close(sock)
