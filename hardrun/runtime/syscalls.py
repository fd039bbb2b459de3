"""The system calls Python's `os` module lacks, as small typed functions.

Every wrapper raises OSError(errno, strerror, what) on failure, so callers see one error
type. This module is the single seam between the runtime and the kernel: tests and
`hardrun inspect` call the same functions. The calls go through the small C module
hardrun.runtime._kernel (a generic syscall(); structures are packed here with `struct`),
not ctypes: this is the start-up path of every container, and ctypes costs milliseconds
to import.
"""
from __future__ import annotations

import errno
import os
import struct

try:
    from . import _kernel  # type: ignore[attr-defined]  # a C module: no stubs
except ImportError:  # pragma: no cover - an install without a compiler
    from ..errors import HardrunError
    raise HardrunError("hardrun's runtime module hardrun.runtime._kernel is not built",
                       hint="reinstall hardrun with gcc and the Python headers (Debian: "
                            "python3-dev) present, e.g. scripts/setup.sh") from None

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
MOUNT_ATTR_IDMAP = 0x00100000
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

# landlock(7)
LANDLOCK_ACCESS_FS_WRITE_FILE = 1 << 1
LANDLOCK_RULE_PATH_BENEATH = 1

NR = _kernel.NR
_syscall = _kernel.syscall

# The calls of `os` that the container's set-up makes, under the same names (os.open is
# open_fd, os.path.exists exists): child.py, every mount step of mounts.py (bind_devices
# too), image_root's idmapped mounts and oci_userns.MappedMounts are handed this
# module as an object and make their calls through it, so a test can hand them a recording
# fake instead and check the order of the steps without root.
execve, read, set_blocking, setsid, write = os.execve, os.read, os.set_blocking, os.setsid, os.write
setgroups, setresgid, setresuid = os.setgroups, os.setresgid, os.setresuid
chdir, fchdir, getcwd, open_fd, close, dup = os.chdir, os.fchdir, os.getcwd, os.open, os.close, os.dup
mkdir, symlink, readlink, lstat, fstat, listdir = os.mkdir, os.symlink, os.readlink, os.lstat, os.fstat, os.listdir
exists, lexists, realpath, umask = os.path.exists, os.path.lexists, os.path.realpath, os.umask
setegid, seteuid = os.setegid, os.seteuid


def _path(value) -> bytes | None:
    """A path or string argument as the kernel reads it (NUL-terminated: bytes objects
    are); an embedded NUL would silently cut it short, so it is refused."""
    if value is None:
        return None
    raw = os.fsencode(value)
    if b"\0" in raw:
        raise ValueError(f"embedded null byte in {raw!r}")
    return raw


# -- processes and namespaces ------------------------------------------------------

_CLONE_ARGS = struct.Struct("=11Q")   # struct clone_args up to .cgroup (CLONE_ARGS_SIZE_VER2)


def clone(flags: int, cgroup_fd: int | None = None) -> int:
    """fork(2) with namespace flags: returns 0 in the child, the child's pid in the parent.

    No new stack is given, so the child continues on a copy of the caller's stack,
    exactly like fork(); the caller must be single-threaded. With `cgroup_fd` (a cgroup
    v2 directory) the child starts in that cgroup (clone3's CLONE_INTO_CGROUP).
    """
    if cgroup_fd is None:
        return _syscall("clone", NR["clone"], flags | SIGCHLD, None, None, None, None)
    args = _CLONE_ARGS.pack(flags | CLONE_INTO_CGROUP, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, cgroup_fd)
    return _syscall("clone3", NR["clone3"], args, len(args))


def unshare(flags: int) -> None:
    _syscall("unshare", NR["unshare"], flags)


def setns(fd: int, nstype: int = 0) -> None:
    _syscall("setns", NR["setns"], fd, nstype)


def sethostname(name: str) -> None:
    raw = name.encode()
    _syscall("sethostname", NR["sethostname"], raw, len(raw))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _syscall("setdomainname", NR["setdomainname"], raw, len(raw))


def close_range(first: int, last: int = 0xFFFFFFFF) -> None:
    _syscall("close_range", NR["close_range"], first, last, 0)


def close_all_but(kept, first: int = 3, close=close_range) -> None:
    """Close every fd from `first` on but those in `kept`, one close_range(2) a gap: the
    cost does not grow with the fd limit. `close` is close_range, or a test's recording
    fake of it (the container's set-up, runtime/child.py)."""
    low = first
    for fd in sorted(kept):
        if fd > low:
            close(low, fd - 1)
        low = max(low, fd + 1)
    close(low)      # to the last fd there can be


