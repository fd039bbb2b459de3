"""The device cgroup as runc makes it, compared with runc itself on the same bundle: every
device denied but runc's defaults (mknod of any node, /dev/null, zero, full, random, urandom,
tty, ptmx, the pts nodes, tun), also when the config lists no rule at all."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from hardrun.runtime import cgroups
from tests.oci.conftest import make_bundle
from tests.oci.test_confinement import FUSE, OPEN_NODES

pytestmark = pytest.mark.runtime

RUNC = "/usr/sbin/runc"
DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_FUSE = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}


def _bundle(directory, rootfs: str, args, rules, cgroup: str | None = None) -> str:
    extra = {"linux__resources": {"devices": rules}} if rules is not None else {}
    if cgroup:
        extra["linux__cgroupsPath"] = cgroup
    # runc takes no symbolic link as its root
    return make_bundle(directory, rootfs, args, linux__devices=[FUSE], root__path=os.path.realpath(rootfs), **extra)


def _runc(*args, root) -> subprocess.CompletedProcess:
    """runc's output to files: a created container's init keeps the stdio it inherited open."""
    assert os.access(RUNC, os.X_OK), "install runc (scripts/setup.sh --test) for the device tests"
    with open(f"{root}.out", "w+") as out, open(f"{root}.err", "w+") as err:
        result = subprocess.run([RUNC, "--root", str(root), *args], stdout=out, stderr=err, text=True, timeout=120,
                                stdin=subprocess.DEVNULL)
        out.seek(0)
        err.seek(0)
        result.stdout, result.stderr = out.read(), err.read()
    return result


def _devices_list(cgroup: str) -> set:
    hierarchy = cgroups.detect_layout().hierarchy_for("devices")
    assert hierarchy is not None and hierarchy.version == 1, "these tests need a cgroup v1 devices controller"
    with open(os.path.join(hierarchy.mountpoint, cgroup.strip("/"), "devices.list")) as handle:
        return set(handle.read().split("\n")) - {""}


@pytest.mark.parametrize("rules", [None, [DENY_ALL, ALLOW_FUSE]], ids=["no-rules", "podman-form"])
def test_the_device_cgroup_is_runcs_for_the_same_bundle(oci, oci_rootfs, tmp_path, rules):
    seen = {}
    for runtime in ("runc", "hardrun"):
        name = f"devices-{runtime}-{len(rules or ())}-{os.getpid()}"
        cgroup = f"/hardrun-test-{name}"
        bundle = _bundle(tmp_path / runtime, oci_rootfs, ["/bin/true"], rules, cgroup)
        if runtime == "runc":
            created = _runc("create", "--bundle", bundle, name, root=tmp_path / "runc")
            assert created.returncode == 0, created.stderr
            try:
                seen[runtime] = _devices_list(cgroup)
            finally:
                assert _runc("delete", "--force", name, root=tmp_path / "runc").returncode == 0
        else:
            oci("create", "--bundle", bundle, name, check=True)
            try:
                seen[runtime] = _devices_list(cgroup)
            finally:
                oci("delete", "--force", name, check=True)
    assert seen["hardrun"] == seen["runc"]
    assert {"c *:* m", "b *:* m", "c 10:200 rwm", "c 1:3 rwm"} <= seen["hardrun"]
    assert "a *:* rwm" not in seen["hardrun"]


def test_without_rules_a_node_in_the_container_cannot_be_opened_as_under_runc(oci, oci_rootfs, tmp_path):
    """/dev/fuse is in the container (linux.devices) and the config lists no device rule: runc
    denies it (its cgroup starts from deny-all), and so does hardrun now."""
    name = f"devices-open-{os.getpid()}"
    bundle = _bundle(tmp_path / "runc", oci_rootfs, ["/bin/sh", "-c", OPEN_NODES], None)
    ran = _runc("run", "--bundle", bundle, name, root=tmp_path / "runc")
    assert ran.returncode == 0, ran.stderr
    runc = set(ran.stdout.splitlines())
    result = oci("run", "--bundle", _bundle(tmp_path / "hardrun", oci_rootfs, ["/bin/sh", "-c", OPEN_NODES], None),
                 name)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.splitlines()) == runc == {"fuse refused", "null opened", "zero opened"}
    # the control: the same node, allowed by a rule, opens
    allowed = oci("run", "--bundle", _bundle(tmp_path / "allowed", oci_rootfs, ["/bin/sh", "-c", OPEN_NODES],
                                             [DENY_ALL, ALLOW_FUSE]), name + "-allowed")
    assert "fuse opened" in allowed.stdout, allowed.stdout + allowed.stderr


# ---------------------------------------------------------------- cgroup v2: the BPF program

UNIFIED = "/sys/fs/cgroup/unified"


def _unified_cgroups(oci, name: str) -> list:
    assert oci.state(name)["status"] == "created"
    recorded = oci.record(name).get("cgroups") or []
    return [path for path in recorded if path.startswith(UNIFIED + "/")]


def test_on_cgroup_v2_the_device_program_gives_runcs_defaults_and_the_configs_rules(oci, oci_rootfs, tmp_path,
                                                                                   monkeypatch):
    """HARDRUN_DEVICE_CGROUP=bpf: the device rules go to a BPF program on the container's cgroup in
    this host's unified hierarchy, as on a pure cgroup v2 host; from inside, the same opens as
    under runc's v1 device cgroup (the test above), and the control: the rule that allows
    /dev/fuse lets it open. The exec enters the same cgroup, so `update` reaches it too."""
    monkeypatch.setenv("HARDRUN_DEVICE_CGROUP", "bpf")
    name = f"devices-bpf-{os.getpid()}"
    result = oci("run", "--bundle", _bundle(tmp_path / "none", oci_rootfs, ["/bin/sh", "-c", OPEN_NODES], None),
                 name)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.splitlines()) == {"fuse refused", "null opened", "zero opened"}
    allowed = oci("run", "--bundle", _bundle(tmp_path / "allowed", oci_rootfs, ["/bin/sh", "-c", OPEN_NODES],
                                             [DENY_ALL, ALLOW_FUSE]), name + "-allowed")
    assert set(allowed.stdout.splitlines()) == {"fuse opened", "null opened", "zero opened"}, allowed.stderr

    bundle = _bundle(tmp_path / "held", oci_rootfs, ["/bin/sleep", "60"], None)
    oci("create", "--bundle", bundle, name, check=True)
    try:
        unified = _unified_cgroups(oci, name)
        assert len(unified) == 1 and os.path.isdir(unified[0])
        oci("start", name, check=True)
        before = oci("exec", name, "/bin/sh", "-c", OPEN_NODES)
        assert set(before.stdout.splitlines()) == {"fuse refused", "null opened", "zero opened"}, before.stderr
        rules = tmp_path / "rules.json"
        rules.write_text(json.dumps({"devices": [DENY_ALL, ALLOW_FUSE]}))
        oci("update", "--resources", str(rules), name, check=True)
        after = oci("exec", name, "/bin/sh", "-c", OPEN_NODES)
        assert set(after.stdout.splitlines()) == {"fuse opened", "null opened", "zero opened"}, after.stderr
    finally:
        oci("delete", "--force", name, check=True)
    assert not os.path.exists(unified[0])
