"""`hardrun-oci`: the OCI runtime operations (runc's command line, hardrun.cli.oci).

A container's life, as runc's:

- `create`: read the bundle (hardrun.runtime.bundle), make the state directory
  `<root>/<id>/` (trusted as hardrun's own state root is: owner, 0700, no symlinks), the
  cgroup and the `exec.fifo`, clone the container's init with its namespaces and let it
  run every step of hardrun.runtime.child up to the exec; the init then says it is ready
  and blocks opening the fifo. The parent runs the `prestart` and `createRuntime` hooks
  with the state on their stdin, writes `--pid-file` and exits: the init is re-parented
  to the engine's shim (a subreaper). The container's process is pid 1 of its namespace.
- `start` opens the fifo: the init writes a byte, loads its seccomp filter and execs.
- `state` reports created (the fifo is there), running, paused (frozen) or stopped.
- `kill` signals the init (or, `--all`, every process of its cgroup); `delete` kills
  what is left, removes the cgroup and the state directory, then runs `poststop`.

What `create` recorded is `state.json` in the state directory: the init's pid and start
time (a reused pid is never signalled), the bundle, the cgroup directories, the
annotations, the floor's changes and the config as it was run (for `exec`).
"""
from __future__ import annotations

import os
import _signal as signal
import time

from ..errors import HardrunError, UsageError
from .. import jsonlite
from . import state as state_module
from .process import StepFailure, running

DEFAULT_ROOT = "/run/hardrun-oci"
STATE_FILE = "state.json"
FIFO = "exec.fifo"
CONFIG_COPY = "config.json"
LIGHT_FILE = "state.light"   # the compiled front's copy of the record (bin/hardrun-oci-front.c)
OCI_VERSION = "1.0.2"
CGROUP_PARENT = "hardrun-oci"
HOOK_TIMEOUT = 30
SIGNALS = {name: number for name, number in (
    ("HUP", 1), ("INT", 2), ("QUIT", 3), ("ILL", 4), ("TRAP", 5), ("ABRT", 6), ("BUS", 7), ("FPE", 8),
    ("KILL", 9), ("USR1", 10), ("SEGV", 11), ("USR2", 12), ("PIPE", 13), ("ALRM", 14), ("TERM", 15),
    ("STKFLT", 16), ("CHLD", 17), ("CONT", 18), ("STOP", 19), ("TSTP", 20), ("TTIN", 21), ("TTOU", 22),
    ("URG", 23), ("XCPU", 24), ("XFSZ", 25), ("VTALRM", 26), ("PROF", 27), ("WINCH", 28), ("IO", 29),
    ("PWR", 30), ("SYS", 31))}


class OciError(HardrunError):
    exit_code = 1


# -- the state directory ------------------------------------------------------------------

def check_id(container_id: str) -> str:
    if not container_id or container_id in (".", "..") or len(container_id) > 1024 or not all(
            c.isalnum() or c in "-_.+" for c in container_id):
        raise UsageError(f"invalid container id {container_id!r}",
                         hint="letters, digits and - _ . + only")
    return container_id


def _root(root: str, create: bool = False) -> state_module.TrustedRoot:
    trusted = state_module.trusted_root(root, create=create)
    if trusted is None:
        raise OciError(f"container state root {root} does not exist")
    return trusted