# -- mounts --------------------------------------------------------------------------

def mount(source, target, fstype=None, flags: int = 0, data=None) -> None:
    _syscall(f"mount {target}", NR["mount"], _path(source), _path(target), _path(fstype), flags,
             _path(data))


def umount2(target, flags: int = 0) -> None:
    _syscall(f"umount {target}", NR["umount2"], _path(target), flags)


def pivot_root(new_root, put_old) -> None:
    _syscall("pivot_root", NR["pivot_root"], _path(new_root), _path(put_old))


_MOUNT_ATTR = struct.Struct("=4Q")    # attr_set, attr_clr, propagation, userns_fd


def mount_setattr(fd: int, attr_set: int, attr_clr: int = 0, recursive: bool = True,
                  path: str = "", userns_fd: int = 0) -> None:
    """Change the flags of the mount `fd` refers to (and, recursively, of its submounts)
    without repeating the locked ones, which a MS_REMOUNT would have to. With
    MOUNT_ATTR_IDMAP, `userns_fd` is the user namespace whose id maps the mount takes."""
    attr = _MOUNT_ATTR.pack(attr_set, attr_clr, 0, userns_fd)
    flags = (AT_EMPTY_PATH if not path else 0) | (AT_RECURSIVE if recursive else 0)
    _syscall("mount_setattr", NR["mount_setattr"], fd, _path(path), flags, attr, len(attr))


def open_tree(fd: int, recursive: bool = True) -> int:
    """A detached copy of the mount tree at `fd` (a bind mount not yet attached)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    return _syscall("open_tree", NR["open_tree"], fd, b"", flags)


def move_mount(tree_fd: int, target_fd: int) -> None:
    """Attach the detached tree `tree_fd` on the directory or file `target_fd`."""
    _syscall("move_mount", NR["move_mount"], tree_fd, b"", target_fd, b"",
             MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)


_OPEN_HOW = struct.Struct("=3Q")      # flags, mode, resolve


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OPEN_HOW.pack(flags | os.O_CLOEXEC, mode, resolve)
    return _syscall(f"open {path}", NR["openat2"], dirfd, _path(path), how, len(how))


# -- prctl and capabilities ------------------------------------------------------------

def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _syscall("prctl", NR["prctl"], option, arg2, arg3, arg4, arg5)


_CAP_HEADER = struct.Struct("=Ii")    # version, pid
_CAP_DATA = struct.Struct("=6I")      # two of {effective, permitted, inheritable}: low, high words


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of `pid` (0: the caller) as 64-bit masks."""
    data = bytearray(_CAP_DATA.size)
    _syscall("capget", NR["capget"], _CAP_HEADER.pack(_LINUX_CAPABILITY_VERSION_3, pid), data)
    words = _CAP_DATA.unpack(data)
    return tuple(words[i] | words[i + 3] << 32 for i in range(3))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    masks = (effective, permitted, inheritable)
    data = _CAP_DATA.pack(*(mask & 0xFFFFFFFF for mask in masks), *(mask >> 32 & 0xFFFFFFFF for mask in masks))
    _syscall("capset", NR["capset"], _CAP_HEADER.pack(_LINUX_CAPABILITY_VERSION_3, 0), data)


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
_IFREQ_SIZE, _IFNAMSIZ, _IFR_FLAGS = 40, 16, struct.Struct("=h")   # struct ifreq, ifr_flags at 16


def interface_up(name: str = "lo") -> None:
    """Set IFF_UP on an interface of the caller's network namespace (two ioctls,
    no netlink library)."""
    raw = name.encode()
    if not 0 < len(raw) < _IFNAMSIZ:
        raise ValueError(f"bad interface name {name!r}")
    sock = _syscall("socket", NR["socket"], _AF_INET, _SOCK_DGRAM | os.O_CLOEXEC, 0)
    try:
        request = bytearray(_IFREQ_SIZE)
        request[:len(raw)] = raw
        _syscall("SIOCGIFFLAGS", NR["ioctl"], sock, _SIOCGIFFLAGS, request)
        flags = _IFR_FLAGS.unpack_from(request, _IFNAMSIZ)[0] | _IFF_UP
        _IFR_FLAGS.pack_into(request, _IFNAMSIZ, flags)
        _syscall("SIOCSIFFLAGS", NR["ioctl"], sock, _SIOCSIFFLAGS, request)
    finally:
        os.close(sock)


