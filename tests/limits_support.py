"""Helpers for the limits and network tests: paused payloads, isolated state roots."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path


def require_root() -> None:
    # these tests need root and kernel features: they fail, never skip, without them
    assert os.geteuid() == 0, "limits/network tests need root (CI runs them as root)"


class Paused:
    """A forked process that waits until released, then execs `argv` (like the runtime's
    child waiting on its sync pipe), so limits apply before the payload's first instruction."""

    def __init__(self, argv: list[str], before_exec=None):
        read_end, self._release = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:           # child
            try:
                os.close(self._release)
                os.read(read_end, 1)
                if before_exec:
                    before_exec()
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        os.close(read_end)
        self.status: int | None = None

    def release(self) -> None:
        os.write(self._release, b"x")
        os.close(self._release)

    def wait(self, timeout: float = 30.0) -> int:
        """Exit status as a shell reports it (128+N when killed by signal N)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                if self.status < 0:
                    self.status = 128 - self.status
                return self.status
            time.sleep(0.01)
        self.kill()
        raise AssertionError(f"payload {self.pid} still running after {timeout} s")

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def remove_test_cgroup_parent() -> list[str]:
    """Remove the test's cgroup parent; return the container cgroups found left in it."""
    from hardrun.runtime import cgroups
    parent = os.environ["HARDRUN_CGROUP_PARENT"]
    leftovers = []
    for hierarchy in cgroups.detect_layout().hierarchies:
        directory = Path(hierarchy.mountpoint, parent)
        if directory.is_dir():
            children = [child for child in directory.iterdir() if child.is_dir()]
            leftovers += [str(child) for child in children]
            cgroups.remove_cgroups(children)
            directory.rmdir()
    return leftovers


def isolate_state(monkeypatch, tmp_path: Path) -> Path:
    """A private state root and cgroup parent, so tests never touch real containers."""
    root = tmp_path / "state"
    monkeypatch.setenv("HARDRUN_STATE_DIR", str(root))
    monkeypatch.setenv("HARDRUN_CGROUP_PARENT", unique("hardrun-test-"))
    return root


# ---------------------------------------------------------------- a simulated container

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE, MS_BIND, MS_REMOUNT, MS_RDONLY = 0x4000, 0x40000, 0x1000, 0x20, 0x1


class Box:
    """What the runtime does with limits and networks, on a forked child: state dir,
    cgroup, bridge endpoint, then a child in its own net and mount namespaces with the
    generated /etc/hosts bind-mounted read-only, released to exec `command`."""

    def __init__(self, command: str, network: str = "none", name: str | None = None,
                 ports=(), limits=None):
        from hardrun.runtime import cgroups, network as network_module, state
        from hardrun.spec.run import RunSpec
        self.id = state.new_container_id()
        self.state = state.ContainerState.create(self.id)
        self.cgroup = cgroups.ContainerCgroup.create(self.id, limits or cgroups.Limits(),
                                                     self.state)
        spec = RunSpec(network=network, name=name, ports=tuple(ports))
        self.endpoint = network_module.prepare(spec, self.id, self.state)
        hosts = str(self.endpoint.hosts_file) if self.endpoint else None
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                _enter_box(ready_w, go_r, hosts, command)
            finally:
                os._exit(127)
        os.close(ready_w)
        os.close(go_r)
        assert os.read(ready_r, 1) == b"r", "box child failed to unshare"
        os.close(ready_r)
        self.cgroup.attach(self.pid)
        if self.endpoint:
            self.endpoint.attach(self.pid)
        os.write(go_w, b"g")
        os.close(go_w)

    @property
    def ip(self) -> str:
        return self.endpoint.ip

    def run(self, command: str, timeout: float = 10) -> "subprocess.CompletedProcess":
        """Run `command` inside the box's network and mount namespaces."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", "-m", "busybox", "sh",
                               "-c", command], capture_output=True, text=True, timeout=timeout)

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        self.pid_reaped = True
        return os.waitstatus_to_exitcode(status)

    def stop(self) -> list[str]:
        if not getattr(self, "pid_reaped", False):
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        problems = self.endpoint.release() if self.endpoint else []
        problems += self.cgroup.destroy()
        if not problems:
            self.state.remove()
        return problems


def _enter_box(ready_w: int, go_r: int, hosts: str | None, command: str) -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)                   # PR_SET_PDEATHSIG, like the runtime
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        os._exit(126)
    libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    if hosts:
        libc.mount(hosts.encode(), b"/etc/hosts", None, MS_BIND, None)
        libc.mount(None, b"/etc/hosts", None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
    os.write(ready_w, b"r")
    os.read(go_r, 1)
    os.execv("/bin/busybox", ["busybox", "sh", "-c", command])


def host_leftovers(state_root: Path) -> dict:
    """Everything a container could leave in this (test) network namespace and state."""
    import subprocess
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    state_root = Path(state_root)
    state_entries = []
    if state_root.exists():
        # the network's directory and the id ranges' lock stay; a lease left behind is a leak
        state_entries = [str(p.relative_to(state_root)) for p in state_root.rglob("*")
                         if not (p.is_dir() and p.name == "net")
                         and str(p.relative_to(state_root)) not in (".userns", ".userns/lock")]
    return {"links": [n for n in names if n != "lo"], "nft": ruleset.strip(),
            "state": state_entries}
