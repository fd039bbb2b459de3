"""`hardrun-oci create`: the container's init cloned and held before its exec (the life of
a container: hardrun.runtime.oci, whose state directory and records it writes).

Apart from hardrun.runtime.oci so that the engine's other calls (`start`, `state`, `kill`,
`delete`) load none of the set-up: `delete` is on every container's path too.
"""
from __future__ import annotations

import os
import _signal as signal
import time

from ..errors import UsageError
from .. import jsonlite
from . import state as state_module
from .oci import CONFIG_COPY, FIFO, Container, OciError, _remove, _root, _run_hooks, _signal, check_id, list_containers
from .process import StepFailure

CGROUP_PARENT = "hardrun-oci"


class CreateOptions:
    """`explain`: record the filter's refusals (hardrun.runtime.oci_explain); `userns`: auto
    (a user namespace of the container's own where the bundle has none,
    hardrun.runtime.oci_userns) or keep (the engine's choice); `log(level, message)`: the
    engine's --log, where the --explain holder reports a record it cannot write."""
    __slots__ = ("bundle", "pid_file", "console_socket", "preserve_fds", "no_pivot", "floor", "explain", "userns",
                 "log")

    def __init__(self, bundle: str, pid_file: str | None = None, console_socket: str | None = None,
                 preserve_fds: int = 0, no_pivot: bool = False, floor: bool = True, explain: bool = False,
                 userns: str = "auto", log=None):
        self.bundle, self.pid_file, self.console_socket = bundle, pid_file, console_socket
        self.preserve_fds, self.no_pivot, self.floor = preserve_fds, no_pivot, floor
        self.explain, self.userns, self.log = explain, userns, log


def create(root: str, container_id: str, options: CreateOptions, bundle=None) -> Container:
    """Create the container and leave its init held before exec (see the module's docstring).
    `bundle`: the bundle already read (hardrun.runtime.bundle.load), else read here."""
    from . import bundle as bundle_module
    check_id(container_id)
    loaded = bundle or bundle_module.load(options.bundle, floor=options.floor, no_pivot=options.no_pivot)
    loaded, lease, joins = _user_namespace(loaded, options.userns, root, container_id)
    try:
        return _create(root, container_id, options, loaded, lease, joins)
    except BaseException:
        if lease is not None and lease.path:
            lease.release()        # still create's own: handed over to the init only once it is held
        raise
    finally:
        if joins is not None:
            joins.close()


def _create(root: str, container_id: str, options: CreateOptions, loaded, lease, joins=None) -> Container:
    cfg = loaded.config
    if cfg.tty and not options.console_socket:
        raise UsageError("process.terminal is true: --console-socket is required")
    if options.console_socket and not cfg.tty:
        raise UsageError("--console-socket given but process.terminal is false")
    root = _root(root, create=True)
    path = os.path.join(root, container_id)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise OciError(f"container {container_id} already exists") from None
    container = Container(root, container_id, {
        "bundle": loaded.path, "rootfs": cfg.rootfs, "annotations": loaded.annotations, "pid": None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z", "cgroups": [],
        "floor": [f"{change.field}: {change.change}" for change in loaded.floor],
        "hooks": loaded.hooks, "floor_on": options.floor, "id_lease": lease.path if lease else None})
    pid = None
    try:
        _write_private(os.path.join(path, CONFIG_COPY), jsonlite.dumps(loaded.document))
        container.save()     # recorded first: `delete` finds whatever follows
        pid = _launch(container, loaded, options, joins)
        if lease is not None:
            from .oci_userns import recorded_namespace
            from .userns import hand_over
            hand_over(lease, pid, container.record.get("start_time"))
            container.record["user_namespace"] = recorded_namespace(pid, lease)
            container.save()
            lease.path = ""     # the init's now: released by delete (or reclaimed once it is dead)
        _run_hooks(container, ("prestart", "createRuntime"))
        if options.pid_file:
            _write_pid_file(options.pid_file, pid)
    except BaseException:
        if pid is not None:
            _kill_quietly(pid)
        _remove(container)
        raise
    return container


