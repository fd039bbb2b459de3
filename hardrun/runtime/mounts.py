"""The container's filesystem: mount plans (parent) and the mount steps (child).

Destinations are always resolved inside the new root with openat2(RESOLVE_IN_ROOT),
one path at a time, and mounts are attached to the resulting file descriptor
(move_mount, or mount(2) on /proc/self/fd/N), so a symlink in the image can never
redirect a mount, or a directory creation, to a host path. Bind mounts are built
detached (open_tree), get their nosuid/nodev/read-only flags, and only then are
attached, so there is no moment when they are mounted without them.
"""
from __future__ import annotations

import errno
import os
import posixpath
import stat

from ..errors import UsageError
from ..spec.defaults import DEFAULT_TMPFS, DEFAULT_TMPFS_SIZE, DEV_TMPFS_DATA, DEVPTS_DATA, SHM_TMPFS_DATA
from . import syscalls as k

BIND_ATTRS = k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NODEV
TMPFS_FLAGS = k.MS_NOSUID | k.MS_NODEV
KERNEL_FS_FLAGS = k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC
# A host device node bound into the container's /dev (the default ones and --device's):
# read-only, so reading and writing the device still work but chmod and chown of the
# host's inode do not; never suid or exec.
NODE_ATTRS = k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NOEXEC | k.MOUNT_ATTR_RDONLY
# Device nodes bound from the host into the container's /dev.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
TMPFS_DATA_KEYS = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks")


class MountPlan:
    """One mount to make: `kind` is bind or tmpfs; `target` an absolute container path."""
    __slots__ = ("kind", "source", "target", "read_only", "exec_", "data", "source_is_dir", "recursive")

    def __init__(self, kind, target, source=None, read_only=False, exec_=False, data="",
                 source_is_dir=True, recursive=True):
        self.kind, self.target, self.source = kind, target, source
        self.read_only, self.exec_, self.data, self.source_is_dir = read_only, exec_, data, source_is_dir
        self.recursive = recursive

    def as_oci(self) -> dict:
        from ..spec.oci import mount      # --dry-run only: off the start-up path
        return mount(self.kind, self.target, self.source, self.read_only, self.exec_, self.data,
                     self.recursive)


# -- plans (parent) -------------------------------------------------------------------

def plan_mounts(mounts, host_root: bool) -> tuple[MountPlan, ...]:
    """Validate the user's mounts and add the default tmpfs /tmp and /run (unless the
    user mounts something there). Parents come before children, as in Docker."""
    plans = [_plan(mount) for mount in mounts]
    seen = set()
    for plan in plans:
        if plan.target in seen:
            raise UsageError(f"duplicate mount point {plan.target}")
        seen.add(plan.target)
    for target, mode in DEFAULT_TMPFS:
        if target not in seen:
            # noexec: with a read-only root, nothing the container writes can be executed.
            plans.append(MountPlan("tmpfs", target, data=f"mode={mode},size={DEFAULT_TMPFS_SIZE}"))
    plans.sort(key=lambda plan: plan.target.count("/") if plan.target != "/" else 0)
    return tuple(plans)


def _target(path: str) -> str:
    if not path or not path.startswith("/"):
        raise UsageError(f"mount destination {path!r} is not an absolute path")
    if "\0" in path:
        raise UsageError("mount destination contains a NUL byte")
    target = posixpath.normpath(path)
    if target.startswith("//"):
        target = target[1:]
    if target == "/":
        raise UsageError("cannot mount over the container's root /", hint="use --rootfs DIR")
    if target == "/proc" or target.startswith("/proc/"):
        raise UsageError(f"mounting over {target} is refused",
                         hint="/proc is the container's own, with masked and read-only kernel paths")
    return target


# --mount keys that Docker spells differently from the tmpfs options they set
_DOCKER_TMPFS_KEYS = {"tmpfs-size": "size", "tmpfs-mode": "mode"}
_ALWAYS = ("nosuid", "nodev", "rbind", "rprivate", "private", "bind-propagation=rprivate",
           "bind-propagation=private", "consistency=consistent", "consistency=cached",
           "consistency=delegated", "consistency=default")


