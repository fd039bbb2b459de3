"""A CRI pod's own files (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev/shm), which
containerd keeps in the sandbox's directory, under the pod's user namespace.

The path rule (spec/oci.is_pod_file, cri_pod_directories) on a fake containerd layout, then
hardrun-oci on that layout outside any engine: a pod member's own /etc/hosts is idmapped
(its root writes it), another sandbox's file, or a forged annotation outside the CRI's task
directory, is a host bind (its root, nobody on the host, cannot). The controls: the same
bundles under `--userns keep`, whose root is the host's and writes every one of them.
tests/engines/test_cri.py shows it under containerd's real CRI plugin.
"""
from __future__ import annotations

import os
import shutil

import pytest

from hardrun.spec.oci import cri_pod_directories, is_engine_file, is_pod_file
from tests.oci.test_pod_userns import SANDBOX_ID, member_bundle, sandbox_bundle

POD, OTHER_POD, MEMBER = "a" * 64, "b" * 64, "c" * 64
TASKS = ("io.containerd.runtime.v2.task", "k8s.io")
SANDBOXES = ("io.containerd.grpc.v1.cri", "sandboxes")


class Layout:
    """containerd's directories under `base`: its root and state, a pod's sandbox directories
    with their files (hosts, hostname, resolv.conf in the root, shm in the state), and bundles
    in the task directory with their `work` link, as containerd 1.6 writes them."""

    def __init__(self, base):
        self.root, self.state = base / "root", base / "state"
        self.tasks = self.state.joinpath(*TASKS)

    def pod(self, sandbox: str) -> dict:
        files = self.root.joinpath(*SANDBOXES, sandbox)
        files.mkdir(parents=True)
        for name in ("hosts", "hostname", "resolv.conf"):
            (files / name).write_text(f"{name} of {sandbox[:12]}\n")
            (files / name).chmod(0o644)
        shm = self.state.joinpath(*SANDBOXES, sandbox, "shm")
        shm.mkdir(parents=True)
        return {"/etc/hosts": str(files / "hosts"), "/etc/hostname": str(files / "hostname"),
                "/etc/resolv.conf": str(files / "resolv.conf"), "/dev/shm": str(shm)}

    def bundle(self, container_id: str, work: bool = True) -> str:
        bundle = self.tasks / container_id
        bundle.mkdir(parents=True, exist_ok=True)
        if work:
            os.symlink(self.root.joinpath(*TASKS, container_id), bundle / "work")
        return str(bundle)


@pytest.fixture
def layout(tmp_path):
    layout = Layout(tmp_path / "containerd")
    layout.bundle(POD)              # the sandboxes' own bundles (tasks of this containerd)
    layout.bundle(OTHER_POD)
    return layout


def test_a_pods_files_are_its_members_in_the_cri_layout(layout):
    files = layout.pod(POD)
    member = layout.bundle(MEMBER)
    assert set(cri_pod_directories(member, POD)) == {str(layout.root.joinpath(*SANDBOXES, POD)),
                                                     str(layout.state.joinpath(*SANDBOXES, POD))}
    for destination, source in files.items():
        assert is_pod_file(destination, source, member, POD), destination
        assert is_engine_file(destination, source, os.path.join(member, "config.json"), {SANDBOX_ID: POD})
    # the control: the same files judged without the pod are host paths
    assert not any(is_engine_file(d, s, os.path.join(member, "config.json"), None) for d, s in files.items())


def test_another_sandboxs_files_are_not_the_pods(layout):
    """A member's bind of another pod's /etc/hosts (a hostPath naming it) is not its pod's, nor
    is a file at the CRI root itself, nor a file named after another destination."""
    layout.pod(POD)
    other = layout.pod(OTHER_POD)
    member = layout.bundle(MEMBER)
    assert not is_pod_file("/etc/hosts", other["/etc/hosts"], member, POD)
    assert not is_pod_file("/dev/shm", other["/dev/shm"], member, POD)
    at_root = layout.root.joinpath(*SANDBOXES, "hosts")
    at_root.write_text("x\n")
    assert not is_pod_file("/etc/hosts", str(at_root), member, POD)
    own = layout.root.joinpath(*SANDBOXES, POD)
    assert not is_pod_file("/etc/hosts", str(own / "hostname"), member, POD)
    assert is_pod_file("/etc/hosts", other["/etc/hosts"], member, OTHER_POD)    # the control: that pod's member


def test_the_annotation_vouches_only_in_this_containerds_task_directory(layout, tmp_path):
    """Podman's or ctr's bundles (another task namespace) name any sandbox: nothing; a sandbox
    that is no task beside the bundle: nothing; another containerd's sandbox directory of the
    same id, or a bundle without its `work` link (the root's files): nothing."""
    files = layout.pod(POD)
    member = layout.bundle(MEMBER)
    assert is_pod_file("/etc/hosts", files["/etc/hosts"], member, POD)      # the control
    ctr = layout.state / "io.containerd.runtime.v2.task" / "default" / MEMBER
    ctr.mkdir(parents=True)
    podman = tmp_path / "storage" / "overlay-containers" / MEMBER / "userdata"
    podman.mkdir(parents=True)
    for bundle in (str(ctr), str(podman)):
        assert cri_pod_directories(bundle, POD) == ()
        assert not is_engine_file("/etc/hosts", files["/etc/hosts"], os.path.join(bundle, "config.json"),
                                  {SANDBOX_ID: POD})
    assert cri_pod_directories(member, "d" * 64) == ()       # no such sandbox's task here
    for forged in ("../" + POD, "", None, "a" * 8, ".."):
        assert cri_pod_directories(member, forged) == ()
    elsewhere = Layout(tmp_path / "another")
    assert not is_pod_file("/etc/hosts", elsewhere.pod(POD)["/etc/hosts"], member, POD)
    unlinked = layout.bundle("e" * 64, work=False)
    assert not is_pod_file("/etc/hosts", files["/etc/hosts"], unlinked, POD)
    assert is_pod_file("/dev/shm", files["/dev/shm"], unlinked, POD)       # the state's: the bundle's own


