"""The host side: validate everything, clone, map ids, release the child, wait.

Order (each before the next for a reason):
1. `config.resolve` has validated the whole spec before this module runs.
2. Compile (or fetch from the cache) the seccomp filter (before the hooks create state
   and cgroups), plan the container's fds 0-2 (a terminal refusal before any state),
   build argv/env as bytes: all work the parent can do is done before the child exists.
3. Block the forwarded signals, then clone with every namespace flag at once (the
   child is PID 1 of its PID namespace, with nothing running yet) and, on cgroup v2,
   straight into its cgroup (the child joins v1 cgroups itself: cgroups.CgroupJoin).
4. Write uid_map/gid_map and release the child's first stage (its filesystem set-up)
   through the sync pipe; meanwhile run the hooks (ulimits, network in the child's
   namespace), then release the second stage (cgroup namespace onwards).
5. Forward signals, stop and continue the container with hardrun (jobcontrol: Ctrl-Z),
   read the child's failure report (EOF means it reached execve),
   wait, undo the hooks, and return the exit status.
"""
from __future__ import annotations

import errno
import os
import _signal as signal  # the C module itself: `signal` adds an enum import (milliseconds)
import sys

from . import child, jobcontrol, process, stdio
from .config import LaunchState
from . import syscalls as k
from .process import StepFailure

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from .hooks import Hooks

HANDLED = process.FORWARDED + jobcontrol.STOP_SIGNALS

CLONE_FLAGS = {
    "mount": k.CLONE_NEWNS, "pid": k.CLONE_NEWPID, "ipc": k.CLONE_NEWIPC, "uts": k.CLONE_NEWUTS,
    "network": k.CLONE_NEWNET, "user": k.CLONE_NEWUSER,
    # cgroup: unshared by the child once it sits in its own cgroup (see child step 1)
}


def run(cfg, hooks: Hooks | None = None, seccomp_watch=None) -> int:
    """Start the container described by `cfg` (a resolved RuntimeConfig, never changed
    here: what the start learns goes into a LaunchState) and return its exit status;
    set-up failures print one line and return 125/126/127. `seccomp_watch`: --explain or
    --seccomp-learn (hardrun.runtime.seccomp_explain / seccomp_learn)."""
    from ..errors import HardrunError
    from .hooks import Hooks    # here: hardrun-oci create imports this module for its helpers only
    terminal = jobcontrol.CallerTerminal.save()   # whatever the container sets, put back below
    launch = LaunchState(cfg)
    launch.seccomp_watch = seccomp_watch
    try:
        return _launch(cfg, launch, hooks or Hooks(cfg), terminal)
    except StepFailure as failure:
        print(failure.line(), file=sys.stderr, flush=True)
        return failure.code
    except HardrunError as error:
        print(f"hardrun: {error}", file=sys.stderr, flush=True)
        return process.EXIT_SETUP
    except ImportError as error:  # a broken install: never run without the missing protection
        print(f"hardrun: {error}: this install of hardrun is incomplete; reinstall it "
              "(the container was not started)", file=sys.stderr, flush=True)
        return process.EXIT_SETUP
    except OSError as error:  # from a hook (state, cgroup, network): fail closed, no traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"hardrun: {where}{error.strerror or error} (the container was not started)",
              file=sys.stderr, flush=True)
        return process.EXIT_SETUP
    finally:
        terminal.restore()


def _launch(cfg, launch: LaunchState, hooks: Hooks, terminal) -> int:
    # The filter before the hooks: a profile that does not load fails before any state or
    # cgroup exists.
    if cfg.seccomp is not None or launch.seccomp_watch is not None:
        launch.seccomp_filter = _seccomp_filter(cfg, launch.seccomp_watch)
    if cfg.memfd_by_seccomp:
        launch.memfd_filter = _memfd_filter()
    # The container's fds before the hooks too: a terminal it cannot be given is refused
    # before any state, cgroup or network exists.
    launch.stdio = stdio.plan(cfg.tty, cfg.interactive)
    status = None
    try:
        try:
            hooks.prepare(launch)
            status, report = _start_and_wait(cfg, launch, hooks, terminal)
        finally:
            message = hooks.finish(status)
            if message:
                print(message, file=sys.stderr, flush=True)
    finally:
        launch.stdio.close()
        if launch.seccomp_watch is not None:   # after exit: the report, or the learned profile
            launch.seccomp_watch.finish(cfg)
    if report:
        failure = StepFailure.decode(report)
        print(failure.line(), file=sys.stderr, flush=True)
        return failure.code
    return process.exit_code(status)


def clone_flags(namespaces, joined=()) -> int:
    """The clone flags of the namespaces the container gets of its own: each of `namespaces`
    but the cgroup one (see CLONE_FLAGS) and those `joined` (an OCI config's paths, entered
    instead). The pid namespace among them makes the child pid 1 of a new one, where its
    /proc is mounted."""
    flags = 0
    for name in namespaces:
        if name not in joined:
            flags |= CLONE_FLAGS.get(name, 0)
    return flags


def _start_and_wait(cfg, launch: LaunchState, hooks: Hooks, terminal) -> tuple[int, bytes]:
    exec_plan = process.ExecPlan(cfg.args, cfg.env)
    return _clone_and_wait(cfg, launch, hooks, terminal, exec_plan, clone_flags(cfg.namespaces))


