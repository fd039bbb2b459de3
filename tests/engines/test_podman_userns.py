"""Podman's containers and pods in a user namespace of hardrun-oci's (`--userns auto`, the
default), seen from inside. The control of each claim: the same container under
`--userns keep` (`podman --runtime-flag userns=keep`: no user namespace, root is the host's),
a host file that is no engine file, or a container outside the pod."""
from __future__ import annotations

import json
import os

import pytest

from tests.engines.conftest import assert_container_gone
from tests.engines.test_podman import HARDRUN_OCI_DEFAULT_ROOT

pytestmark = pytest.mark.runtime

KEEP = ("--runtime-flag", "userns=keep")
# what root in the container sees of its engine files, then whether it can append to /etc/hosts
ENGINE_FILES_PROBE = ("cat /proc/self/uid_map; stat -c '%u %g' /etc/hosts /etc/hostname /run/.containerenv; "
                      "echo '10.9.9.9 added' >> /etc/hosts && echo wrote || echo refused")


def outside_uid(uid_map_line: str) -> int:
    inside, outside, count = (int(field) for field in uid_map_line.split())
    from hardrun.runtime.userns import root_id_pool
    base, _, size = root_id_pool()
    assert (inside, count) == (0, 65536), uid_map_line
    assert base <= outside and outside + count <= base + size, f"{uid_map_line}: not a range of the pool"
    return outside


def inspect(podman, container: str) -> dict:
    return json.loads(podman.podman("inspect", container).stdout)[0]


def test_root_in_the_container_owns_and_writes_podmans_etc_hosts_in_its_runroot(podman, hardrun_oci):
    container = podman.podman("run", "-d", "--runtime", "hardrun", "bb:1").stdout.strip()
    try:
        hosts = inspect(podman, container)["HostsPath"]
        # the case at hand: Podman keeps them in its runroot, not in the storage hardrun-oci finds from the root
        assert hosts.startswith(str(podman.directory / "runroot") + "/"), hosts
        seen = podman.podman("exec", container, "sh", "-c", ENGINE_FILES_PROBE).stdout.splitlines()
        outside_uid(seen[0])
        assert seen[1:] == ["0 0"] * 3 + ["wrote"], seen
        with open(hosts) as handle:
            assert "10.9.9.9 added" in handle.read()
        assert os.stat(hosts).st_uid == 0, "what the container's root writes is host root's on disk"
    finally:
        podman.podman("rm", "-f", "-t", "0", container)
    assert_container_gone(container, podman.directory, HARDRUN_OCI_DEFAULT_ROOT)


def test_control_a_host_root_file_that_is_no_engine_file_stays_unwritable(podman, hardrun_oci, tmp_path):
    """The same probe with a host file of the same name bound on /etc/hosts: not the
    container's own, so not idmapped, and the container's root (nobody there) cannot write it."""
    tmp_path.chmod(0o755)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    seen = podman.podman("run", "--rm", "--runtime", "hardrun", "-v", f"{tmp_path}/hosts:/etc/hosts", "bb:1",
                         "sh", "-c", ENGINE_FILES_PROBE).stdout.splitlines()
    outside_uid(seen[0])
    assert seen[1] == "65534 65534" and seen[-1] == "refused", seen
    assert (tmp_path / "hosts").read_text() == "127.0.0.1 localhost\n"


def test_another_containers_runroot_files_bound_in_are_not_writable(podman, hardrun_oci):
    """The attack: bind another container's userdata (its /etc/hosts among them) and write it.
    Under auto they are host binds, refused; the control, under --userns keep, writes them."""
    victim = podman.podman("run", "-d", "--runtime", "hardrun", "bb:1").stdout.strip()
    try:
        hosts = inspect(podman, victim)["HostsPath"]
        userdata = os.path.dirname(hosts)
        attack = ["run", "--rm", "--runtime", "hardrun", "-v", f"{userdata}:/victim", "-v", f"{hosts}:/etc/hosts",
                  "bb:1", "sh", "-c", "cat /proc/self/uid_map; for f in /victim/hosts /victim/hostname /etc/hosts; "
                  "do echo evil >> $f && echo wrote $f || echo refused $f; done"]
        seen = podman.podman(*attack).stdout.splitlines()
        outside_uid(seen[0])
        assert seen[1:] == ["refused /victim/hosts", "refused /victim/hostname", "refused /etc/hosts"], seen
        with open(hosts) as handle:
            assert "evil" not in handle.read()
        control = podman.podman(*KEEP, *attack).stdout.splitlines()
        assert control[0].split() == ["0", "0", "4294967295"], control
        assert control[1:] == ["wrote /victim/hosts", "wrote /victim/hostname", "wrote /etc/hosts"], control
    finally:
        podman.podman("rm", "-f", "-t", "0", victim)
    assert_container_gone(victim, podman.directory, HARDRUN_OCI_DEFAULT_ROOT)