def _user_namespace(loaded, mode: str, root: str, container_id: str):
    """(the bundle to run, the id lease or None, the namespaces joined around the user
    namespace or None): under `auto`, a bundle without a user namespace gets one of its own
    or, joining a hardrun-oci container's namespaces, that container's
    (hardrun.runtime.oci_userns); the note joins the floor's."""
    from . import oci_userns
    from .bundle import FloorChange, with_linux_changed
    from ..spec.record import replace
    plan = user_namespace_plan(loaded.document, mode, container_id, root)
    if plan.kind == "keep":
        if plan.note:
            loaded = replace(loaded, floor=loaded.floor + (FloorChange("linux.namespaces", plan.note),))
        return loaded, None, None
    try:
        if plan.owner is not None:
            from .oci_joins import shared_lease     # loaded only for a bundle that joins namespaces
            lease = shared_lease(plan.owner)
        else:
            lease = _lease()
    except BaseException:
        plan.close()
        raise
    try:
        note = oci_userns.add_to_document(loaded.document, lease, plan.owner.id if plan.owner else None)
        again = with_linux_changed(loaded)     # the first decode's record, its `linux` decoded again
        loaded = replace(again, floor=loaded.floor + (FloorChange("linux.namespaces", note),))
        return loaded, lease, plan if plan.joins else None
    except BaseException:
        lease.release()
        plan.close()
        raise


def user_namespace_plan(document: dict, mode: str, container_id: str, root: str):
    """hardrun.runtime.oci_userns.plan, and for a bundle that joins namespaces by path,
    hardrun.runtime.oci_joins.plan (imported only then)."""
    from . import oci_userns
    plan = oci_userns.plan(document, mode)
    if plan.kind != "joins":
        return plan
    from . import oci_joins
    return oci_joins.plan(document, list(plan.before), container_id, _Containers(root))


class _Containers:
    """The containers under one --root, as hardrun.runtime.oci_userns looks for a pod's."""

    def __init__(self, root: str):
        self.root = root

    def named(self, container_id: str) -> Container:
        return Container.load(self.root, container_id)

    def every(self) -> list[Container]:
        return list_containers(self.root)


def _lease():
    """A range of the pool `hardrun run` leases from (the same lease files)."""
    from . import userns
    try:
        return userns.lease_id_range()
    except state_module.StateDirError as error:
        raise OciError(f"cannot lease a user-namespace id range: {error}") from None
    except OSError as error:
        raise OciError(f"cannot lease a user-namespace id range: {error.strerror or error}") from None


def _launch(container: Container, loaded, options: CreateOptions, joins=None) -> int:
    """Clone the init, apply what the parent applies, and return its pid once it is held."""
    from . import child, syscalls as k
    from .config import LaunchState
    from .parent import clone_flags
    cfg = loaded.config
    launch = LaunchState(cfg)
    _prepare_filters(cfg, launch, loaded, options.explain)
    _make_cgroup(container, loaded, launch)
    launch.stdio = _stdio(options.console_socket)
    launch.preserve_fds = options.preserve_fds
    launch.hold = _make_fifo(container.path, k)
    paths = dict(cfg.namespace_paths)
    flags = clone_flags(cfg.namespaces, paths)
    exec_plan = _exec_plan(cfg)
    if joins is None:
        joins = _own_user_namespace_joins(cfg)
    sync_read, sync_write = os.pipe()
    report_read, report_write = os.pipe()
    mapped = None
    try:
        if container.record.get("id_lease"):
            from .oci_userns import MappedMounts
            mapped = MappedMounts(container.path, cfg, loaded.path, pod=joins.pod if joins is not None else None)
            run_cfg = mapped.enter()
            launch.mounts = run_cfg.mounts
        else:
            run_cfg = cfg
        if joins is not None:
            pid, run_cfg = _clone_joined(flags, launch, joins, run_cfg, mapped)
        else:
            pid = _clone(flags, launch, paths.get("pid"), k)
        if pid == 0:
            os.close(sync_write)
            os.close(report_read)
            child.main(run_cfg, launch, exec_plan, sync_read, report_write)  # never returns
        if mapped is not None:
            mapped.leave()
        os.close(sync_read)
        os.close(report_write)
        sync_read = report_write = -1
        launch.stdio.close_container_ends()
        _hold(pid, container, loaded, launch, options.log, joins, sync_write, report_read)
        return pid
    finally:
        for fd in (sync_read, sync_write, report_read, report_write, launch.hold):
            if fd >= 0:
                os.close(fd)
        if launch.cgroup_join is not None:
            launch.cgroup_join.close()
        if launch.seccomp_watch is not None:    # the holder and the init have their ends
            launch.seccomp_watch.listener.close()
        launch.stdio.close()
        if mapped is not None:
            mapped.leave()


def _make_cgroup(container: Container, loaded, launch) -> None:
    """The container's cgroup, recorded before the init exists (`delete` finds it), and
    opened for the clone to start the init in."""
    from . import cgroups
    relative = _cgroup_relative(loaded.cgroups_path, container.id)
    cgroup = cgroups.ContainerCgroup.create(container.id, loaded.limits, relative=relative)
    container.record["cgroups"] = list(dict.fromkeys(cgroup.paths.values()))
    container.save()
    if cgroup.paths:
        launch.cgroup_join = cgroup.open_join()
        if loaded.cgroup_view:
            launch.cgroup_view = (cgroups.mount_cgroup_view, cgroup.layout)