def _clone_and_wait(cfg, launch: LaunchState, hooks: Hooks, terminal, exec_plan,
                    flags: int) -> tuple[int, bytes]:
    join = launch.cgroup_join
    streams = launch.stdio
    assert streams is not None, "_launch plans fds 0-2 before the hooks and the clone"
    sync_read, sync_write = os.pipe()
    report_read, report_write = os.pipe()
    # Blocked until the child has reset its handlers and the parent knows whom to forward
    # to (and a Ctrl-Z can stop the container with hardrun).
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        pid = k.clone(flags, join.directory_fd if join else None)
    except OSError as error:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        for fd in (sync_read, sync_write, report_read, report_write):
            os.close(fd)
        raise StepFailure("clone", error.errno, _clone_hint(error.errno, cfg, join)) from None
    if pid == 0:
        os.close(sync_write)
        os.close(report_read)
        child.main(cfg, launch, exec_plan, sync_read, report_write)  # never returns
    os.close(sync_read)
    os.close(report_write)
    streams.close_container_ends()
    if launch.seccomp_watch is not None:
        launch.seccomp_watch.started()   # its thread inherits the blocked signals
    try:
        try:
            if cfg.id_maps is not None:
                _step("uid_map", lambda: _write_maps(pid, cfg.id_maps),
                      "could not map the container's ids; check --userns-remap and /etc/subuid")
            os.write(sync_write, b"1")  # the child sets up its filesystem meanwhile
            hooks.attach(pid)           # it waits for "2" before anything can run
            if streams.console is not None:
                streams.receive_terminal()   # sized before anything can run
            try:
                os.write(sync_write, b"2")
            except BrokenPipeError:
                pass  # the child failed a step already: its report explains why
        except BaseException:
            _kill(pid)
            report = _read_all(report_read)
            if report:   # the child failed first (its cgroup, a mount…): its report says why
                raise StepFailure.decode(report) from None
            raise
        jobs = jobcontrol.JobControl(pid, hooks.freeze, terminal)
        _forward_signals(pid, jobs)
        try:
            if streams.relayed():
                stdio.relay(streams, terminal, pid)
            report = _read_all(report_read)
            return _wait(pid), report
        finally:
            jobs.uninstall()
    finally:
        os.close(report_read)
        os.close(sync_write)


def _write_maps(pid: int, maps) -> None:
    from .userns import write_id_maps
    write_id_maps(pid, maps)


def _step(name: str, action, hint: str) -> None:
    try:
        action()
    except OSError as error:
        raise StepFailure(name, error.errno or 0, hint) from None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _wait(pid)


def _forward_signals(pid: int, jobs) -> None:
    process.forward_signals(pid)
    jobs.install()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = os.read(fd, 4096)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _wait(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]   # EINTR is retried by Python itself
    except ChildProcessError:
        return 0


def _seccomp_filter(cfg, watch=None):
    """The compiled filter, ready to load in the child (integration point of
    hardrun.runtime.seccomp: compile in the parent, cached by profile hash); with --explain
    or --seccomp-learn, the variant with a listener the parent answers."""
    from . import seccomp
    # Compiled for the kept capabilities (capability-gated syscalls), cached by hash: the
    # built-in profile's cache hit needs neither parsing nor libseccomp.
    if cfg.seccomp is None:
        bpf = None
    elif cfg.seccomp == "default":
        bpf = seccomp.default_filter(cfg.caps)
    else:
        profile = seccomp.load_profile(cfg.seccomp)
        for warning in seccomp.check_syscall_names(profile):
            print(f"hardrun: warning: {warning}", file=sys.stderr, flush=True)
        bpf = seccomp.cached_filter(profile, cfg.caps)
    if watch is not None:
        return watch.prepare(bpf, cfg)
    # _launch asks for a filter without a profile only for a watch (--seccomp-learn)
    assert bpf is not None, "no seccomp profile and nothing watching"
    return seccomp.prepare_filter(bpf)


def _memfd_filter():
    """hardrun's memfd filter, for a container whose pid namespace cannot get
    vm.memfd_noexec=2: without it the start fails (fail closed)."""
    from . import seccomp
    return seccomp.prepare_filter(seccomp.memfd_filter())


def _clone_hint(number: int | None, cfg, join) -> str:
    if number == errno.ENOSYS and join and join.directory_fd is not None:
        return ("starting in a cgroup v2 needs clone3 (Linux 5.7 or later); a seccomp filter "
                "around hardrun may block it")
    if "user" not in cfg.namespaces:
        return "creating the namespaces needs root (or keep the default user namespace)"
    if number == errno.ENOSPC:
        return "user namespaces are exhausted or disabled: raise the sysctl user.max_user_namespaces"
    if number in (errno.EPERM, errno.EACCES, errno.EINVAL):
        knob = "/proc/sys/kernel/unprivileged_userns_clone"
        if os.path.exists(knob):
            return ("unprivileged user namespaces are disabled: set the sysctl "
                    "kernel.unprivileged_userns_clone=1 (and user.max_user_namespaces > 0)")
        return "user namespaces are unavailable: check the sysctl user.max_user_namespaces (must be > 0)"
    return "the kernel refused to create the container's namespaces"
