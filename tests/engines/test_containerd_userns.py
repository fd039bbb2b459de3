"""`ctr run --runc-binary hardrun-oci`: the container in a user namespace of its own (ctr passes
no mapping), its root (the overlay the shim mounts on the bundle's rootfs) rebuilt over
idmapped layers. Control: the same container under runc is host root."""
from __future__ import annotations

import pytest

from tests.engines import daemons
from tests.engines.test_containerd import runtime_flags

pytestmark = pytest.mark.runtime

SCRIPT = "cat /proc/self/uid_map; echo made > /made && stat -c '%u %g' /made /bin/busybox"


def test_ctr_containers_get_a_leased_range_and_own_their_root(containerd, hardrun_oci):
    from hardrun.runtime.userns import root_id_pool
    hardrun = containerd.ctr("run", "--rm", *runtime_flags(containerd, "hardrun"), daemons.CRI_IMAGE,
                             "userns-hardrun", "sh", "-c", SCRIPT).stdout.splitlines()
    inside, outside, count = (int(field) for field in hardrun[0].split())
    assert (inside, count) == (0, 65536) and outside >= root_id_pool()[0], hardrun
    assert hardrun[1:] == ["0 0", "0 0"], hardrun
    control = containerd.ctr("run", "--rm", *runtime_flags(containerd, "runc"), daemons.CRI_IMAGE,
                             "userns-runc", "sh", "-c", SCRIPT).stdout.splitlines()
    assert control[0].split() == ["0", "0", "4294967295"], control
