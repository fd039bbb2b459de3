"""`hardrun-oci exec`: a new process in a running container, with the container's confinement.

The process gets what the container's own process got, never the caller's: its
namespaces (joined with setns from /proc/<init>/ns, the user namespace first), its
cgroups, its capability bounding set (a process.json asking for more is refused), its
no_new_privs (on if the container's is, or the process.json asks) and its seccomp filter
(the config's as the container was created, the floor's included). The user, working
directory, environment and terminal are the process's own, as in runc.

Processes: this command (E) becomes a child subreaper and forks A; A joins the cgroups
and the namespaces and forks B, which is in the container's pid namespace (setns(pid)
applies to children only); A tells E B's pid and exits, so B is re-parented to E. B runs
hardrun.runtime.child.enter (user, capabilities, no_new_privs, filter, execve). E writes
`--pid-file`, reads B's failure report (EOF: it reached execve) and, unless `--detach`,
waits for B and returns its exit status.
"""
from __future__ import annotations

import os

from ..errors import UsageError
from .oci import Container, OciError
from .oci_userns import NAMESPACE_FILES

PR_SET_CHILD_SUBREAPER = 36


class ExecOptions:
    __slots__ = ("process_file", "args", "cwd", "env", "tty", "detach", "pid_file", "console_socket",
                 "preserve_fds", "user")

    def __init__(self, process_file=None, args=(), cwd=None, env=(), tty=False, detach=False, pid_file=None,
                 console_socket=None, preserve_fds=0, user=None):
        self.process_file, self.args, self.cwd, self.env, self.tty = process_file, tuple(args), cwd, tuple(env), tty
        self.detach, self.pid_file, self.console_socket = detach, pid_file, console_socket
        self.preserve_fds, self.user = preserve_fds, user


def exec_process(root: str, container_id: str, options: ExecOptions) -> int:
    """Run the process in the container; its exit status (0 with --detach)."""
    from . import bundle as bundle_module
    from .oci import wait
    from .oci_create import _prepare_filters, _stdio, _write_pid_file
    container = Container.load(root, container_id)
    status = container.status()
    if status not in ("running", "created"):
        raise OciError(f"container {container_id} is {status}: cannot exec in it")
    document = _document(container, options)
    floor_seccomp = any(change.startswith("linux.seccomp") for change in container.record.get("floor") or [])
    loaded = bundle_module.from_document(document, container.record["bundle"], floor_seccomp)
    cfg = loaded.config
    if cfg.tty and not options.console_socket:
        raise UsageError("exec: a terminal (--tty or process.terminal) needs --console-socket")
    from .config import LaunchState
    launch = LaunchState(cfg)
    # a container created with --explain: this process's refusals go to its holder too
    _prepare_filters(cfg, launch, loaded, holder=container.path if container.record.get("holder") else None)
    launch.stdio = _stdio(options.console_socket if cfg.tty else None)
    launch.preserve_fds = options.preserve_fds
    from .process import ExecPlan, StepFailure
    from .parent import _read_all
    from . import syscalls as k
    exec_plan = ExecPlan(cfg.args, cfg.env)
    namespaces = _namespace_fds(container.record["pid"])
    pid_read, pid_write = os.pipe()
    report_read, report_write = os.pipe()
    k.prctl(PR_SET_CHILD_SUBREAPER, 1)   # B comes back to us when A exits
    try:
        helper = os.fork()
        if helper == 0:
            os.close(pid_read)
            os.close(report_read)
            _join_and_fork(container, cfg, launch, exec_plan, namespaces, pid_write, report_write)
        os.close(pid_write)
        os.close(report_write)
        pid_write = report_write = -1
        launch.stdio.close_container_ends()
        data = _read_all(pid_read)
        os.waitpid(helper, 0)
        report = _read_all(report_read)
        if report:
            raise StepFailure.decode(report)
        if not data:
            raise OciError(f"exec in container {container_id}: could not enter it")
        pid = int(data)
        if options.pid_file:
            _write_pid_file(options.pid_file, pid)
        return 0 if options.detach else wait(pid)
    finally:
        for fd in (pid_read, pid_write, report_read, report_write, *namespaces.values()):
            if fd >= 0:
                os.close(fd)
        launch.stdio.close()
        if launch.seccomp_watch is not None:    # the process has its end (the holder's connection)
            launch.seccomp_watch.listener.close()