def test_a_link_in_the_sandbox_directory_is_not_the_pods_file(layout, tmp_path):
    files = layout.pod(POD)
    member = layout.bundle(MEMBER)
    host = tmp_path / "hosts"
    host.write_text("host\n")
    os.unlink(files["/etc/hosts"])
    os.symlink(host, files["/etc/hosts"])
    assert not is_pod_file("/etc/hosts", files["/etc/hosts"], member, POD)


# -- hardrun-oci on that layout ---------------------------------------------------------------

WRITE = ("cat /proc/self/uid_map; for f in /etc/hosts /etc/hostname /etc/resolv.conf; do "
         "echo pod >> $f && echo wrote $f || echo refused $f; done; stat -c 'shm %u' /dev/shm")


def _pod_run(oci, rootfs, layout, pod_netns, mode: str, binds: dict, bundle: str):
    """The sandbox POD under `mode`, then a member in `bundle` with `binds` (destination:
    source) writing them; its output lines; the sandbox removed."""
    oci.userns = mode
    sandbox = sandbox_bundle(layout.state / f"sandbox-{mode}", rootfs, pod_netns, sandbox_id=POD)
    oci("create", "--bundle", sandbox, POD, check=True)
    try:
        mounts = [{"destination": d, "type": "bind", "source": s, "options": ["rbind", "rw"]}
                  for d, s in binds.items()]
        member = member_bundle(bundle, rootfs, oci.state(POD)["pid"], pod_netns, ["/bin/sh", "-c", WRITE],
                               sandbox=POD, mounts=mounts, root={"path": "rootfs", "readonly": False})
        result = oci("run", "--bundle", member, MEMBER)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.splitlines()
    finally:
        oci("delete", "--force", POD, check=True)


@pytest.fixture
def writable_root(oci_rootfs, tmp_path):
    root = tmp_path / "rootfs-copy"
    shutil.copytree(oci_rootfs, root, symlinks=True)
    return str(root)


def test_a_members_own_pod_files_are_idmapped_and_another_pods_are_not(oci, writable_root, layout, pod_netns,
                                                                       own_state):
    """Under auto the member's root writes its pod's /etc/hosts and /etc/resolv.conf and owns its
    /dev/shm, but not another pod's /etc/hostname bound the same way (a host bind: nobody).
    Control: under keep, root is the host's and writes all three, the other pod's included."""
    own, other = layout.pod(POD), layout.pod(OTHER_POD)
    binds = {"/etc/hosts": own["/etc/hosts"], "/etc/hostname": other["/etc/hostname"],
             "/etc/resolv.conf": own["/etc/resolv.conf"], "/dev/shm": own["/dev/shm"]}
    seen = {}
    for mode in ("auto", "keep"):
        shutil.rmtree(layout.tasks / MEMBER, ignore_errors=True)
        seen[mode] = _pod_run(oci, writable_root, layout, pod_netns, mode, binds, layout.bundle(MEMBER))
    assert seen["auto"][0].split()[:2] != ["0", "0"], seen["auto"]
    assert seen["auto"][1:] == ["wrote /etc/hosts", "refused /etc/hostname", "wrote /etc/resolv.conf", "shm 0"]
    assert seen["keep"][0].split() == ["0", "0", "4294967295"]
    assert seen["keep"][1:] == ["wrote /etc/hosts", "wrote /etc/hostname", "wrote /etc/resolv.conf", "shm 0"]
    assert os.stat(own["/etc/hosts"]).st_uid == 0       # on disk still host root's
    with open(other["/etc/hostname"]) as handle:
        assert handle.read().splitlines().count("pod") == 1, "only keep wrote the other pod's file"


def test_a_forged_annotation_outside_the_cri_layout_gets_nothing_idmapped(oci, writable_root, layout, pod_netns,
                                                                          own_state, tmp_path):
    """`ctr run` (task namespace `default`) or Podman with the annotation naming the pod and a
    bind of its /etc/hosts: a host bind, refused to the member's root. Control: keep writes it."""
    own = layout.pod(POD)
    seen = {}
    for mode in ("auto", "keep"):
        bundle = tmp_path / mode / "io.containerd.runtime.v2.task" / "default" / MEMBER
        seen[mode] = _pod_run(oci, writable_root, layout, pod_netns, mode, {"/etc/hosts": own["/etc/hosts"]},
                              str(bundle))
    assert seen["auto"][1] == "refused /etc/hosts", seen["auto"]
    assert seen["keep"][1] == "wrote /etc/hosts", seen["keep"]
