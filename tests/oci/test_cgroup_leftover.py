"""A cgroup left by a container of the same name that died before its clean-up: taken over
when empty (as runc does), refused when something runs in it."""
from __future__ import annotations

import os
import subprocess

import pytest

from hardrun.runtime import cgroups
from tests.oci.conftest import make_bundle

pytestmark = pytest.mark.runtime


def _devices_cgroup(name: str) -> str:
    """In the v1 devices hierarchy: every hardrun-oci container needs its cgroup there."""
    hierarchy = cgroups.detect_layout().hierarchy_for("devices")
    assert hierarchy is not None and hierarchy.version == 1, "this host has no cgroup v1 devices controller"
    return os.path.join(hierarchy.mountpoint, "hardrun-oci", name)


def test_an_empty_leftover_cgroup_is_taken_over(oci, oci_rootfs, tmp_path):
    name = f"leftover-{os.getpid()}"
    path = _devices_cgroup(name)
    os.makedirs(path)
    try:
        bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"], default_cgroup=True)
        oci("create", "--bundle", bundle, name, check=True)
        assert path in oci.record(name)["cgroups"]
        assert oci.state(name)["pid"] in cgroups.cgroup_pids(path)
        with open(os.path.join(path, "devices.list")) as handle:
            assert "a *:* rwm" not in handle.read()      # the container's rules were written into it
        oci("delete", "--force", name, check=True)
        assert not os.path.exists(path)
    finally:
        if os.path.exists(path):
            os.rmdir(path)


def test_a_leftover_cgroup_with_a_process_in_it_is_refused(oci, oci_rootfs, tmp_path):
    name = f"leftover-busy-{os.getpid()}"
    path = _devices_cgroup(name)
    os.makedirs(path)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as handle:
            handle.write(str(sleeper.pid))
        bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/true"], default_cgroup=True)
        refused = oci("create", "--bundle", bundle, name)
        assert refused.returncode != 0 and f"cannot create cgroup {path}: File exists" in refused.stderr, \
            refused.stderr
        assert not os.path.exists(os.path.join(oci.root, name))
    finally:
        sleeper.kill()
        sleeper.wait()
        os.rmdir(path)