def _document(container: Container, options: ExecOptions) -> dict:
    """The container's config as it was created, with the process to run in place of its own."""
    from ..userfiles import read_json_object
    document = container.config()
    own = document["process"]
    if options.process_file:
        process = read_json_object(options.process_file, f"--process {options.process_file}",
                                   "a JSON object (an OCI process)", UsageError)
    else:
        if not options.args:
            raise UsageError("exec: give --process FILE or a command")
        process = {"args": list(options.args), "env": own.get("env", []), "cwd": own.get("cwd", "/"),
                   "user": own.get("user", {}), "capabilities": own.get("capabilities", {})}
    if options.cwd:
        process["cwd"] = options.cwd
    if options.env:
        process["env"] = list(process.get("env", [])) + list(options.env)
    if options.tty:
        process["terminal"] = True
    asked = process.setdefault("capabilities", own.get("capabilities") or {})
    if container.record.get("floor_on"):    # the engine asks for its default set again: the floor's rule again
        from .bundle import drop_default_net_raw
        drop_default_net_raw(asked)
    _within(own.get("capabilities") or {}, asked)
    # never looser than the container: no_new_privs stays on if it was
    process["noNewPrivileges"] = bool(own.get("noNewPrivileges")) or bool(process.get("noNewPrivileges"))
    for key in ("rlimits", "oomScoreAdj"):    # the container's, inherited through its cgroup and init
        process.pop(key, None)
    document["process"] = process
    return document


def _within(container_caps: dict, asked: dict) -> None:
    bounding = set(container_caps.get("bounding") or [])
    for name, values in asked.items():
        beyond = sorted(set(values or []) - bounding)
        if beyond:
            raise UsageError(f"exec: process.capabilities.{name}: {', '.join(beyond)} beyond the container's "
                             "bounding set (an exec never gets more than the container)")


def _namespace_fds(pid: int) -> dict:
    """The container's namespaces that differ from ours, opened now (before any fork)."""
    fds = {}
    try:
        for name, file_name, _ in NAMESPACE_FILES:
            theirs = f"/proc/{pid}/ns/{file_name}"
            if os.stat(theirs).st_ino != os.stat(f"/proc/self/ns/{file_name}").st_ino:
                fds[name] = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        for fd in fds.values():
            os.close(fd)
        raise OciError(f"cannot open the container's namespaces: {error.strerror}") from None
    return fds


def _join_and_fork(container: Container, cfg, launch, exec_plan, namespaces: dict, pid_write: int,
                   report_write: int) -> None:
    """In A: never returns."""
    from . import child, syscalls as k
    from .process import StepFailure
    try:
        step = "join cgroup"
        for path in container.record.get("cgroups") or []:
            with open(os.path.join(path, "cgroup.procs"), "w") as handle:
                handle.write("0")
        from .oci_joins import host_owned_first
        flags = {name: flag for name, _, flag in NAMESPACE_FILES}
        for name, fd in host_owned_first(namespaces):
            step = f"join {name} namespace"
            k.setns(fd, flags[name])
        step = "fork"
        pid = os.fork()
        if pid == 0:
            os.close(pid_write)
            k.setsid()
            if launch.stdio.console is not None:
                launch.stdio.open_terminal(cfg.user.uid)
            child.enter(cfg, launch, exec_plan, report_write)   # never returns
        os.write(pid_write, str(pid).encode())
        os._exit(0)
    except BaseException as error:
        number = getattr(error, "errno", 0) or 0
        os.write(report_write, StepFailure(step, number, "cannot enter the container").encode())
        os._exit(125)
