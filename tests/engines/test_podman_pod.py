"""Podman pods and bridge networks under hardrun-oci's `--userns auto`, seen from inside.

`podman pod create` + `podman run --pod`: the infra container gets a user namespace and a
leased range of its own, the members join it (and the infra's network, ipc and uts
namespaces, by /proc path). On a bridge network the infra's network namespace is a file
Podman pinned under /run/netns and CNI configured before hardrun-oci is called (Debian 12's
Podman 4.3 uses CNI: netavark is not installed); with `--network none` the infra makes its
own. The network is the test's own: a CNI bridge with no address on the host (no gateway, no
masquerading, no firewall rules), so traffic stays between the pod and the containers the
test made. Controls: the same pod under `--userns keep` (root is the host's), a container
outside the pod (another user namespace, another loopback).
"""
from __future__ import annotations

import functools
import json
import os
import subprocess

import pytest

from tests.engines import daemons
from tests.engines.conftest import assert_container_gone
from tests.engines.test_podman import HARDRUN_OCI_DEFAULT_ROOT
from tests.engines.test_podman_userns import KEEP, inspect, outside_uid
from tests.helpers import lease_holders

pytestmark = pytest.mark.runtime

SUBNET = "10.231.7.0/24"
SERVER = "while true; do nc -l -p 8080 -e echo from-the-server; done"
# a container outside the pod, run while the pod's server listens
OUTSIDE = "readlink /proc/self/ns/user; nc -w 1 127.0.0.1 8080 </dev/null && echo connected || echo no-server"
# what a member sees of its namespaces, then it talks to the server over loopback (once it listens)
CLIENT = ("cat /proc/self/uid_map; readlink /proc/self/ns/user; readlink /proc/self/ns/net; "
          "for i in $(seq 100); do nc 127.0.0.1 8080 </dev/null && exit 0; usleep 100000; done; exit 1")


@pytest.fixture(scope="module")
def bridge(podman):
    """A CNI bridge network of the test's own (a conflist in Podman's network_config_dir),
    removed with its bridge once the module is done."""
    daemons.require(daemons.CNI_PLUGINS + "/bridge", daemons.CNI_PLUGINS + "/host-local", "/usr/sbin/ip")
    suffix = podman.directory.name[-8:]
    name, device = f"hrnet-{suffix}", f"hrb{suffix}"
    config = podman.directory / "networks" / f"{name}.conflist"
    config.write_text(json.dumps({"cniVersion": "0.4.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": device, "isGateway": False, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": str(podman.directory / "ipam"),
                  "ranges": [[{"subnet": SUBNET}]], "routes": []}}]}))
    try:
        yield name
    finally:
        config.unlink()
        subprocess.run(["ip", "link", "del", device], check=False, capture_output=True)
    assert not os.path.exists(f"/sys/class/net/{device}")


def default_root_leases() -> dict:
    """The id leases in hardrun-oci's default state root (Podman passes no --root): name -> holder pids."""
    from hardrun.runtime.userns import _ranges_dir
    directory = _ranges_dir(None, create=False)
    return lease_holders(directory) if directory else {}


@pytest.fixture(scope="module")
def pod_unit(podman, hardrun_oci, bridge):
    """A pod on `network` ("none" or the test's bridge) under hardrun-oci with `flags`: a server
    and a client member; what the host saw of the infra, what the client said, the leases."""
    @functools.lru_cache(maxsize=None)
    def under(network: str, flags: tuple = ()):
        name = f"unit-{network}-{len(flags)}"
        net = bridge if network == "bridge" else "none"
        podman.podman(*flags, "--runtime", "hardrun", "pod", "create", "--name", name, "--infra-image", "bb:1",
                      "--network", net)
        try:
            server = podman.podman(*flags, "--runtime", "hardrun", "run", "-d", "--pod", name, "bb:1",
                                   "sh", "-c", SERVER).stdout.strip()
            infra = json.loads(podman.podman("pod", "inspect", name).stdout)["InfraContainerID"]
            infra_inspected = inspect(podman, infra)
            infra_pid = infra_inspected["State"]["Pid"]
            with open(infra_inspected["OCIConfigPath"]) as handle:
                infra_ns = [entry for entry in json.load(handle)["linux"]["namespaces"] if entry["type"] == "network"]
            with open(f"/proc/{infra_pid}/uid_map") as handle:
                infra_map = handle.read().split()
            infra_namespaces = [os.readlink(f"/proc/{infra_pid}/ns/{kind}") for kind in ("user", "net")]
            leases_while_running = default_root_leases()
            client = podman.podman(*flags, "--runtime", "hardrun", "run", "--name", f"{name}-client", "--pod", name,
                                   "bb:1", "sh", "-c", CLIENT, check=False)
            client_id = inspect(podman, f"{name}-client")["Id"]
            outside = podman.podman("run", "--rm", "--runtime", "hardrun", "--network", net, "bb:1",
                                    "sh", "-c", OUTSIDE).stdout.splitlines()
        finally:
            podman.podman(*flags, "pod", "rm", "-f", "-t", "0", name)
        for container in (infra, server, client_id):
            assert_container_gone(container, podman.directory, HARDRUN_OCI_DEFAULT_ROOT)
        return {"infra_map": infra_map, "infra_namespaces": infra_namespaces, "infra_pid": infra_pid,
                "infra_netns": infra_ns[0], "client": client, "outside": outside,
                "leases": (leases_while_running, default_root_leases())}
    return under


