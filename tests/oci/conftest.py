"""Fixtures of the hardrun-oci tests: bundles over a busybox root, the command, and the
test process as the engine's shim (a child subreaper that reaps the containers' inits)."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from hardrun.runtime.oci import STATE_FILE
from tests.helpers import hardrun_env
from tests.rootfs import require_root

PR_SET_CHILD_SUBREAPER = 36
STATUS_LINES = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
# Each bundle's cgroup is named after this test process: without it a container's cgroup is
# hardrun-oci/<id>, and two test runs on one machine using the same ids would collide.
_BUNDLE_NUMBERS = itertools.count()


@pytest.fixture(scope="session")
def oci_rootfs(busybox_rootfs):
    require_root()
    return str(busybox_rootfs)


@pytest.fixture(autouse=True)
def as_shim():
    """The test process plays containerd's shim: a subreaper, so a container's init comes
    back to it when `create` exits (and is reaped by `reap`)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    reap_all()


def reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Oci:
    """`hardrun-oci --root ROOT …` run as an engine runs it; output to files, since a held
    init keeps the stdio it inherited open (a pipe would never reach end of file).

    `userns`: keep by default here. These tests bind directories of the host that their
    containers write into as root, which under `--userns auto` the container's root cannot
    (the point of it); tests/oci/test_userns.py runs auto."""

    def __init__(self, root: str, workdir: str, userns: str = "keep"):
        self.root, self.workdir, self.userns = root, workdir, userns

    def __call__(self, *args, stdin=None, global_args=(), fd3=None, check=False):
        """`fd3`: an fd of ours that the command gets as its fd 3 (for --preserve-fds)."""
        out_path = os.path.join(self.workdir, "out")
        err_path = os.path.join(self.workdir, "err")
        with open(out_path, "w") as out, open(err_path, "w") as err:
            result = subprocess.run([sys.executable, "-m", "hardrun", "oci", "--root", self.root,
                                     "--userns", self.userns, *global_args, *args],
                                    stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                    stdout=out, stderr=err, env=hardrun_env(), timeout=120,
                                    pass_fds=(3,) if fd3 is not None else (),
                                    preexec_fn=(lambda: os.dup2(fd3, 3)) if fd3 is not None else None)
        with open(out_path) as out, open(err_path) as err:
            result.stdout, result.stderr = out.read(), err.read()
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def state(self, container_id: str) -> dict:
        return json.loads(self("state", container_id, check=True).stdout)

    def record(self, container_id: str) -> dict:
        """hardrun-oci's own record of the container (its state.json), beyond what `state` shows."""
        with open(os.path.join(self.root, container_id, STATE_FILE)) as handle:
            return json.load(handle)


@pytest.fixture
def oci(tmp_path):
    root = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    runner = Oci(str(root), str(work))
    yield runner
    # anything a failed test left: killed and removed, like an engine's clean-up
    if root.exists():
        for name in os.listdir(root):
            runner("delete", "--force", name)


def make_bundle(directory, rootfs: str, args, *, caps=("CHOWN",), nnp=True, user=None, masked=True,
                namespaces=("mount", "pid", "ipc", "uts", "network", "cgroup"), mounts=(), terminal=False,
                default_cgroup=False, **extra) -> str:
    """A bundle whose config.json comes from hardrun's one OCI writer (spec/oci.py), the
    rootfs linked in relatively; `extra`: top-level or `linux.`/`process.` keys to set.
    `default_cgroup`: no cgroupsPath, so hardrun-oci names the cgroup after the container."""
    from hardrun.spec import oci as writer
    from hardrun.spec.defaults import MASKED_PATHS, READONLY_PATHS
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    os.symlink(rootfs, os.path.join(directory, "rootfs"))
    document = writer.config(
        args=list(args), env=["PATH=/bin", "HOME=/"], cwd="/", user=user or {"uid": 0, "gid": 0},
        capability_sets=writer.capabilities(caps, False), no_new_privileges=nnp, root="rootfs", read_only=True,
        hostname="oci-test", namespaces=set(namespaces), mounts=list(mounts),
        masked_paths=MASKED_PATHS if masked else (), readonly_paths=READONLY_PATHS if masked else (),
        terminal=terminal)
    for key, value in extra.items():
        section, _, name = key.partition("__")
        if name:
            document.setdefault(section, {})[name] = value
        else:
            document[section] = value
    if not default_cgroup:
        document["linux"].setdefault("cgroupsPath", f"/hardrun-oci-test-{os.getpid()}-{next(_BUNDLE_NUMBERS)}")
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(document, handle)
    return directory


def bind(source: str, target: str, read_only: bool = False) -> dict:
    return {"destination": target, "type": "bind", "source": source,
            "options": ["rbind", "nosuid", "nodev", "ro" if read_only else "rw"]}


def process_gone(pid: int) -> bool:
    reap_all()
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def status_lines(text: str) -> dict:
    return {line.split(":")[0]: line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.split(":")[0] in STATUS_LINES}


@pytest.fixture
def own_state(tmp_path, monkeypatch):
    """The id leases in a state root of the test's own: the host's is shared with other runs."""
    monkeypatch.setenv("HARDRUN_STATE_DIR", str(tmp_path / "hardrun-state"))
    return tmp_path / "hardrun-state"


@pytest.fixture
def pod_netns(tmp_path):
    """A network namespace pinned by a file, made as the CRI's is before its sandbox exists
    (owned by the host's user namespace), its loopback up; unmounted and gone afterwards."""
    pinned = tmp_path / "netns"
    pinned.touch()
    subprocess.run(["unshare", f"--net={pinned}", "ip", "link", "set", "lo", "up"], check=True)
    yield str(pinned)
    subprocess.run(["umount", str(pinned)], check=True)
