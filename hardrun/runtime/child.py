"""The container side: the ordered steps between clone and execve.

Runs in the cloned child (new user, mount, pid, ipc, uts and net namespaces). Every
module it needs is imported before clone: after pivot_root or the user switch the
interpreter's own files may be unreachable. Any failure is reported to the parent as
(step, errno, what to do) over `error_fd` and the command never runs.

Every system call goes through `k` (hardrun.runtime.syscalls) and every mount step through
`fs` (hardrun.runtime.mounts), both handed to main() as objects: a test hands in recording
fakes and checks the order of the steps without root (tests/runtime/test_child_order.py,
tests/runtime/test_mount_order.py).
"""
from __future__ import annotations

import errno
import gc
import os
import _signal as signal  # the C module itself: `signal` adds an enum import (milliseconds)

from . import init, mounts, process, stdio, syscalls, userns


class _Steps:
    """Tracks the current step's name for the failure report."""
    __slots__ = ("name",)

    def __init__(self):
        self.name = "start"


def main(cfg, launch, exec_plan, sync_fd: int, error_fd: int, k=syscalls, fs=mounts) -> None:
    """Never returns: execs the command or exits with 125/126/127. `cfg` is the plan
    (config.RuntimeConfig), `launch` what the parent learned starting it (LaunchState)."""
    # No cyclic garbage collection here: a finalizer of an object inherited from the parent
    # could close an fd number that is reused by then (the report pipe).
    gc.disable()
    steps = _Steps()
    _reporting(lambda: _run(cfg, launch, exec_plan, sync_fd, error_fd, steps, k, fs), steps, error_fd)


def enter(cfg, launch, exec_plan, error_fd: int, k=syscalls) -> None:
    """Never returns. OCI exec (hardrun.runtime.oci_exec): in a process that has joined the
    container's namespaces and cgroups, the container's user, capabilities, working
    directory, no_new_privs and seccomp filter, then execve; or exit 125/126/127."""
    gc.disable()
    steps = _Steps()
    _reporting(lambda: _confine_and_exec(cfg, launch, exec_plan, None, error_fd, steps, k), steps, error_fd)


def _reporting(run, steps: _Steps, error_fd: int) -> None:
    try:
        run()
        failure = process.StepFailure("exec", 0, "execve returned")
    except process.StepFailure as error:
        failure = error
    except mounts.MountError as error:
        failure = process.StepFailure(error.step, error.error.errno or 0, error.hint)
    except OSError as error:
        detail = f"{error.filename}: " if error.filename and error.filename not in steps.name else ""
        failure = process.StepFailure(steps.name, error.errno or 0, detail + _hint(steps.name, error))
    except BaseException as error:  # the payload must never run after an unexpected failure
        failure = process.StepFailure(steps.name, 0, f"internal error: {error!r}")
    try:
        os.write(error_fd, failure.encode())
    finally:
        os._exit(failure.code)


def _load_filters(launch, steps: _Steps) -> None:
    """hardrun's memfd filter (where vm.memfd_noexec=2 cannot hold), then the profile's: a
    profile may refuse seccomp() itself."""
    if launch.memfd_filter is not None:
        steps.name = "memfd filter"
        launch.memfd_filter.load()
    if launch.seccomp_filter is not None:
        steps.name = "seccomp"
        launch.seccomp_filter.load()