def _plan(mount) -> MountPlan:
    target = _target(mount.target)
    read_only = bool(mount.read_only)
    exec_ = mount.type == "bind"
    recursive = True
    data = []
    for option in mount.options:
        key, _, value = option.partition("=")
        key = _DOCKER_TMPFS_KEYS.get(key, key) if mount.type == "tmpfs" else key
        if option in ("ro", "readonly"):
            read_only = True
        elif option == "rw":
            read_only = False
        elif option == "exec":
            exec_ = True
        elif option == "noexec":
            exec_ = False
        elif option in ("bind-nonrecursive", "bind-nonrecursive=true") and mount.type == "bind":
            recursive = False
        elif option in _ALWAYS:
            pass  # always the case (propagation is private; consistency means nothing on Linux)
        elif mount.type == "tmpfs" and key in TMPFS_DATA_KEYS and value:
            data.append(f"{key}={_tmpfs_value(key, value, target)}")
        else:
            raise UsageError(f"mount {target}: unsupported option {option!r}",
                             hint="binds are always nosuid,nodev; use ro/rw, exec/noexec, "
                                  "and for tmpfs size=, mode=, uid=, gid=")
    if mount.type == "tmpfs":
        if not any(item.startswith("size=") for item in data):
            data.append(f"size={DEFAULT_TMPFS_SIZE}")
        return MountPlan("tmpfs", target, read_only=read_only, exec_=exec_, data=",".join(data))
    if mount.type == "volume":
        raise UsageError(f"mount {target}: named volumes are not supported by hardrun run",
                         hint="bind a host directory instead: -v /host/dir:" + target)
    if mount.type != "bind":
        raise UsageError(f"mount {target}: unsupported type {mount.type!r}", hint="use bind or tmpfs")
    source = mount.source or ""
    if not source.startswith("/"):
        raise UsageError(f"bind source {source!r} is not an absolute path")
    try:
        info = os.stat(source)
    except OSError as error:
        raise UsageError(f"bind source {source}: {error.strerror}",
                         hint="create it first; hardrun does not create host paths") from None
    return MountPlan("bind", target, source=source, read_only=read_only, exec_=exec_,
                     source_is_dir=stat.S_ISDIR(info.st_mode), recursive=recursive)


def _tmpfs_value(key: str, value: str, target: str) -> str:
    digits = value.isascii() and value.isdigit()
    ok = digits if key != "size" else (digits or value.isascii() and value[:-1].isdigit()
                                       and value[-1].lower() in "kmg%")
    if key == "mode":
        ok = all(char in "01234567" for char in value) and len(value) <= 4
    if not ok:
        raise UsageError(f"tmpfs {target}: invalid {key}={value}")
    return value.lower() if key == "size" else value


# -- steps (child) --------------------------------------------------------------------
# Every step makes its system calls through `k`: hardrun.runtime.syscalls, or a test's
# recording fake (tests/runtime/test_mount_order.py checks their order without root).

class MountError(Exception):
    """A mount step failed: `step` names it, `error` is the OSError, `hint` what to do."""

    def __init__(self, step: str, error: OSError, hint: str):
        super().__init__(step)
        self.step, self.error, self.hint = step, error, hint


def _fail(step: str, error: OSError, hint: str):
    raise MountError(step, error, hint)


def resolve_in_root(root_fd: int, path: str, extra_resolve: int = 0, k=k) -> int:
    return k.openat2(root_fd, path, k.O_PATH, k.RESOLVE_IN_ROOT | extra_resolve)


def mountpoint(root_fd: int, path: str, is_dir: bool, create: bool, extra_resolve: int = 0, k=k) -> int:
    """An O_PATH fd on `path` inside the root, creating missing components (directories,
    or an empty file for a file bind) when `create`; never leaves the root."""
    try:
        return resolve_in_root(root_fd, path, extra_resolve, k)
    except FileNotFoundError:
        if not create:
            raise
    parts = [part for part in path.split("/") if part]
    parent = k.dup(root_fd)
    try:
        for index, part in enumerate(parts):
            prefix = "/" + "/".join(parts[:index + 1])
            try:
                fd = resolve_in_root(root_fd, prefix, extra_resolve, k)
            except FileNotFoundError:
                last = index == len(parts) - 1
                try:
                    if last and not is_dir:
                        k.close(k.open_fd(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                          | os.O_CLOEXEC, 0o644, dir_fd=parent))
                    else:
                        k.mkdir(part, 0o755, dir_fd=parent)
                except FileExistsError:
                    # Only a dangling symlink exists yet fails to resolve: its target is
                    # missing inside the root. Never create through it.
                    raise OSError(errno.ELOOP, "a symlink in the path points to a missing location "
                                               f"inside the container ({prefix})") from None
                fd = resolve_in_root(root_fd, prefix, extra_resolve, k)
            k.close(parent)
            parent = fd
        result, parent = parent, -1
        return result
    finally:
        if parent >= 0:
            k.close(parent)


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def bind(source_fd: int, target_fd: int, attrs: int, recursive: bool = True, k=k, userns_fd: int = 0) -> None:
    """Attach a copy of the tree at `source_fd` on `target_fd` with `attrs` already set (with
    MOUNT_ATTR_IDMAP, `userns_fd` is the user namespace whose id maps the copy takes)."""
    tree = k.open_tree(source_fd, recursive)
    try:
        # while detached: never writable, never seen unmapped
        k.mount_setattr(tree, attrs, recursive=recursive, userns_fd=userns_fd)
        k.move_mount(tree, target_fd)
    finally:
        k.close(tree)


