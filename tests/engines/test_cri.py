"""The Kubernetes CRI: a pod of RuntimeClass handler `hardrun`, as a kubelet runs it, seen from inside.

The CRI plugin passes no seccomp filter unless the pod asks (seccompProfile unset, as in most
pods), so runc runs such a pod unfiltered: the control of hardrun's raised floor.
"""
from __future__ import annotations

import functools
import os

import pytest

from tests.engines.conftest import (PROBE, Confinement, assert_container_gone, assert_floor, assert_probe_ran,
                                    assert_raised_seccomp)

pytestmark = pytest.mark.runtime

SHARED_NAMESPACES = ("net", "ipc", "uts")
NAMESPACES = "for n in " + " ".join(SHARED_NAMESPACES) + "; do echo ns $n $(readlink /proc/self/ns/$n); done\n"


@pytest.fixture(scope="module")
def pod_probe(cri, containerd, hardrun_oci):
    """A pod of handler `runtime` whose one container runs PROBE; the pod is removed afterwards."""
    @functools.lru_cache(maxsize=None)
    def under(runtime: str):
        pod_name = "pod-" + runtime
        pod_id, pod_config = cri.run_pod(pod_name, runtime)
        try:
            sandbox = cri.sandbox_pid(pod_id)
            sandbox_namespaces = {n: os.readlink(f"/proc/{sandbox}/ns/{n}") for n in SHARED_NAMESPACES}
            container_id = cri.run_container(pod_id, pod_config, "probe", ["sh", "-c", NAMESPACES + PROBE])
            status = cri.wait_exit(container_id)
            output = cri.log(pod_name, "probe")
        finally:
            cri.remove_pod(pod_id)
        assert_container_gone(pod_id, containerd.directory)
        assert_container_gone(container_id, containerd.directory)
        return status, output, sandbox_namespaces
    return under


def test_the_pods_container_runs_and_its_exit_status_comes_back(pod_probe):
    status, output, _ = pod_probe("hardrun")
    assert_probe_ran(status, output)


def test_the_container_joins_the_sandboxs_namespaces(pod_probe):
    _, output, sandbox_namespaces = pod_probe("hardrun")
    joined = {line.split()[1]: line.split()[2] for line in output.splitlines() if line.startswith("ns ")}
    assert joined == sandbox_namespaces
    assert sandbox_namespaces["net"] != os.readlink("/proc/self/ns/net"), "the pod has the host's network"


def test_hardrun_raises_the_floor_where_the_cri_passes_no_seccomp(pod_probe):
    hardrun = Confinement.parse(pod_probe("hardrun")[1])
    control = Confinement.parse(pod_probe("runc")[1])
    assert control.no_new_privs == 0, "control: the CRI does not ask for no_new_privs by default"
    assert_raised_seccomp(hardrun, control)
    assert_floor(hardrun, control)