def _run(cfg, launch, exec_plan, sync_fd: int, error_fd: int, steps: _Steps, k, fs) -> None:
    if cfg.sysctls or cfg.oom_score_adj is not None:
        # Off the start-up path unless needed, and loaded while the interpreter's files are
        # still reachable (the sysctls are written after pivot_root).
        from . import tunables  # noqa: F401
    # Python's own handlers and ignored signals must not leak into the container.
    for signum in process.PYTHON_IGNORED + (signal.SIGINT,):
        signal.signal(signum, signal.SIG_DFL)

    # 1. Enter the container's cgroups before anything else (v1; on v2 clone did), then
    #    wait until the parent has written uid_map/gid_map: files we create and setuid
    #    need mapped ids.
    if launch.cgroup_join is not None:
        steps.name = "join cgroup"
        launch.cgroup_join.enter()
    steps.name = "wait for id maps"
    if k.read(sync_fd, 1) != b"1":
        os._exit(process.EXIT_SETUP)  # the parent is gone or gave up: nothing to report to

    # 1b. The kernel settings of our own namespaces (no exec of memfds, the user.max_*
    #     limits) and our OOM score adjustment while the host's /proc is visible and before
    #     we become the namespace's root: vm.memfd_noexec may only be written by the host's
    #     root uid.
    if cfg.oom_score_adj is not None:
        from .tunables import write_oom_score_adj
        write_oom_score_adj(cfg.oom_score_adj, steps)
    userns.apply_kernel_settings(cfg, steps)

    # 1c. The namespaces an OCI config names by path (a pod's network…), joined before the
    #     filesystem: sysfs is mounted for the network namespace the container ends up in.
    #     Under a user namespace, hardrun-oci joined them before it (setns needs
    #     CAP_SYS_ADMIN over their owner: hardrun.runtime.oci_joins.clone_joined).
    for kind, path in cfg.namespace_paths:
        if kind in JOINED_BY_CHILD:
            steps.name = f"join {kind} namespace {path}"
            _join_namespace(kind, path, k)

    # 2. A new session: no controlling terminal, so TIOCSTI cannot inject into the caller's tty.
    #    Then fds 0-2 as planned (-i, -t: hardrun.runtime.stdio).
    steps.name = "setsid"
    k.setsid()
    if launch.stdio is not None:
        steps.name = "stdio"
        launch.stdio.apply()
    if not cfg.detached:
        steps.name = "parent death signal"
        k.set_parent_death_signal(signal.SIGKILL)

    # 3. The filesystem: private mounts, the new root, kernel filesystems, user mounts,
    #    pivot_root (the masked and read-only kernel paths come in 3b).
    _filesystem(cfg, launch.mounts, steps, k, fs, launch.sysfs)

    # 3a. With -t, a pty of the container's own devpts (only reachable in the new root)
    #     becomes its terminal; the parent gets the master.
    if launch.stdio is not None and launch.stdio.console is not None:
        steps.name = "terminal"
        launch.stdio.open_terminal(cfg.user.uid)

    # 3b. Wait until the parent has set our ulimits and wired our network: nothing may run
    #     unlimited. Then the cgroup namespace (rooted in the container's own cgroup, which
    #     we joined in step 1) and the read-only cgroup view.
    steps.name = "wait for ulimits and network"
    if k.read(sync_fd, 1) != b"2":
        os._exit(process.EXIT_SETUP)
    cgroup_path = dict(cfg.namespace_paths).get("cgroup")
    if cgroup_path is not None:
        steps.name = f"join cgroup namespace {cgroup_path}"
        _join_namespace("cgroup", cgroup_path, k)
    elif "cgroup" in cfg.namespaces:
        steps.name = "cgroup namespace"
        k.unshare(k.CLONE_NEWCGROUP)
    if launch.cgroup_view is not None:
        steps.name = "mount /sys/fs/cgroup"
        mount_view, layout = launch.cgroup_view
        mount_view("/sys/fs/cgroup", layout, k)
    # Then the sysctls (the network exists now), and the kernel paths masked and made
    # read-only, /proc/sys with them: after the last write, before Landlock (a mount).
    _kernel_paths(cfg, steps, k, fs)

    # 3c. Nothing in the read-only view of the host outside the container's own writable
    #     mounts, nor beneath a read-only bind of a host path, may be opened for writing: a
    #     read-only mount does not stop a host FIFO. After the last mount (a Landlock domain
    #     cannot mount), before the filter.
    if cfg.write_plan is not None:
        steps.name = "landlock"
        paths = fs.writable_trees(*cfg.write_plan, k) + stdio.reopenable()
        k.landlock_allow_only_beneath(k.LANDLOCK_ACCESS_FS_WRITE_FILE, paths)

    # 4a. Hostname and loopback, while we still hold CAP_SYS_ADMIN/CAP_NET_ADMIN in our namespaces.
    if cfg.hostname is not None:
        steps.name = "sethostname"
        k.sethostname(cfg.hostname)
    if "network" in cfg.namespaces and cfg.network == "none":
        steps.name = "loopback up"
        k.interface_up("lo")

    _confine_and_exec(cfg, launch, exec_plan, sync_fd, error_fd, steps, k)