def make_private(k=k) -> None:
    k.mount(None, "/", None, k.MS_REC | k.MS_PRIVATE)


def open_sources(plans, k=k) -> dict:
    """O_PATH fds of every bind source, opened before anything is mounted over them."""
    fds = {}
    for plan in plans:
        if plan.kind == "bind":
            try:
                fds[plan.target] = k.open_fd(plan.source, k.O_PATH | os.O_CLOEXEC)
            except OSError as error:
                _fail(f"open bind source {plan.source}", error, "check the -v/--mount source")
    return fds


def prepare_root(rootfs: str | None, k=k) -> str:
    """Make the future root a mount point and return its path (still seen from the old root)."""
    if rootfs is not None:
        k.mount(rootfs, rootfs, None, k.MS_BIND | k.MS_REC)
        return rootfs
    # The host's / as a detached recursive copy, attached on /tmp of our private mount
    # namespace (the copy was taken first, so it does not contain itself).
    host = k.open_fd("/", k.O_PATH | os.O_CLOEXEC)
    try:
        tree = k.open_tree(host, recursive=True)
    finally:
        k.close(host)
    try:
        target = k.open_fd("/tmp", k.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            k.move_mount(tree, target)
        finally:
            k.close(target)
    finally:
        k.close(tree)
    return "/tmp"


def mount_proc(root_fd: int, private_pid: bool, create: bool, k=k) -> None:
    target = mountpoint(root_fd, "/proc", True, create, k.RESOLVE_NO_SYMLINKS, k)
    try:
        if private_pid:
            k.mount("proc", _fd_path(target), "proc", KERNEL_FS_FLAGS)
        else:
            _bind_host_path("/proc", target, BIND_ATTRS | k.MOUNT_ATTR_NOEXEC, k)
    finally:
        k.close(target)


def mount_sys(root_fd: int, private_net: bool, create: bool, read_only: bool = True,
              source_fd: int | None = None, k=k) -> None:
    """/sys, read-only unless --privileged (as Docker mounts it). `source_fd`: the sysfs to
    bind, whatever `private_net` says (the one the parent mounted for a joined network
    namespace our user namespace does not own, where we may mount none)."""
    target = mountpoint(root_fd, "/sys", True, create, k.RESOLVE_NO_SYMLINKS, k)
    attrs = BIND_ATTRS | k.MOUNT_ATTR_NOEXEC | (k.MOUNT_ATTR_RDONLY if read_only else 0)
    try:
        if source_fd is not None:
            bind(source_fd, target, attrs, recursive=False, k=k)
        elif private_net:
            k.mount("sysfs", _fd_path(target), "sysfs", KERNEL_FS_FLAGS | (k.MS_RDONLY if read_only else 0))
        else:
            # sysfs can only be mounted fresh in a network namespace of our own.
            _bind_host_path("/sys", target, attrs, k)
    finally:
        k.close(target)


def _bind_host_path(path: str, target_fd: int, attrs: int, k) -> None:
    source = k.open_fd(path, k.O_PATH | os.O_CLOEXEC)
    try:
        bind(source, target_fd, attrs, k=k)
    finally:
        k.close(source)


def mount_dev(root_fd: int, create: bool, devpts_gid: bool, devices=(), host_shm: bool = False,
              mqueue: bool = False, k=k) -> None:
    """A minimal /dev: a few host device nodes, a private devpts, /dev/shm (the host's
    with --ipc host, as in Docker: POSIX shared memory is part of IPC), fd links, the
    host devices asked for (`devices`: runtime/devices.py's plans) and with `mqueue` (an OCI
    config's /dev/mqueue) the ipc namespace's message queues."""
    target = mountpoint(root_fd, "/dev", True, create, k.RESOLVE_NO_SYMLINKS, k)
    try:
        k.mount("tmpfs", _fd_path(target), "tmpfs", k.MS_NOSUID | k.MS_NOEXEC, DEV_TMPFS_DATA)
    finally:
        k.close(target)
    dev = resolve_in_root(root_fd, "/dev", k.RESOLVE_NO_SYMLINKS, k)
    try:
        _dev_nodes(dev, {plan.path for plan in devices}, k)
        for name, mode in (("pts", 0o755), ("shm", 0o1777)) + ((("mqueue", 0o1777),) if mqueue else ()):
            k.mkdir(name, mode, dir_fd=dev)
        if mqueue:
            _mount_in_dev(dev, "mqueue", "mqueue", KERNEL_FS_FLAGS, None, k)
        _mount_in_dev(dev, "pts", "devpts", k.MS_NOSUID | k.MS_NOEXEC,
                      DEVPTS_DATA + (",gid=5" if devpts_gid else ""), k)
        if host_shm:
            shm = k.openat2(dev, "shm", k.O_PATH, k.RESOLVE_BENEATH | k.RESOLVE_NO_SYMLINKS)
            try:
                _bind_host_path("/dev/shm", shm, BIND_ATTRS | k.MOUNT_ATTR_NOEXEC, k)
            finally:
                k.close(shm)
        else:
            _mount_in_dev(dev, "shm", "tmpfs", KERNEL_FS_FLAGS, SHM_TMPFS_DATA, k)
        for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                           ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                           ("ptmx", "pts/ptmx")):
            k.symlink(link, name, dir_fd=dev)
        if devices:
            bind_devices(dev, devices, k)
        # Nothing may be created in /dev afterwards (its submounts stay writable).
        k.mount_setattr(dev, k.MOUNT_ATTR_RDONLY, recursive=False)
    finally:
        k.close(dev)