# -- landlock ------------------------------------------------------------------------

_RULESET_ATTR = struct.Struct("=Q")       # struct landlock_ruleset_attr up to .handled_access_fs
_PATH_BENEATH_ATTR = struct.Struct("=Qi")  # struct landlock_path_beneath_attr (packed)


def landlock_allow_only_beneath(access: int, paths) -> None:
    """Restrict this process and its children: `access` (filesystem rights) is refused
    everywhere but beneath `paths` (files or directories; a missing one, a pipe or a
    socket is skipped)."""
    attr = _RULESET_ATTR.pack(access)
    ruleset = _syscall("landlock_create_ruleset", NR["landlock_create_ruleset"], attr, len(attr), 0)
    try:
        for path in paths:
            try:
                where = os.open(path, O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                rule = _PATH_BENEATH_ATTR.pack(access, where)
                _syscall("landlock_add_rule", NR["landlock_add_rule"], ruleset, LANDLOCK_RULE_PATH_BENEATH, rule, 0)
            except OSError as error:
                if error.errno != errno.EBADFD:  # a pipe or socket: Landlock never restricts those
                    raise
            finally:
                os.close(where)
        _syscall("landlock_restrict_self", NR["landlock_restrict_self"], ruleset, 0)
    finally:
        os.close(ruleset)


# -- bpf(2): cgroup device programs ------------------------------------------------------

BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH, BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 5, 8, 9, 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# union bpf_attr, the parts these commands read (offsets of the kernel's uapi layout)
_PROG_LOAD = struct.Struct("=IIQQIIQII16sII")   # type, insn_cnt, insns, license, log level/size/buf, ...
_PROG_ATTACH = struct.Struct("=5I")               # target_fd, attach_bpf_fd, attach_type, flags, replace_fd
_PROG_QUERY = struct.Struct("=4IQI4x")            # target_fd, attach_type, query_flags, attach_flags, ids, cnt
_PROG_ID = struct.Struct("=3I")                   # prog_id, next_id, open_flags


def bpf_prog_load(prog_type: int, instructions: bytes, license: str, log: bytearray | None = None,
                  name: str = "") -> int:
    """Load an eBPF program; returns its fd (O_CLOEXEC). The verifier writes its log into
    `log` (when given), which says why a program was refused."""
    licence = os.fsencode(license) + b"\0"
    attr = bytearray(_PROG_LOAD.pack(prog_type, len(instructions) // 8, 0, 0, 1 if log else 0,
                                     len(log) if log else 0, 0, 0, 0, name.encode()[:15], 0, 0))
    return _kernel.syscall_struct("bpf(BPF_PROG_LOAD)", NR["bpf"], BPF_PROG_LOAD, attr,
                                  ((8, instructions), (16, licence), (32, log)))


def bpf_prog_attach(target_fd: int, program_fd: int, attach_type: int, flags: int = 0) -> None:
    attr = bytearray(_PROG_ATTACH.pack(target_fd, program_fd, attach_type, flags, 0))
    _kernel.syscall_struct("bpf(BPF_PROG_ATTACH)", NR["bpf"], BPF_PROG_ATTACH, attr, ())


def bpf_prog_detach(target_fd: int, program_fd: int, attach_type: int) -> None:
    attr = bytearray(_PROG_ATTACH.pack(target_fd, program_fd, attach_type, 0, 0))
    _kernel.syscall_struct("bpf(BPF_PROG_DETACH)", NR["bpf"], BPF_PROG_DETACH, attr, ())


def bpf_prog_query(target_fd: int, attach_type: int, most: int = 64) -> list[int]:
    """The ids of the programs attached to `target_fd` itself (a cgroup) for `attach_type`."""
    ids = bytearray(4 * most)
    attr = bytearray(_PROG_QUERY.pack(target_fd, attach_type, 0, 0, 0, most))
    _kernel.syscall_struct("bpf(BPF_PROG_QUERY)", NR["bpf"], BPF_PROG_QUERY, attr, ((16, ids),))
    count = _PROG_QUERY.unpack(attr)[5]
    return list(struct.unpack_from(f"={count}I", ids))


def bpf_prog_get_fd_by_id(program_id: int) -> int:
    attr = bytearray(_PROG_ID.pack(program_id, 0, 0))
    return _kernel.syscall_struct("bpf(BPF_PROG_GET_FD_BY_ID)", NR["bpf"], BPF_PROG_GET_FD_BY_ID, attr, ())
