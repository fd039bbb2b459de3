"""The Kubernetes CRI: a pod of RuntimeClass handler `hardrun`, as a kubelet runs it, seen from inside.

The CRI plugin passes no seccomp filter unless the pod asks (seccompProfile unset, as in most
pods), so runc runs such a pod unfiltered: the control of hardrun's raised floor.
"""
from __future__ import annotations

import functools
import os

import pytest

from tests.engines import daemons
from tests.engines.conftest import (PROBE, Confinement, assert_container_gone, assert_floor, assert_probe_ran,
                                    assert_raised_seccomp)
from tests.helpers import lease_holders

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


# -- the pod as one unit in a user namespace of its own (--userns auto) -----------------------

SERVER = "echo from-the-server | nc -l -p 80"     # port 80: the sandbox's sysctl lets the pod's root bind it
CLIENT = ("cat /proc/self/uid_map; for n in user net ipc; do echo ns $n $(readlink /proc/self/ns/$n); done; "
          "echo pod >> /h/owned-by-host-root && echo wrote || echo refused; "
          "for i in $(seq 100); do nc 127.0.0.1 80 </dev/null && exit 0; usleep 100000; done")


@pytest.fixture(scope="module")
def pod_unit(cri, containerd, tmp_path_factory):
    """A pod of handler `runtime`: a server on port 80 and a client that shows its user
    namespace, writes a host root's file bound in, and talks to the server over 127.0.0.1.
    What the host saw of the sandbox, what each container said, the leases once it is removed."""
    @functools.lru_cache(maxsize=None)
    def under(runtime: str):
        host = tmp_path_factory.mktemp("pod-host")
        host.chmod(0o755)
        (host / "owned-by-host-root").write_text("host\n")
        pod_name = "unit-" + runtime
        pod_id, pod_config = cri.run_pod(pod_name, runtime)
        try:
            sandbox = cri.sandbox_pid(pod_id)
            with open(f"/proc/{sandbox}/uid_map") as handle:
                sandbox_map = handle.read().split()
            sandbox_namespaces = {n: os.readlink(f"/proc/{sandbox}/ns/{n}") for n in ("user", "net", "ipc")}
            leases_while_running = _leases(containerd)
            server = cri.run_container(pod_id, pod_config, "server", ["sh", "-c", SERVER])
            client = cri.run_container(pod_id, pod_config, "client", ["sh", "-c", CLIENT],
                                       binds=[(str(host), "/h")])
            statuses = (cri.wait_exit(client), cri.wait_exit(server))
            outputs = (cri.log(pod_name, "client"), cri.log(pod_name, "server"))
        finally:
            cri.remove_pod(pod_id)
        for container in (pod_id, server, client):
            assert_container_gone(container, containerd.directory)
        return {"sandbox_map": sandbox_map, "sandbox_namespaces": sandbox_namespaces, "statuses": statuses,
                "client": outputs[0], "server": outputs[1], "file": (host / "owned-by-host-root").read_text(),
                "leases": (leases_while_running, _leases(containerd))}
    return under


def _leases(containerd) -> dict:
    """The id leases hardrun-oci holds (under the state root containerd gives it): name -> holder pids."""
    from hardrun.runtime.userns import RANGES_DIR
    return lease_holders(containerd.hardrun_state / RANGES_DIR)


def test_the_pods_containers_share_the_sandboxs_user_namespace_and_range(pod_unit):
    from hardrun.runtime.userns import root_id_pool
    unit = pod_unit("hardrun")
    lines = unit["client"].splitlines()
    inside, outside, count = (int(field) for field in lines[0].split())
    assert (inside, count) == (0, 65536) and outside >= root_id_pool()[0], unit["client"]
    assert lines[0].split() == unit["sandbox_map"], "the container's range is not its sandbox's"
    seen = {line.split()[1]: line.split()[2] for line in lines if line.startswith("ns ")}
    assert seen == unit["sandbox_namespaces"], (seen, unit["sandbox_namespaces"])
    # control: under --userns keep the pod's root is the host's
    assert pod_unit("hardrun-keep")["client"].splitlines()[0].split() == ["0", "0", "4294967295"]