def _confine_and_exec(cfg, launch, exec_plan, sync_fd: int | None, error_fd: int, steps: _Steps, k) -> None:
    """Steps 4b to 8, shared with OCI exec (`enter`, no sync pipe: `sync_fd` None)."""
    # Without no_new_privs an unprivileged process may not install a filter: load it
    # now, while CAP_SYS_ADMIN is held (the profile allows the remaining set-up calls).
    if not cfg.no_new_privileges:
        _load_filters(launch, steps)

    # 4b. The user switch: bounding set first (dropping it needs CAP_SETPCAP), keep-caps so
    #     permitted survives setuid, then groups before gid before uid (each needs the next).
    steps.name = "drop bounding set"
    for cap in range(cfg.last_cap + 1):
        if not cfg.cap_mask >> cap & 1:
            k.drop_bounding(cap)
    steps.name = "keep capabilities"
    k.set_keep_caps(True)
    user = cfg.user
    if cfg.id_maps is None or cfg.id_maps.setgroups:
        steps.name = "setgroups"
        k.setgroups(list(user.groups))
    steps.name = "setgid"
    k.setresgid(user.gid, user.gid, user.gid)
    steps.name = "setuid"
    k.setresuid(user.uid, user.uid, user.uid)
    # A credential change clears the parent-death signal: set it again, then make sure
    # the parent did not die in between (its end of the sync pipe would read EOF).
    if not cfg.detached:
        steps.name = "parent death signal"
        k.set_parent_death_signal(signal.SIGKILL)
    if sync_fd is not None:
        k.set_blocking(sync_fd, False)
        try:
            if k.read(sync_fd, 1) == b"":
                os._exit(process.EXIT_SETUP)
        except BlockingIOError:
            pass

    # 5. Final capabilities: effective/permitted to the kept set; inheritable and ambient
    #    only to carry added capabilities to a non-root user across execve.
    #    An OCI config gives the five sets itself (cap_sets).
    steps.name = "capabilities"
    if cfg.cap_sets is not None:
        _, effective, permitted, inheritable, ambient = cfg.cap_sets
    else:
        effective = permitted = cfg.cap_mask
        inheritable = ambient = cfg.cap_mask if cfg.ambient else 0
    k.capset(effective, permitted, inheritable)
    k.clear_ambient()
    if ambient:
        steps.name = "ambient capabilities"
        for cap in range(cfg.last_cap + 1):
            if ambient >> cap & 1:
                k.raise_ambient(cap)
    k.set_keep_caps(False)
    if k.capget() != (effective, permitted, inheritable):
        raise process.StepFailure("capabilities", errno.EPERM, "the capability sets could not be set as asked")

    # 6. Working directory, verified to be inside the new root (a leaked fd used as
    #    /proc/self/fd/N would land outside it, and getcwd would say so).
    steps.name = f"workdir {cfg.workdir}"
    k.chdir(cfg.workdir)
    try:
        inside = k.getcwd().startswith("/")
    except OSError:
        inside = False
    if not inside:
        raise process.StepFailure(f"workdir {cfg.workdir}", errno.EXDEV,
                                  "the working directory is outside the container's root")

    if cfg.umask is not None:
        k.umask(cfg.umask)

    # 6b. OCI create: everything is set up; say so to the parent (which then exits) and wait
    #     until `start` opens the exec.fifo. Before the fds are closed (the fifo's is one).
    if launch.hold is not None:
        steps.name = "wait for start"
        _hold(launch.hold, error_fd, k)

    # 7. Close every inherited fd above 2 (and the ones OCI's --preserve-fds passes) but
    #    the report pipe (close-on-exec): a leaked host fd is a way out of the container.
    #    The seccomp listener's socket (--explain, --seccomp-learn) stays until the filter
    #    is loaded: the load sends the listener to the parent and closes it.
    steps.name = "close fds"
    watch = launch.seccomp_watch
    kept = {error_fd}
    if watch is not None and watch.listener:
        kept.add(watch.listener.child_fd)
    syscalls.close_all_but(kept, 3 + launch.preserve_fds, k.close_range)

    # 8. no_new_privs, the seccomp filter last (it then governs everything the command
    #    does), then execve.
    if cfg.no_new_privileges:
        steps.name = "no_new_privs"
        k.set_no_new_privs()
        _load_filters(launch, steps)
    if cfg.init:
        init.run(exec_plan, error_fd)
    process.reset_signals()
    raise process.execute(exec_plan, k.execve)


