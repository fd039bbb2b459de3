"""`hardrun-oci`: the OCI runtime operations (runc's command line, hardrun.cli.oci).

A container's life, as runc's:

- `create` (hardrun.runtime.oci_create): read the bundle (hardrun.runtime.bundle), make the state directory
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
from .process import running

DEFAULT_ROOT = "/run/hardrun-oci"
STATE_FILE = "state.json"
FIFO = "exec.fifo"
CONFIG_COPY = "config.json"
LIGHT_FILE = "state.light"   # the compiled front's copy of the record (bin/hardrun-oci-front.c)
OCI_VERSION = "1.0.2"
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


def read_own_json(path: str):
    """A JSON file of the container's state directory, never through a link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd) as handle:
        return jsonlite.loads(handle.read())


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