def test_a_pods_root_cannot_write_a_host_root_file_bound_in(pod_unit):
    unit = pod_unit("hardrun")
    assert "refused" in unit["client"].splitlines() and "wrote" not in unit["client"], unit["client"]
    assert unit["file"] == "host\n"
    control = pod_unit("hardrun-keep")     # the same pod under --userns keep writes it
    assert "wrote" in control["client"].splitlines(), control["client"]
    assert control["file"] == "host\npod\n"


def test_the_pods_containers_talk_over_loopback_on_port_80(pod_unit):
    unit = pod_unit("hardrun")
    assert unit["statuses"] == (0, 0), unit
    assert "from-the-server" in unit["client"].splitlines(), unit["client"] + unit["server"]
    assert pod_unit("hardrun-keep")["statuses"] == (0, 0)       # the same pod as the engine asked


def test_removing_the_pod_releases_its_lease_once(pod_unit):
    unit = pod_unit("hardrun")
    during, after = unit["leases"]
    (name, holders), = during.items()           # one range, the sandbox's
    assert len(holders) == 1, holders
    outside = int(unit["sandbox_map"][1])
    from hardrun.runtime.userns import root_id_pool
    assert name == f"{outside - root_id_pool()[0]}-65536"
    assert after == {}, after


# -- the pod's own files under the pod's user namespace (--userns auto) -----------------------

OWN_FILES = ("stat -c 'owner %n %u' /etc/hosts /dev/shm /h/owned-by-host-root; "
             "for f in /etc/hosts /etc/hostname /etc/resolv.conf /h/owned-by-host-root; do "
             "echo pod >> $f && echo wrote $f || echo refused $f; done; touch /dev/shm/x && echo wrote /dev/shm")
OTHER_PODS = "echo pod >> /etc/hosts && echo wrote /etc/hosts || echo refused /etc/hosts"


def sandbox_files(containerd, pod_id: str):
    """The pod's directory where containerd keeps its /etc/hosts, /etc/hostname, /etc/resolv.conf."""
    return containerd.directory / "root" / "io.containerd.grpc.v1.cri" / "sandboxes" / pod_id


@pytest.fixture(scope="module")
def pod_files(cri, containerd, tmp_path_factory):
    """Under handler `runtime`: a pod whose container writes its pod's /etc/hosts, /etc/hostname,
    /etc/resolv.conf and /dev/shm and, the control in the same container, a host root's file
    bound in; and a container of the same pod whose /etc/hosts is ANOTHER pod's (a hostPath
    naming that pod's sandbox directory, the other pod stopped: the test network holds one pod
    at a time). What each said, the files on disk, the leases and leftovers once removed."""
    @functools.lru_cache(maxsize=None)
    def under(runtime: str):
        host = tmp_path_factory.mktemp("pod-files-host")
        host.chmod(0o755)
        (host / "owned-by-host-root").write_text("host\n")
        other_id, _ = cri.run_pod("files-other-" + runtime, runtime)
        pod_id = ""
        try:
            cri.runtime.StopPodSandbox(cri.api.StopPodSandboxRequest(pod_sandbox_id=other_id), timeout=120)
            other_hosts = sandbox_files(containerd, other_id) / "hosts"
            before = other_hosts.read_text()
            pod_name = "files-" + runtime
            pod_id, pod_config = cri.run_pod(pod_name, runtime)
            own = cri.run_container(pod_id, pod_config, "own", ["sh", "-c", OWN_FILES], binds=[(str(host), "/h")])
            other = cri.run_container(pod_id, pod_config, "other", ["sh", "-c", OTHER_PODS],
                                      binds=[(str(other_hosts), "/etc/hosts")])
            statuses = (cri.wait_exit(own), cri.wait_exit(other))
            outputs = {"own": cri.log(pod_name, "own"), "other": cri.log(pod_name, "other")}
            own_hosts = sandbox_files(containerd, pod_id) / "hosts"
            on_disk = {"own": own_hosts.read_text(), "own owner": own_hosts.stat().st_uid,
                       "other": other_hosts.read_text()[len(before):],
                       "host": (host / "owned-by-host-root").read_text()}
        finally:
            for sandbox in (pod_id, other_id):
                if sandbox:
                    cri.remove_pod(sandbox)
        for container in (pod_id, other_id, own, other):
            assert_container_gone(container, containerd.directory)
        return {"statuses": statuses, "outputs": outputs, "on_disk": on_disk, "leases": _leases(containerd)}
    return under