@pytest.mark.parametrize("network", ["none", "bridge"])
def test_the_members_share_the_infras_user_namespace_and_range(pod_unit, network):
    unit = pod_unit(network)
    lines = unit["client"].stdout.splitlines()
    outside_uid(lines[0])
    assert lines[0].split() == unit["infra_map"], "the member's range is not its infra's"
    assert lines[1:3] == unit["infra_namespaces"], (lines, unit["infra_namespaces"])
    # control: under --userns keep the same pod's root is the host's
    assert pod_unit(network, KEEP)["client"].stdout.splitlines()[0].split() == ["0", "0", "4294967295"]


def test_on_the_bridge_the_infra_joins_the_network_namespace_podman_pinned(pod_unit):
    unit = pod_unit("bridge")
    path = unit["infra_netns"].get("path", "")
    assert path.startswith("/run/netns/"), unit["infra_netns"]
    assert not os.path.exists(path), "podman pod rm left the pinned network namespace"
    assert "path" not in pod_unit("none")["infra_netns"], "with --network none the infra makes its own"


@pytest.mark.parametrize("network", ["none", "bridge"])
def test_the_members_talk_over_the_pods_loopback(pod_unit, network):
    unit = pod_unit(network)
    assert unit["client"].returncode == 0, unit["client"].stdout + unit["client"].stderr
    assert "from-the-server" in unit["client"].stdout.splitlines()
    # control: a container outside the pod, while the server listens, has a loopback (and a
    # user namespace) of its own
    outside = unit["outside"]
    assert outside == [outside[0], "no-server"] and outside[0] != unit["infra_namespaces"][0], outside


@pytest.mark.parametrize("network", ["none", "bridge"])
def test_removing_the_pod_releases_its_lease(pod_unit, network):
    unit = pod_unit(network)
    during, after = unit["leases"]
    from hardrun.runtime.userns import root_id_pool
    name = f"{int(unit['infra_map'][1]) - root_id_pool()[0]}-65536"
    assert unit["infra_pid"] in during.get(name, ()), (name, during)
    assert not any(unit["infra_pid"] in holders for holders in after.values()), after


def test_a_plain_run_on_the_bridge_gets_a_range_and_reaches_another_container(podman, hardrun_oci, bridge):
    """`podman run` on a bridge: the pinned network namespace joined with a user namespace of
    its own; traffic between two containers of the test's bridge."""
    server = podman.podman("run", "-d", "--runtime", "hardrun", "--network", bridge, "bb:1", "sh", "-c",
                           SERVER).stdout.strip()
    try:
        seen_by_server = inspect(podman, server)
        address = seen_by_server["NetworkSettings"]["Networks"][bridge]["IPAddress"]
        assert address.startswith(SUBNET.rsplit(".", 1)[0] + "."), address
        with open(f"/proc/{seen_by_server['State']['Pid']}/uid_map") as handle:
            server_map = handle.read().split()
        seen = podman.podman("run", "--rm", "--runtime", "hardrun", "--network", bridge, "bb:1", "sh", "-c",
                             "cat /proc/self/uid_map; for i in $(seq 100); do nc " + address +
                             " 8080 </dev/null && exit 0; usleep 100000; done; exit 1").stdout.splitlines()
        outside_uid(seen[0])
        assert "from-the-server" in seen[1:], seen
        outside_uid(" ".join(server_map))
        assert server_map != seen[0].split(), "two containers outside a pod share a range"
    finally:
        podman.podman("rm", "-f", "-t", "0", server)
    assert_container_gone(server, podman.directory, HARDRUN_OCI_DEFAULT_ROOT)