def _make_fifo(state_dir: str, k) -> int:
    """The exec.fifo `start` opens, held by an O_PATH fd the init reopens to wait on it."""
    fifo_path = os.path.join(state_dir, FIFO)
    os.mkfifo(fifo_path, 0o622)
    os.chmod(fifo_path, 0o622)    # the umask may have narrowed it: the user switch comes first
    return os.open(fifo_path, k.O_PATH | os.O_CLOEXEC)


def _own_user_namespace_joins(cfg):
    """A bundle with a new user namespace of its own that joins namespaces the host's user
    namespace owns: those joined first, as for a pod's sandbox (hardrun.runtime.oci_userns);
    else None."""
    if "user" not in cfg.namespaces or not cfg.namespace_paths:
        return None
    from .oci_userns import JOINED_FIRST, Plan
    before = [(kind, path) for kind, path in cfg.namespace_paths if kind in JOINED_FIRST]
    return Plan("own", before=before) if before else None


def _hold(pid: int, container: Container, loaded, launch, log, joins, sync_write: int, report_read: int) -> None:
    """Record the init, start the --explain holder, then release the init until it is held;
    the init is killed if any of it fails."""
    from .parent import _read_all, _write_maps
    cfg = loaded.config
    try:
        container.record.update(pid=pid, start_time=state_module.process_start_time(pid))
        container.save()
        if launch.seccomp_watch is not None:    # before start: the init hands it the listener
            from .oci_explain import spawn_holder
            spawn_holder(container, launch.seccomp_watch, loaded.seccomp_profile, cfg.caps, log)
        maps_written = joins is not None and joins.owner is not None     # the owner's user namespace
        _release(pid, cfg, loaded, sync_write, report_read, _skip if maps_written else _write_maps, _read_all)
    except BaseException:
        _kill_quietly(pid)
        raise


def _release(pid: int, cfg, loaded, sync_write: int, report_read: int, write_maps, read_all) -> None:
    """Map the init's ids, let it set up its filesystem, apply the parent's settings, let it
    go on, and wait until it is held (or read why it failed)."""
    from .child import HELD
    try:
        if cfg.id_maps is not None:
            write_maps(pid, cfg.id_maps)
        os.write(sync_write, b"1")
        _parent_settings(pid, loaded)
        os.write(sync_write, b"2")
    except BrokenPipeError:
        pass    # the init failed a step: its report says which
    except BaseException:
        report = _report(report_read, read_all)
        if report:
            raise StepFailure.decode(report) from None
        raise
    first = os.read(report_read, 1)
    if first != HELD:
        report = first + read_all(report_read)
        raise StepFailure.decode(report) if report else StepFailure("create", 0, "the container's init died")


def _skip(*_) -> None:
    pass


def _clone_joined(flags: int, launch, joins, run_cfg, mapped):
    """(the init's pid, the plan it runs): the namespaces by path joined around the user
    namespace (hardrun.runtime.oci_joins.clone_joined); in the init the pid is 0."""
    from . import syscalls as k
    from .oci_joins import clone_joined, joined_first, sysctls_of
    from .oci_userns import STAGING_SYSFS
    if joins.owner is not None:
        flags &= ~k.CLONE_NEWUSER       # the owner's is joined
    sysfs = None
    if mapped is not None and any(kind == "network" for kind, _ in joins.before):
        # root in the container cannot mount the sysfs of a network namespace it does not own
        sysfs = os.path.join(mapped.state_dir, STAGING_SYSFS)
        os.mkdir(sysfs, 0o755)
        launch.sysfs = sysfs
    join = launch.cgroup_join
    pid = clone_joined(flags, joins, join.directory_fd if join else None, sysctls_of(run_cfg, joins), sysfs,
                       run_cfg.sys_read_only)
    return pid, joined_first(run_cfg, joins)


def _report(fd: int, read_all) -> bytes:
    os.set_blocking(fd, False)
    try:
        return read_all(fd)
    except BlockingIOError:
        return b""