def test_the_pods_root_writes_its_own_hosts_file_and_no_host_root_file(pod_files):
    """Idmapped with the pod's range: /etc/hosts and /dev/shm are root's in the container and
    written (on disk still host root's). The control in the same container: a host root's file
    bound in is nobody's and refused, so the container's root is not the host's."""
    files = pod_files("hardrun")
    own = files["outputs"]["own"].splitlines()
    assert files["statuses"][0] == 0, files
    assert {"owner /etc/hosts 0", "owner /dev/shm 0", "owner /h/owned-by-host-root 65534"} <= set(own), own
    assert {"wrote /etc/hosts", "wrote /etc/hostname", "wrote /etc/resolv.conf", "wrote /dev/shm",
            "refused /h/owned-by-host-root"} <= set(own), own
    assert files["on_disk"]["own"].endswith("pod\n") and files["on_disk"]["own owner"] == 0
    assert files["on_disk"]["host"] == "host\n"


def test_another_pods_hosts_file_is_not_idmapped_into_a_pod(pod_files):
    """The attack: a pod's container whose /etc/hosts is another pod's file (in that sandbox's
    directory) cannot write it. The control: under --userns keep the same pod's root (the
    host's) writes the other pod's file."""
    files = pod_files("hardrun")
    said = files["outputs"]["other"].splitlines()
    assert "refused /etc/hosts" in said and "wrote /etc/hosts" not in said, files["outputs"]
    assert files["on_disk"]["other"] == ""
    control = pod_files("hardrun-keep")
    assert "wrote /etc/hosts" in control["outputs"]["other"].splitlines(), control["outputs"]
    assert control["on_disk"]["other"] == "pod\n"


def test_the_pods_with_their_files_leave_no_lease(pod_files):
    assert pod_files("hardrun")["leases"] == {}


def test_a_forged_sandbox_annotation_under_ctr_gets_no_pods_file_idmapped(cri, containerd, hardrun_oci):
    """`ctr -n k8s.io run` (its bundle in the CRI's task directory) with the annotation naming a
    running pod and a bind of that pod's /etc/hosts: not that pod's member (it joins none of its
    namespaces), so the file is a host bind and its root cannot write it. The control: the same
    ctr run under --userns keep writes it."""
    pod_id, _ = cri.run_pod("forged", "hardrun")
    seen = {}
    try:
        hosts = sandbox_files(containerd, pod_id) / "hosts"
        for runtime in ("hardrun", "hardrun-keep"):
            binary = containerd.runtime_binary(runtime, containerd.runtimes[runtime])
            result = containerd.ctr(
                "run", "--rm", "--runc-binary", binary, "--runc-root", str(containerd.runc_root),
                "--annotation", f"io.kubernetes.cri.sandbox-id={pod_id}",
                "--mount", f"type=bind,src={hosts},dst=/etc/hosts,options=rbind:rw",
                daemons.CRI_IMAGE, "forged-" + runtime, "sh", "-c", OTHER_PODS, namespace="k8s.io", check=False)
            seen[runtime] = (result.returncode, result.stdout.strip(), result.stderr)
            assert_container_gone("forged-" + runtime, containerd.directory)
        written = hosts.read_text()
    finally:
        cri.remove_pod(pod_id)
    assert seen["hardrun"][:2] == (0, "refused /etc/hosts"), seen
    assert seen["hardrun-keep"][:2] == (0, "wrote /etc/hosts"), seen
    assert written.endswith("pod\n") and written.count("pod\n") == 1
