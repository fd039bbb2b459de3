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


def test_the_pods_files_are_the_engines_own_in_the_cri_s_real_bundle(cri, containerd, hardrun_oci, tmp_path):
    """The sandbox annotation vouches for the pod's /etc/hosts, /etc/hostname, /etc/resolv.conf
    and /dev/shm in the bundle the CRI plugin really wrote (its task directory, its sandbox's
    files): baseline finds no host mount there. The control: the same config.json in a bundle
    directory of ctr's namespace, where the annotation is anyone's word: host mounts (HR3002)."""
    import json
    import shutil
    from hardrun.cli.oci import _judge
    from hardrun.frontends.oci import parse_oci
    pod_id, pod_config = cri.run_pod("pod-files", "hardrun")
    container_id = ""
    try:
        # running: the task's bundle goes when its process has exited
        container_id = cri.run_container(pod_id, pod_config, "files", ["sleep", "600"])
        (config_path,) = containerd.directory.rglob(f"io.containerd.runtime.v2.task/k8s.io/{container_id}/config.json")
        config = config_path.read_bytes()
        elsewhere = tmp_path / "io.containerd.runtime.v2.task" / "default" / container_id
        elsewhere.mkdir(parents=True)
        shutil.copy(config_path, elsewhere / "config.json")
        kinds = {}
        for where in (config_path, elsewhere / "config.json"):
            (spec,) = parse_oci(config.decode(), str(where))
            kinds[where] = {m.target: m.type for m in spec.mounts if m.target in
                            ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/shm") and m.source}
        assert set(kinds[config_path]) == {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/shm"}, kinds
        assert set(kinds[config_path].values()) == {"engine-file"}
        assert set(kinds[elsewhere / "config.json"].values()) == {"bind"}
        assert json.loads(config)["annotations"]["io.kubernetes.cri.sandbox-id"] == pod_id
        refused = {where: _judge(config, str(where), "baseline", True)[1] or "" for where in kinds}
        assert " is mounted;" not in refused[config_path], refused[config_path]
        assert refused[elsewhere / "config.json"].count(" is mounted;") == 4, refused
    finally:
        cri.remove_pod(pod_id)
    assert_container_gone(pod_id, containerd.directory)
    assert_container_gone(container_id, containerd.directory)


def test_containers_of_two_pods_share_a_verdict_cache_key(cri, containerd, hardrun_oci):
    """The same container in two pods (one after the other: the test network has one device):
    bundles the CRI plugin really wrote, differing in the sandbox's id, its files and its
    namespaces' paths, have one verdict cache key. The control: the second pod's bundle read as
    if in ctr's namespace (its pod's files then host mounts) keys differently."""
    from hardrun.policy import verdict_cache
    keys, configs, controls = {}, {}, {}
    for name in ("pod-key-a", "pod-key-b"):
        pod_id, pod_config = cri.run_pod(name, "hardrun")
        try:
            container_id = cri.run_container(pod_id, pod_config, "same", ["sleep", "600"])
            (config_path,) = containerd.directory.rglob(
                f"io.containerd.runtime.v2.task/k8s.io/{container_id}/config.json")
            bundle = str(config_path.parent)
            configs[name] = config_path.read_bytes()
            keys[name] = verdict_cache.key(configs[name], "default", True, bundle)
            controls[name] = verdict_cache.key(configs[name], "default", True, bundle.replace("/k8s.io/", "/default/"))
        finally:
            cri.remove_pod(pod_id)
        assert_container_gone(pod_id, containerd.directory)
    assert configs["pod-key-a"] != configs["pod-key-b"]
    assert keys["pod-key-a"] == keys["pod-key-b"]
    assert controls["pod-key-b"] != keys["pod-key-b"]