def _prepare_filters(cfg, launch, loaded, explain: bool = False, holder: str | None = None) -> None:
    """The config's seccomp filter (or the floor's default) compiled in the parent, as
    `hardrun run` does: a profile that does not compile fails before anything exists.
    `explain`: its refusals notified to a holder (hardrun.runtime.oci_explain); `holder`: the
    state directory of a container whose holder takes them (exec)."""
    from . import seccomp
    bpf = None
    if cfg.seccomp == "default":
        bpf = seccomp.default_filter(cfg.caps)
    elif cfg.seccomp == "inline":
        from .seccomp_profile import parse_profile
        profile = parse_profile(loaded.seccomp_profile, path="linux.seccomp", fmt="json")
        bpf = seccomp.cached_filter(profile, cfg.caps)
    if bpf is not None and explain:
        from .oci_explain import prepare
        launch.seccomp_filter, launch.seccomp_watch = prepare(bpf)
    elif bpf is not None and holder is not None:
        from .oci_explain import connect_exec
        try:
            launch.seccomp_filter, launch.seccomp_watch = connect_exec(bpf, holder)
        except OSError as error:
            raise OciError(f"the container's --explain holder cannot take this process's refusals "
                           f"({error.strerror}): it is gone") from None
    elif bpf is not None:
        launch.seccomp_filter = seccomp.prepare_filter(bpf)
    if cfg.memfd_by_seccomp:
        launch.memfd_filter = seccomp.prepare_filter(seccomp.memfd_filter())


def _stdio(console_socket: str | None):
    """The init inherits fds 0-2 (the engine's pipes), or with a terminal a pty whose master
    goes to the engine's console socket (SCM_RIGHTS), as runc sends it."""
    from .stdio import Stdio
    if console_socket is None:
        return Stdio((None, None, None))
    import fcntl
    import socket
    import termios
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
    except OSError as error:
        sock.close()
        raise OciError(f"--console-socket {console_socket}: {error.strerror}") from None
    return Stdio((None, None, None), False, (sock, _Closed()), (fcntl.ioctl, termios.TIOCSCTTY, socket.send_fds))


class _Closed:
    """The parent's end of an engine's console socket: the engine has it, not hardrun."""
    def close(self) -> None:
        pass


def _clone(flags: int, launch, pid_namespace: str | None, k) -> int:
    """Clone into the container's cgroup (v2) and, for a pid namespace named by path, into
    that namespace: the parent enters it for its children only, and returns at once (`k`:
    the system calls, hardrun.runtime.syscalls or a test's recording fake)."""
    join = launch.cgroup_join
    cgroup_fd = join.directory_fd if join else None
    if pid_namespace is None:
        return k.clone(flags, cgroup_fd)
    pid = -1
    own = k.open_fd("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    target = k.open_fd(pid_namespace, os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.setns(target, k.CLONE_NEWPID)
        try:
            pid = k.clone(flags, cgroup_fd)
        finally:
            if pid != 0:
                k.setns(own, k.CLONE_NEWPID)
        return pid
    finally:
        k.close(own)
        k.close(target)


def _exec_plan(cfg):
    from .process import ExecPlan
    return ExecPlan(cfg.args, cfg.env)


def _parent_settings(pid: int, loaded) -> None:
    """rlimits (prlimit) on the held init, before anything can run (oom_score_adj: the child)."""
    if loaded.rlimits:
        from . import ulimits
        from .cgroups import LimitError
        try:
            ulimits.apply(pid, loaded.rlimits)
        except LimitError:
            raise OciError(_rlimit_problem(loaded.rlimits)) from None


def _rlimit_problem(rlimits) -> str:
    """Which of process.rlimits cannot be set and why, in the config's terms (an engine
    asking for more than the runtime's own hard limit, without CAP_SYS_RESOURCE)."""
    import resource
    from .ulimits import RLIMITS
    for item in rlimits:
        own = resource.getrlimit(RLIMITS[item.name])[1]
        if own != resource.RLIM_INFINITY and (item.hard < 0 or item.hard > own):
            asked = "unlimited" if item.hard < 0 else item.hard
            return (f"process.rlimits RLIMIT_{item.name.upper()}: hard limit {asked} is above this runtime's own "
                    f"({own}), and raising it needs CAP_SYS_RESOURCE (set the engine's default ulimits to {own} "
                    "or less)")
    names = ", ".join(f"RLIMIT_{item.name.upper()}" for item in rlimits)
    return f"process.rlimits ({names}): cannot be set on the container's process"


def _cgroup_relative(cgroups_path: str | None, container_id: str) -> str:
    if not cgroups_path:
        return os.path.join(CGROUP_PARENT, container_id)
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise UsageError(f"linux.cgroupsPath {cgroups_path!r}: the systemd form needs --systemd-cgroup")
    relative = os.path.normpath(cgroups_path).strip("/")
    if not relative or relative.startswith("..") or "/../" in f"/{relative}/":
        raise UsageError(f"linux.cgroupsPath {cgroups_path!r}: not a cgroup below the hierarchy's root")
    return relative


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _write_pid_file(path: str, pid: int) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(str(pid))
    os.rename(temporary, path)


def _kill_quietly(pid: int) -> None:
    _signal(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)      # our own child (a failed create, `run`)
    except ChildProcessError:
        pass
