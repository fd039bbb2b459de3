"""`linux.resources.blockIO` applied to the container's blkio cgroup (v1; io on v2), read back
from the cgroup's files; what the kernel lacks or rejects is an error naming the field."""
from __future__ import annotations

import os

import pytest

from hardrun.runtime import cgroups
from tests.oci.conftest import make_bundle

pytestmark = pytest.mark.runtime


def a_block_device() -> tuple[int, int]:
    """A disk of this host (major, minor): a loop or zram device only if there is no other."""
    names = sorted(os.listdir("/sys/block"), key=lambda name: name.startswith(("loop", "zram", "ram")))
    assert names, "no block device on this host: the blkio tests need one"
    with open(f"/sys/block/{names[0]}/dev") as handle:
        major, minor = handle.read().split(":")
    return int(major), int(minor)


def _blkio_root() -> tuple[str, int]:
    layout = cgroups.detect_layout()
    hierarchy = layout.hierarchy_for("blkio") or layout.hierarchy_for("io")
    assert hierarchy is not None, "this host has no blkio (v1) or io (v2) cgroup controller"
    return hierarchy.mountpoint, hierarchy.version


def _cgroup_file(record_cgroups, name: str) -> str:
    mountpoint, _ = _blkio_root()
    paths = [path for path in record_cgroups if path.startswith(mountpoint + "/")]
    assert paths, f"the container has no cgroup under {mountpoint}: {record_cgroups}"
    with open(os.path.join(paths[0], name)) as handle:
        return handle.read()


def _container_id(name: str) -> str:
    return f"{name}-{os.getpid()}"     # unique: cgroups are named after it, host-wide


def test_throttles_are_written_to_the_containers_blkio_cgroup(oci, oci_rootfs, tmp_path):
    major, minor = a_block_device()
    device = {"major": major, "minor": minor}
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"], linux__resources={"blockIO": {
        "weight": 0, "throttleReadBpsDevice": [{**device, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{**device, "rate": 300}]}})
    name = _container_id("blkio")
    oci("create", "--bundle", bundle, name, check=True)
    record = oci.state(name)
    cgroup_list = oci.record(name)["cgroups"]
    _, version = _blkio_root()
    if version == 1:
        assert f"{major}:{minor} 1048576" in _cgroup_file(cgroup_list, "blkio.throttle.read_bps_device")
        assert f"{major}:{minor} 300" in _cgroup_file(cgroup_list, "blkio.throttle.write_iops_device")
    else:
        limits = _cgroup_file(cgroup_list, "io.max")
        assert f"{major}:{minor}" in limits and "rbps=1048576" in limits and "wiops=300" in limits
    assert record["status"] == "created"
    # `update` writes new throttles into the same cgroup
    update = tmp_path / "resources.json"
    update.write_text('{"blockIO": {"throttleReadBpsDevice": [{"major": %d, "minor": %d, "rate": 2097152}]}}'
                      % (major, minor))
    oci("update", "--resources", str(update), name, check=True)
    if version == 1:
        assert f"{major}:{minor} 2097152" in _cgroup_file(cgroup_list, "blkio.throttle.read_bps_device")
    oci("delete", "--force", name, check=True)


def test_a_throttle_the_kernel_rejects_is_an_error_naming_the_field(oci, oci_rootfs, tmp_path):
    """The control: /dev/null (char 1:3) is no block device; the kernel refuses the write,
    and the container is not created (never created without the limit)."""
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/true"], linux__resources={"blockIO": {
        "throttleReadBpsDevice": [{"major": 1, "minor": 3, "rate": 1048576}]}})
    name = _container_id("blkio-bad")
    refused = oci("create", "--bundle", bundle, name)
    assert refused.returncode != 0
    assert "linux.resources.blockIO.throttleReadBpsDevice cannot be applied" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert not os.path.exists(os.path.join(oci.root, name))


def test_a_weight_is_applied_where_the_kernel_has_one_else_refused_by_name(oci, oci_rootfs, tmp_path):
    """blkio.weight exists only with an I/O scheduler that has weights (BFQ); without one, the
    weight is an error naming it, never dropped."""
    mountpoint, version = _blkio_root()
    names = ("blkio.weight", "blkio.bfq.weight") if version == 1 else ("io.weight", "io.bfq.weight")
    present = [name for name in names if os.path.exists(os.path.join(mountpoint, "hardrun-oci", name))
               or os.path.exists(os.path.join(mountpoint, name))]
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/true"], linux__resources={"blockIO": {"weight": 300}})
    name = _container_id("blkio-weight")
    result = oci("create", "--bundle", bundle, name)
    if present:
        assert result.returncode == 0, result.stderr
        expected = str(cgroups.blkio_to_io_weight(300)) if present[0] == "io.weight" else "300"
        assert expected in _cgroup_file(oci.record(name)["cgroups"], present[0])
        oci("delete", "--force", name, check=True)
    else:
        assert result.returncode != 0
        assert "linux.resources.blockIO.weight cannot be applied" in result.stderr, result.stderr
        assert "BFQ" in result.stderr