class Container:
    """One container's state directory and record."""

    def __init__(self, root: str, container_id: str, record: dict):
        self.root, self.id, self.record = root, container_id, record

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.id)

    @classmethod
    def load(cls, root: str, container_id: str) -> "Container":
        root = _root(root)
        path = os.path.join(root, check_id(container_id))
        try:
            info = os.lstat(path)
            if not (os.path.isdir(path) and not os.path.islink(path)) or info.st_uid != os.geteuid() \
                    or info.st_mode & 0o077:
                raise OciError(f"container {container_id}: its state directory {path} is not hardrun's own "
                               "(a symbolic link, another owner or open to others): refused")
            record = read_own_json(os.path.join(path, STATE_FILE))
        except FileNotFoundError:
            raise OciError(f"container {container_id} does not exist") from None
        except ValueError:
            raise OciError(f"container {container_id}: its state record is damaged") from None
        return cls(root, container_id, record)

    def config(self) -> dict:
        """The config as `create` kept it (CONFIG_COPY: with the user namespace it added)."""
        return read_own_json(os.path.join(self.path, CONFIG_COPY))

    def save(self) -> None:
        # the front's copy first: it never describes a record older than state.json's. None
        # before the init has a pid (create's first saves): the front hands those to Python.
        if self.record.get("pid"):
            self._replace(LIGHT_FILE, self.light_record())
        else:
            try:
                os.unlink(os.path.join(self.path, LIGHT_FILE))
            except FileNotFoundError:
                pass
        self._replace(STATE_FILE, jsonlite.dumps(self.record))

    def _replace(self, name: str, text: str) -> None:
        # one temporary file per process: two commands on one container (an engine's start
        # and kill) must not write into the same file before the rename
        temporary = os.path.join(self.path, f".{name}.{os.getpid()}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.rename(temporary, os.path.join(self.path, name))

    def light_record(self) -> str:
        """What the compiled front answers `state`, `start` and `kill` from, in lines: the
        init's pid and start time, whether `start` has hooks to run, the freezer cgroups, and
        `state`'s JSON as this process would print it, cut around the status and the pid.
        `fallback` (the front hands every call to this Python) when any of it cannot be a line."""
        pid, start_time = self.record.get("pid"), self.record.get("start_time")
        cgroups = self.record.get("cgroups") or []
        document = self.full_state()
        document.update(status=_STATUS_MARK, pid=_PID_MARK)
        text = jsonlite.dumps(document)
        head, _, rest = text.partition(jsonlite.dumps(_STATUS_MARK))
        middle, _, tail = rest.partition(str(_PID_MARK))
        usable = isinstance(pid, int) and isinstance(start_time, int) and pid > 0 and all(
            isinstance(path, str) and path.startswith("/") and "\n" not in path for path in cgroups)
        if not usable or "\n" in text:
            return "hardrun-oci-light 1\nfallback\n"
        lines = ["hardrun-oci-light 1", f"pid {pid}", f"start_time {start_time}",
                 f"poststart {1 if self.hooks('poststart') else 0}",
                 *(f"cgroup {path}" for path in cgroups), f"head {head}", f"middle {middle}", f"tail {tail}"]
        return "\n".join(lines) + "\n"

    def hooks(self, kind: str) -> list:
        return ((self.record.get("hooks") or {}).get(kind)) or []

    # -- status -------------------------------------------------------------------

    def alive(self) -> bool:
        pid = self.record.get("pid")
        return isinstance(pid, int) and pid > 0 and running(pid, self.record.get("start_time"))

    def status(self) -> str:
        if not self.alive():
            return "stopped"
        if os.path.exists(os.path.join(self.path, FIFO)):
            return "created"
        if _frozen(self.record.get("cgroups") or []):
            return "paused"
        return "running"

    def oci_state(self) -> dict:
        status = self.status()
        annotations = dict(self.record.get("annotations") or {})
        for index, change in enumerate(self.record.get("floor") or []):
            annotations[f"org.hardrun.floor.{index}"] = change
        document = {"ociVersion": OCI_VERSION, "id": self.id, "status": status,
                    "pid": self.record.get("pid") if status != "stopped" else 0,
                    "bundle": self.record.get("bundle"), "annotations": annotations}
        return document

    def full_state(self) -> dict:
        """`state`'s document: the spec's fields, plus runc's `rootfs`, `created` and `owner`."""
        document = self.oci_state()
        document.update(rootfs=self.record.get("rootfs"), created=self.record.get("created"), owner="")
        return document


_STATUS_MARK, _PID_MARK = "@status@", 987654321987   # no status nor pid: cut out by the front


def _frozen(paths) -> bool:
    for path in paths:
        for name, frozen in (("freezer.state", "FROZEN"), ("cgroup.freeze", "1")):
            try:
                with open(os.path.join(path, name)) as handle:
                    return handle.read().strip() == frozen
            except OSError:
                continue
    return False


# -- create ---------------------------------------------------------------------------

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
    plan = oci_userns.plan(loaded.document, mode, container_id, _Containers(root))
    if plan.kind == "keep":
        if plan.note:
            loaded = replace(loaded, floor=loaded.floor + (FloorChange("linux.namespaces", plan.note),))
        return loaded, None, None
    try:
        lease = oci_userns.shared_lease(plan.owner) if plan.owner is not None else _lease()
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
    namespace (hardrun.runtime.oci_userns.clone_joined); in the init the pid is 0."""
    from . import syscalls as k
    from .oci_userns import STAGING_SYSFS, clone_joined, joined_first, sysctls_of
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


def read_own_json(path: str):
    """A JSON file of the container's state directory, never through a link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd) as handle:
        return jsonlite.loads(handle.read())


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


# -- hooks ------------------------------------------------------------------------------

def _run_hooks(container: Container, kinds, fail: bool = True) -> list[str]:
    """Run each hook of `kinds` with the container's state on stdin (the spec's way); a
    failure raises (create, start) or is returned (poststop: delete goes on)."""
    hooks = [(kind, hook) for kind in kinds for hook in container.hooks(kind)]
    if not hooks:
        return []
    import subprocess     # only where there are hooks: `start` and `delete` are on a measured path
    problems = []
    state_text = jsonlite.dumps(container.oci_state())
    for kind, hook in hooks:
        argv = hook["args"] or [hook["path"]]
        try:
            result = subprocess.run(argv, executable=hook["path"], input=state_text.encode(),
                                    env=dict(item.split("=", 1) for item in hook["env"] if "=" in item),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    timeout=hook["timeout"] or HOOK_TIMEOUT)
            problem = (f"{kind} hook {hook['path']} failed (exit {result.returncode}): "
                       f"{result.stderr.decode(errors='replace').strip()}") if result.returncode else None
        except subprocess.TimeoutExpired:
            problem = f"{kind} hook {hook['path']} timed out"
        except OSError as error:
            problem = f"{kind} hook {hook['path']}: {error.strerror}"
        if problem and fail:
            raise OciError(problem)
        if problem:
            problems.append(problem)
    return problems


# -- start, state, kill, delete -------------------------------------------------------------

def start(root: str, container_id: str) -> None:
    container = Container.load(root, container_id)
    status = container.status()
    if status != "created":
        raise OciError(f"container {container_id} is {status}: only a created container can be started")
    fifo_path = os.path.join(container.path, FIFO)
    # Non-blocking: an init that died meanwhile is not waited for forever.
    fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        data = b""
        while not data:
            try:
                data = os.read(fd, 1)
            except BlockingIOError:
                data = b""
            if not data:
                if not container.alive():
                    raise OciError(f"container {container_id}: its init died before it was started")
                time.sleep(0.001)
    finally:
        os.close(fd)
        os.unlink(fifo_path)
    _run_hooks(container, ("poststart",))


def parse_signal(value: str) -> int:
    text = value.upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < 65:
            return number
    else:
        name = text[3:] if text.startswith("SIG") else text
        if name in SIGNALS:
            return SIGNALS[name]
    raise UsageError(f"unknown signal {value!r}", hint="a number (15) or a name (TERM, SIGTERM)")


def kill(root: str, container_id: str, signum: int, all_processes: bool = False) -> None:
    container = Container.load(root, container_id)
    if container.status() == "stopped":
        raise OciError(f"container not running: {container_id}")   # the wording the runc shim matches
    if all_processes:
        from .cgroup_removal import cgroup_pids
        for path in container.record.get("cgroups") or []:
            for pid in cgroup_pids(path):
                _signal_through(_pidfd_in(path, pid, cgroup_pids), signum)
        return
    _signal_through(_pidfd_of(container.record["pid"], container.record.get("start_time")), signum)


def _signal_through(pidfd: int | None, signum: int) -> None:
    if pidfd is None:
        return
    try:
        signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def _pidfd_in(path: str, pid: int, cgroup_pids) -> int | None:
    """A pidfd of `pid` while it is still in the cgroup `path`, else None: the cgroup is read
    again after the pidfd is open, so a pid reused outside it meanwhile is never signalled."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if pid in cgroup_pids(path):
        return pidfd
    os.close(pidfd)
    return None


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def delete(root: str, container_id: str, force: bool = False, warn=None) -> None:
    """`warn(message)`: where a loss that does not stop the delete is reported (the engine's log)."""
    container = Container.load(root, container_id)
    status = container.status()
    if status in ("running", "paused") and not force:
        raise OciError(f"container {container_id} is {status}: stop it first, or delete --force")
    problems = _remove(container, warn)
    problems += _run_hooks(container, ("poststop",), fail=False)
    if problems:
        raise OciError("; ".join(problems))


def _remove(container: Container, warn=None) -> list[str]:
    """Kill what is left (a held init too), remove the cgroups and the state directory."""
    from .cgroup_removal import remove_cgroups
    paths = container.record.get("cgroups") or []
    finished = not container.alive()
    if not finished:
        _kill_and_wait(container.record["pid"], container.record.get("start_time"))
    if container.record.get("holder"):
        from .oci_explain import record_lost, stop_holder
        lost = record_lost(container.record)
        stop_holder(container.record, finished)
        if not os.path.exists(os.path.join(container.path, FIFO)):    # started: `docker run --rm` deletes at exit
            _keep_explain_record(container, lost, warn)
    if container.record.get("id_lease") and container.record.get("pid"):
        from .userns import release_held
        release_held(container.record["id_lease"], container.record["pid"], container.record.get("start_time"))
    problems = remove_cgroups(paths) if paths else []
    if not problems:
        state_module.remove_tree(container.path)
    return problems


def _keep_explain_record(container: Container, lost: bool, warn) -> None:
    """Keep the --explain record past the delete; one that cannot be kept does not stop the
    delete, and is reported (`warn`, else stderr) rather than lost without a word."""
    from .oci_explain import keep_record
    try:
        problem = None if keep_record(container, lost) else "no trusted state root to keep it in"
    except (OSError, HardrunError) as error:    # an untrusted or full state root
        problem = str(error)
    if problem:
        message = f"container {container.id}: its --explain record was not kept: {problem}"
        if warn is not None:
            warn(message)
        else:
            os.write(2, f"hardrun-oci: warning: {message}\n".encode(errors="replace"))


EXIT_WAIT_MS = 1000    # then remove_cgroups kills what is left and waits, up to its own deadline


def _pidfd_of(pid: int, start_time: int | None) -> int | None:
    """A pidfd of `pid` while it is still the process started at `start_time`, else None:
    checked after the pidfd is open, so the process checked is the one signalled through it
    (a reused pid is never signalled)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if running(pid, start_time):
        return pidfd
    os.close(pidfd)
    return None


def _kill_and_wait(pid: int, start_time: int | None) -> None:
    """SIGKILL the container's init through a pidfd (`_pidfd_of`) and wait until it has
    exited. The kernel takes an exiting process out of its cgroups before it reports the exit
    (and a pid namespace's init exits last of the namespace), so the cgroups' rmdir succeeds at
    once rather than after a guessed sleep. Our own child (`run`) is reaped."""
    pidfd = _pidfd_of(pid, start_time)
    if pidfd is None:
        return
    try:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return
        import select     # built into the interpreter: no file to load
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        exited = bool(poller.poll(EXIT_WAIT_MS))
    finally:
        os.close(pidfd)
    if exited:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _kill_quietly(pid: int) -> None:
    _signal(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)      # our own child (a failed create, `run`)
    except ChildProcessError:
        pass


def list_containers(root: str) -> list[Container]:
    try:
        trusted = _root(root)
    except OciError:
        return []
    found = []
    for name in sorted(state_module.entry_names(trusted)):
        try:
            found.append(Container.load(trusted, name))
        except (OciError, UsageError):
            continue
    return found


def container_of(pid: int, root: str = DEFAULT_ROOT) -> dict | None:
    """The hardrun-oci container process `pid` belongs to (its init or a process of its
    cgroup): its id, status and the floor's changes; None when it is none of them."""
    from .cgroup_removal import cgroup_pids
    for container in list_containers(root):
        if container.record.get("pid") == pid or any(
                pid in cgroup_pids(path) for path in container.record.get("cgroups") or []):
            found = {"id": container.id, "status": container.status(), "bundle": container.record.get("bundle"),
                     "floor": list(container.record.get("floor") or [])}
            if container.record.get("holder"):
                from .oci_explain import read_denials, record_lost
                found["denials"] = read_denials(container.path) or []
                found["denials_incomplete"] = record_lost(container.record)
            return found
    return None


def processes(root: str, container_id: str) -> list[int]:
    from .cgroup_removal import cgroup_pids
    container = Container.load(root, container_id)
    pids: list[int] = []
    for path in container.record.get("cgroups") or []:
        pids += [pid for pid in cgroup_pids(path) if pid not in pids]
    return pids


def freeze(root: str, container_id: str, frozen: bool) -> None:
    from .cgroups import ContainerCgroup, Limits, detect_layout
    container = Container.load(root, container_id)
    status = container.status()
    if status not in (("running",) if frozen else ("paused",)):
        raise OciError(f"container {container_id} is {status}: cannot {'pause' if frozen else 'resume'} it")
    cgroup = ContainerCgroup(container_id, Limits(), detect_layout())
    cgroup.paths = {str(index): path for index, path in enumerate(container.record.get("cgroups") or [])}
    if not cgroup.freeze(frozen) and frozen:
        raise OciError(f"container {container_id}: its cgroup has no freezer, or did not freeze")


def update(root: str, container_id: str, resources: dict) -> None:
    """New cgroup limits (`linux.resources` as `update --resources` gives them)."""
    from .bundle import update_limits
    from .cgroups import ContainerCgroup
    container = Container.load(root, container_id)
    if container.status() == "stopped":
        raise OciError(f"container {container_id} is stopped")
    limits = update_limits(resources, container.record["bundle"])
    if not limits.devices_asked:
        limits.devices = ()     # no rules in the update: the container's stay as they are (runc's update)
    cgroup = ContainerCgroup.existing(container_id, container.record.get("cgroups") or [])
    if limits.devices and "devices" not in cgroup.paths:
        raise OciError(f"linux.resources.devices: container {container_id} was created without device rules, "
                       "so without a device cgroup to update")
    if limits.block_io is not None and not {"blkio", "io"} & cgroup.paths.keys():
        raise OciError(f"{limits.block_io.fields()[0]}: container {container_id} was created without blkio "
                       "settings, so without a blkio cgroup to update")
    limits.pids_is_default = limits.pids is None
    cgroup.apply_limits(limits)


def wait(pid: int) -> int:
    """The exit status of our own child `pid` (run), as a shell reports it."""
    from .process import exit_code
    while True:
        try:
            return exit_code(os.waitpid(pid, 0)[1])
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def features() -> dict:
    """The runtime-spec features document (what this runtime accepts)."""
    from ..spec.oci import NAMESPACE_TYPES
    from ..spec.capabilities import NAMES
    from ..spec.oci_config import CONTAINER_HOOKS, HOOK_KINDS
    return {
        "ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0",
        "hooks": [kind for kind in HOOK_KINDS if kind not in CONTAINER_HOOKS],
        "mountOptions": ["ro", "rw", "exec", "noexec", "nosuid", "nodev", "bind", "rbind", "private",
                         "rprivate", "slave", "rslave", "relatime", "noatime", "strictatime"],
        "linux": {
            "namespaces": list(NAMESPACE_TYPES),
            "capabilities": [f"CAP_{name}" for name in NAMES],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                                                     "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                                     "SCMP_ACT_LOG", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"],
                        "operators": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                                      "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]},
            "apparmor": {"enabled": False}, "selinux": {"enabled": False},
        },
        "annotations": {"org.hardrun.floor": "no_new_privs, seccomp allowlist, masked and read-only "
                                             "kernel paths, nosuid,nodev binds, NET_RAW out of an "
                                             "engine's default capability set"},
    }