JOINED_BY_CHILD = ("network", "ipc", "uts")
NAMESPACE_FLAGS = {"network": 0x40000000, "ipc": 0x08000000, "uts": 0x04000000, "cgroup": 0x02000000}
HELD = b"\x06"   # the first byte of the report pipe: set up and waiting for start


def _join_namespace(kind: str, path: str, k) -> None:
    fd = k.open_fd(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.setns(fd, NAMESPACE_FLAGS[kind])
    finally:
        k.close(fd)


def _hold(fifo_fd: int, error_fd: int, k) -> None:
    """Tell the parent the container is ready, then block opening the exec.fifo for writing
    until `start` opens it for reading (runc's protocol), and write one byte to it."""
    k.write(error_fd, HELD)
    fifo = k.open_fd(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        k.write(fifo, b"0")
    finally:
        k.close(fifo)
        k.close(fifo_fd)


def _filesystem(cfg, plans, steps: _Steps, k, fs, sysfs: str | None) -> None:
    """`plans`: the user's mounts and the launch's (a bridge network's /etc/hosts); `sysfs`:
    the one the parent mounted for a joined network namespace our user namespace does not
    own (the kernel lets only its owner mount one)."""
    steps.name = "make mounts private"
    fs.make_private(k)  # no mount event propagates to or from the host
    steps.name = "open bind sources"
    sources = fs.open_sources(plans, k)  # before anything can be mounted over them
    # as the host uid we were cloned with: the sysfs is in hardrun-oci's state directory (0700)
    sysfs_fd = k.open_fd(sysfs, k.O_PATH | os.O_CLOEXEC) if sysfs is not None else None
    steps.name = "prepare root"
    new_root = fs.prepare_root(cfg.rootfs, k)
    root_fd = k.open_fd(new_root, k.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    in_image = cfg.rootfs is not None  # only an image may get missing mount points created
    if in_image:
        steps.name = "create mount points"
        _create_mountpoints(root_fd, plans, k, fs)
    if "user" in cfg.namespaces:
        # Become root of the user namespace: files created in our own tmpfs mounts need an
        # owner mapped there (the host uid we start with is not), and root keeps all caps.
        steps.name = "become namespace root"
        k.setresgid(0, 0, 0)
        k.setresuid(0, 0, 0)
    # No device node in the root (an image's, or a devtmpfs mounted somewhere in the host's
    # tree) may be opened: hardrun has no device cgroup, so the only usable devices are the
    # ones bound into /dev below. Read-only too unless --read-write. Before anything else
    # is mounted, so only the root and its submounts get the flags.
    steps.name = "read-only root" if cfg.read_only else "nodev root"
    k.mount_setattr(root_fd, k.MOUNT_ATTR_NODEV | (k.MOUNT_ATTR_RDONLY if cfg.read_only else 0), recursive=True)
    # Fresh /proc and /sys while the old root (with the host's) is still attached:
    # the kernel only allows them in a user namespace when a full view is already visible.
    steps.name = "mount /proc"
    fs.mount_proc(root_fd, "pid" in cfg.namespaces, in_image, k)
    steps.name = "mount /sys"
    fs.mount_sys(root_fd, "network" in cfg.namespaces, in_image, cfg.sys_read_only, sysfs_fd, k)
    if sysfs_fd is not None:
        k.close(sysfs_fd)
    steps.name = "mount /dev"
    maps = cfg.id_maps
    fs.mount_dev(root_fd, in_image, maps is None or any(i <= 5 < i + n for i, _, n in maps.gid),
                 cfg.devices, "ipc" not in cfg.namespaces, mqueue=cfg.mqueue, k=k)
    for plan in plans:
        steps.name = f"mount {plan.target}"
        fs.mount_user(root_fd, plan, sources.get(plan.target), in_image, k)
    for fd in sources.values():
        k.close(fd)
    steps.name = "pivot_root"
    fs.pivot(root_fd, k)
    k.close(root_fd)


def _kernel_paths(cfg, steps: _Steps, k, fs) -> None:
    """The namespaced sysctls (once a bridge network's interface exists), then the masked
    and read-only kernel paths, /proc/sys among them."""
    if cfg.sysctls:
        from .tunables import write_sysctls          # loaded at the start of _run
        write_sysctls(cfg.sysctls, steps, k)
    for path in cfg.masked_paths:
        steps.name = f"mask {path}"
        fs.mask(path, k)
    for path in cfg.readonly_paths:
        steps.name = f"read-only {path}"
        fs.make_read_only(path, k)


def _create_mountpoints(root_fd: int, plans, k, fs) -> None:
    """Missing mount points are created in the image before its root turns read-only;
    a mount nested in another user mount gets its mount point at mount time."""
    targets = [plan.target for plan in plans]
    fixed = [("/proc", True), ("/sys", True), ("/dev", True)]
    for path, is_dir in fixed:
        k.close(fs.mountpoint(root_fd, path, is_dir, True, k.RESOLVE_NO_SYMLINKS, k))
    for plan in plans:
        if any(plan.target.startswith(other + "/") for other in targets):
            continue
        is_dir = plan.kind != "bind" or plan.source_is_dir
        try:
            k.close(fs.mountpoint(root_fd, plan.target, is_dir, True, 0, k))
        except OSError as error:
            raise fs.MountError(f"mount {plan.target}", error,
                                    "the destination cannot be created inside the container's root")


def _hint(step: str, error: OSError) -> str:
    if step == "landlock" and error.errno in (errno.ENOSYS, errno.EOPNOTSUPP):   # no Landlock here
        return ("without --rootfs, and under read-only binds of host paths, hardrun keeps the host's FIFOs "
                "out of reach with Landlock (Linux 5.13 or later, enabled in the kernel's lsm= list); use "
                "--rootfs without read-only binds")
    if step == "seccomp" and error.errno in (errno.ENOSYS, errno.EPERM):   # the profile's refusal
        return ("the seccomp profile refuses a call hardrun makes after loading it (execve, and "
                "close/sendmsg under --explain): allow it in the profile")
    if error.errno == errno.ENOSYS:
        return "this kernel lacks a system call hardrun needs (openat2, mount_setattr: Linux 5.12 or later)"
    if step.startswith("mount") or step in ("prepare root", "pivot_root", "read-only root", "nodev root"):
        if error.errno == errno.ENOENT:
            return "the destination does not exist in the container's root"
        if error.errno == errno.EROFS:
            return "the mount point is missing and its parent is read-only: create it in the image"
        return "check the mount's source and destination"
    if step.startswith("workdir"):
        return "create the directory in the image or choose another -w/--workdir"
    if step == "join cgroup":
        return "the container could not enter its own cgroup, so its limits would not hold"
    if step == "memfd filter":
        return ("vm.memfd_noexec=2 cannot be set for this container and hardrun's filter refusing "
                "executable memfds did not load: set vm.memfd_noexec=2 on the host")
    if step == "seccomp":
        return "the seccomp profile could not be loaded; fix it or pass --security-opt seccomp=unconfined"
    if step in ("setgroups", "setgid", "setuid"):
        return "the user's ids must be mapped in the user namespace"
    if step == "loopback up":
        return "cannot bring up lo in the container's network namespace"
    return "hardrun could not apply this protection; the command was not run"