def _dev_nodes(dev: int, taken, k) -> None:
    """The host's null, zero, full, random, urandom and tty, each bound on an empty file of
    the container's /dev (`dev`) unless a planned device takes its path."""
    for name in DEVICES:
        if not k.exists(f"/dev/{name}") or f"/dev/{name}" in taken:
            continue
        k.close(k.open_fd(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dev))
        node = k.openat2(dev, name, k.O_PATH, k.RESOLVE_BENEATH | k.RESOLVE_NO_SYMLINKS)
        try:
            # the host's inode: utimes too (its owner's, under --userns host) is refused
            _bind_host_path(f"/dev/{name}", node, NODE_ATTRS, k)
        finally:
            k.close(node)


def bind_devices(dev_fd: int, plans, k=k) -> None:
    """Bind each planned host node (runtime/devices.py's DevicePlans) onto an empty file of
    the container's /dev (`dev_fd`), creating the directories between; before pivot_root,
    while the host's /dev is reachable. The source is checked to still be the planned device
    (a node swapped meanwhile is refused)."""
    for plan in plans:
        relative = plan.path[len("/dev/"):]
        parent = k.dup(dev_fd)
        try:
            for part in relative.split("/")[:-1]:
                try:
                    k.mkdir(part, 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
                inner = k.openat2(parent, part, k.O_PATH | os.O_DIRECTORY, k.RESOLVE_BENEATH | k.RESOLVE_NO_SYMLINKS)
                k.close(parent)
                parent = inner
            name = relative.rsplit("/", 1)[-1]
            try:
                k.close(k.open_fd(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=parent))
            except FileExistsError:
                pass      # a default node of the same name (null, zero…): the user's is bound over it
            node = k.openat2(parent, name, k.O_PATH, k.RESOLVE_BENEATH | k.RESOLVE_NO_SYMLINKS)
        finally:
            k.close(parent)
        try:
            _bind_device(plan, node, k)
        finally:
            k.close(node)


def _bind_device(plan, node: int, k) -> None:
    source = k.open_fd(plan.source, k.O_PATH | os.O_CLOEXEC)
    try:
        info = k.fstat(source)
        kind = stat.S_ISCHR(info.st_mode) if plan.type == "c" else stat.S_ISBLK(info.st_mode)
        if not kind or (os.major(info.st_rdev), os.minor(info.st_rdev)) != (plan.major, plan.minor):
            raise OSError(errno.EXDEV, f"{plan.source} is no longer device {plan.type} {plan.major}:{plan.minor}")
        bind(source, node, NODE_ATTRS, recursive=False, k=k)
    finally:
        k.close(source)


def _mount_in_dev(dev: int, name: str, fstype: str, flags: int, data, k) -> None:
    """A fresh `fstype` on the directory `name` of the container's /dev."""
    where = k.openat2(dev, name, k.O_PATH, k.RESOLVE_BENEATH | k.RESOLVE_NO_SYMLINKS)
    try:
        k.mount(fstype, _fd_path(where), fstype, flags, data)
    finally:
        k.close(where)


def _refuse_proc(root_fd: int, target_fd: int, plan: MountPlan, k) -> None:
    """The parent refused /proc as a destination; a symlink in the image may still lead
    one there once resolved, and /proc must stay the container's own procfs."""
    inside = posixpath.relpath(k.readlink(_fd_path(target_fd)), k.readlink(_fd_path(root_fd)))
    if inside == "proc" or inside.startswith("proc/"):
        _fail(f"mount {plan.target}", OSError(errno.EPERM, os.strerror(errno.EPERM)),
              f"a symlink in the image leads the destination to /{inside}; mounting over /proc is refused")


def mount_user(root_fd: int, plan: MountPlan, source_fd: int | None, create: bool, k=k) -> None:
    target = mountpoint(root_fd, plan.target, plan.kind != "bind" or plan.source_is_dir, create, 0, k)
    try:
        _refuse_proc(root_fd, target, plan, k)
        if plan.kind == "bind":
            attrs = BIND_ATTRS | (k.MOUNT_ATTR_RDONLY if plan.read_only else 0)
            attrs |= 0 if plan.exec_ else k.MOUNT_ATTR_NOEXEC
            bind(source_fd, target, attrs, plan.recursive, k)  # type: ignore[arg-type]  # a bind has its source
        else:
            flags = TMPFS_FLAGS | (0 if plan.exec_ else k.MS_NOEXEC) | (k.MS_RDONLY if plan.read_only else 0)
            k.mount("tmpfs", _fd_path(target), "tmpfs", flags, plan.data or None)
    finally:
        k.close(target)


def pivot(root_fd: int, k=k) -> None:
    """Enter the new root and detach the old one entirely."""
    k.fchdir(root_fd)
    k.pivot_root(".", ".")  # the old root ends up stacked on top of the new one
    k.umount2(".", k.MNT_DETACH)
    k.chdir("/")


def mask(path: str, k=k) -> None:
    """Hide a kernel path: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        info = k.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        k.mount("tmpfs", path, "tmpfs", KERNEL_FS_FLAGS | k.MS_RDONLY, "size=0,mode=0")
    else:
        k.mount("/dev/null", path, None, k.MS_BIND)


def make_read_only(path: str, k=k) -> None:
    try:
        source = k.open_fd(path, k.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        bind(source, source, BIND_ATTRS | k.MOUNT_ATTR_NOEXEC | k.MOUNT_ATTR_RDONLY, k=k)
    finally:
        k.close(source)


# -- where files may be opened for writing (child, after the last mount) -------------

def writable_trees(root_writable: bool, marks, k=k) -> tuple[str, ...]:
    """The paths of the pivoted root whose trees hold exactly what may be opened for writing
    (the Landlock domain's rules): a mount's tree takes its mark, (target, writable), and
    everything else its parent's; the root's is `root_writable`. A directory holding a mark
    that differs from its own is listed and its entries decided one by one; a symlink gets
    no rule (what it points at is decided on its own path)."""
    writable = {k.realpath(target): mark for target, mark in marks}
    found: list[str] = []

    def decide(path: str, allowed: bool) -> None:
        prefix = path.rstrip("/") + "/"
        if all(mark == allowed for target, mark in writable.items() if target.startswith(prefix)):
            if allowed:
                found.append(path)
            return
        for name in sorted(k.listdir(path)):
            entry = prefix + name
            if entry in writable:
                decide(entry, writable[entry])
            elif not stat.S_ISLNK(k.lstat(entry).st_mode):
                decide(entry, allowed)

    decide("/", root_writable)
    return tuple(found)
