"""Bridge networks, names, isolation and publishing, each run in a network namespace
the test creates as the "host" (tests/net_scenarios.py): traffic goes only to loopback
and to namespaces made there."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hardrun.errors import UsageError
from hardrun.runtime import network
from hardrun.spec.run import Port, RunSpec

from tests.helpers import ROOT
from tests.limits_support import isolate_state, remove_test_cgroup_parent, require_root

pytestmark = pytest.mark.runtime
CLEAN = {"links": [], "nft": "", "state": []}


def scenario(name, monkeypatch, tmp_path, *extra, publish=None, timeout=120):
    require_root()
    isolate_state(monkeypatch, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if publish:
        env["HARDRUN_PUBLISH"] = publish
    result = subprocess.run(["unshare", "--net", sys.executable, str(ROOT / "tests" /
                            "net_scenarios.py"), name, *extra], capture_output=True, text=True,
                            env=env, timeout=timeout, cwd=ROOT)
    leftovers = remove_test_cgroup_parent()
    assert result.returncode == 0, result.stderr[-3000:]
    assert leftovers == [], "container cgroups left behind"
    return json.loads(result.stdout.splitlines()[-1])


def test_containers_on_one_bridge_reach_each_other_by_name(monkeypatch, tmp_path):
    seen = scenario("names", monkeypatch, tmp_path)
    assert seen["beta_to_alpha"] == "hi-from-alpha", seen
    assert f"{seen['alpha_ip']}\talpha" in seen["beta_hosts"]
    assert f"{seen['beta_ip']}\tbeta" in seen["alpha_hosts"]     # rewritten when beta joined
    assert seen["hosts_write"] != 0                              # /etc/hosts is read-only
    assert seen["host_loopback_7000"] == ""                      # not published: not reachable
    assert seen["problems"] == [] and seen["leftovers"] == CLEAN


def test_other_bridges_cannot_reach_an_unpublished_port(monkeypatch, tmp_path):
    seen = scenario("isolation", monkeypatch, tmp_path)
    assert seen["other_to_target"] == "" and seen["other_to_target_v6"] == "", seen
    assert seen["problems"] == [] and seen["leftovers"] == CLEAN


def test_control_without_the_bridge_table_the_other_bridge_gets_through(monkeypatch, tmp_path):
    seen = scenario("isolation", monkeypatch, tmp_path, "--control")
    assert seen["other_to_target"] == "reached" and seen["other_to_target_v6"] == "reached", seen


# what answers on each host-only address (tests/net_scenarios.py:host_services)
HOST_ONLY = {"ipv4_gateway": "host-service", "ipv6_link_local": "host-service",
             "ipv6_other_address": "host-service", "host_loopback": "host-service",
             "loopback_published": "published-service"}


def test_a_container_cannot_reach_a_host_only_service_over_either_family(monkeypatch, tmp_path):
    seen = scenario("host_services", monkeypatch, tmp_path, publish="nft")
    assert seen["host"] == HOST_ONLY, seen                  # the services are there
    assert seen["container"] == dict.fromkeys(HOST_ONLY, ""), seen
    assert seen["problems"] == [] and seen["leftovers"] == CLEAN


def test_control_without_the_bridge_table_the_container_reaches_the_host_service(monkeypatch,
                                                                                 tmp_path):
    seen = scenario("host_services", monkeypatch, tmp_path, "--control", publish="nft")
    assert seen["container"] == HOST_ONLY, seen


# hardrun's IPv6 settings of the host's side of a bridge (tests/net_scenarios.py)
IPV6_OFF = {"disable_ipv6": "1", "accept_ra": "0", "accept_redirects": "0"}


@pytest.mark.parametrize("mode", ["hardrun", "rules-only", "sysctls-only"])
def test_a_router_advert_from_a_container_configures_nothing_on_the_host(monkeypatch, tmp_path,
                                                                         mode):
    """A container with NET_RAW advertises itself as a router with a prefix: the host (not
    forwarding IPv6, so it would listen) takes no address and no default route, whether
    both protections hold or only the bridge table (IPv6 and accept_ra turned back on) or
    only the bridge's sysctls (the table removed)."""
    seen = scenario("router_advert", monkeypatch, tmp_path, mode)
    assert seen["ready"] == "ready" and seen["sent"] == "sent", seen
    assert len(seen["bridge_ipv6"]) == 2, seen               # the bridge and the host's veth
    assert list(seen["bridge_ipv6"].values()) == [IPV6_OFF] * 2, seen
    assert seen["seen"] == {}, seen
    assert seen["status"] == 0 and seen["leftovers"] == CLEAN, seen


def test_control_without_either_protection_the_router_advert_configures_the_host(monkeypatch,
                                                                                 tmp_path):
    seen = scenario("router_advert", monkeypatch, tmp_path, "control")
    assert seen["sent"] == "sent", seen
    assert "inet6 fd89:ab::" in seen["seen"]["addresses"], seen
    assert "default via fe80::" in seen["seen"]["default_routes"], seen
    assert seen["status"] == 0 and seen["leftovers"] == CLEAN, seen


def test_a_container_cannot_take_over_a_neighbour_of_the_host(monkeypatch, tmp_path):
    """With IPv6 turned back on for the bridge, the host has a neighbour entry for another
    address; a container with NET_RAW claims it with an overriding neighbour advert. The
    entry keeps its link address (the bridge table drops neighbour discovery from the
    bridge)."""
    seen = scenario("neighbour_advert", monkeypatch, tmp_path, "rules")
    assert seen["sent"] == "sent", seen
    assert seen["described"] == "fd89:cd::5 lladdr 02:00:00:00:00:05 STALE", seen
    assert seen["status"] == 0 and seen["leftovers"] == CLEAN, seen


def test_control_without_the_bridge_table_a_container_takes_over_the_neighbour(monkeypatch,
                                                                               tmp_path):
    seen = scenario("neighbour_advert", monkeypatch, tmp_path, "control")
    assert seen["described"] == "fd89:cd::5 lladdr 02:00:00:00:00:66 STALE", seen
    assert seen["status"] == 0 and seen["leftovers"] == CLEAN, seen


@pytest.mark.parametrize("mode, problem", [
    ("missing", "needs nftables for the bridge's isolation rules: the nft command is not "
                "in PATH (install nftables; the kernel needs nf_tables)"),
    ("refused", "needs nftables for the bridge's isolation rules: nft list tables failed: "
                "Error: simulated failure (install nftables; the kernel needs nf_tables)"),
    ("rules-fail", "nft failed: Error: simulated failure"),
])
def test_a_bridge_without_its_rules_refuses_to_start(monkeypatch, tmp_path, busybox_rootfs,
                                                     mode, problem):
    seen = scenario("without_nft", monkeypatch, tmp_path, str(busybox_rootfs), mode)
    assert seen["status"] == 125 and seen["stdout"] == "", seen
    assert seen["stderr"].count("\n") == 1 and problem in seen["stderr"], seen["stderr"]
    assert seen["leftovers"] == CLEAN


def test_control_with_nft_the_same_run_starts_behind_its_table(monkeypatch, tmp_path,
                                                               busybox_rootfs):
    seen = scenario("without_nft", monkeypatch, tmp_path, str(busybox_rootfs), "control")
    assert seen["status"] == 0 and seen["stdout"] == "payload-ran", seen
    assert seen["table_while_running"] is True
    assert seen["leftovers"] == CLEAN


def test_the_ipv4_only_table_of_an_earlier_hardrun_does_not_outlive_its_bridge(monkeypatch,
                                                                               tmp_path):
    seen = scenario("earlier_table", monkeypatch, tmp_path)
    assert seen["before"] == ["table ip hardrun-br-tearly"]          # the control
    assert seen["while_running"] == ["table inet hardrun-br-tearly"]
    assert seen["problems"] == [] and seen["leftovers"] == CLEAN


@pytest.mark.parametrize("method", ["nft", "proxy"])
def test_published_port_reaches_the_container_on_loopback(monkeypatch, tmp_path, method):
    seen = scenario("publish", monkeypatch, tmp_path, publish=method)
    assert seen["method"] == method
    assert seen["published"] == "published-hello"
    assert seen["udp"] == "udp-hello"
    assert seen["unpublished_via_host"] == ""
    assert seen["after_stop"] == ""
    assert seen["problems"] == [] and seen["leftovers"] == CLEAN


def test_a_later_run_removes_the_network_of_a_killed_hardrun(monkeypatch, tmp_path):
    seen = scenario("killed_owner", monkeypatch, tmp_path)
    assert "hr-tkill" in seen["before"]["links"] and "hardrun-br-tkill" in seen["before"]["nft"]
    assert seen["stale"] == [seen["container"]]
    assert seen["reaped"] == [[seen["container"]], []] and seen["leftovers"] == CLEAN


def test_hygiene_under_load_100_containers(monkeypatch, tmp_path, busybox_rootfs):
    seen = scenario("stress", monkeypatch, tmp_path, str(busybox_rootfs), timeout=300)
    assert seen["gc"] == 0, seen["gc_err"]
    assert seen["leftovers"] == CLEAN
    assert set(seen["statuses"]["normal"]) == {0}
    assert set(seen["statuses"]["payload-killed"]) == {137}
    assert set(seen["statuses"]["hardrun-killed"]) == {-9}


# ------------------------------------------------------------------ parsing (no root)

def test_network_choice_needs_no_pyroute2():
    assert network.network_choice(None).mode == "none"
    assert network.network_choice("host").needs_netns is False
    assert network.network_choice("bridge") == network.NetworkChoice("bridge", "hardrun0")
    assert network.network_choice("bridge:web").bridge == "web"
    with pytest.raises(UsageError, match="a bridge name is 1 to 12"):
        network.network_choice("bridge:much-too-long-name")
    with pytest.raises(UsageError, match="unsupported"):
        network.network_choice("container:x")


def test_ports_default_to_loopback_and_expand_ranges():
    spec = RunSpec(ports=(Port("80", host_port="8080"), Port("53", "5353", "0.0.0.0", "udp"),
                          Port("9000-9001", "19000-19001")))
    published = [str(p) for p in network.resolve_ports(spec)]
    assert published == ["127.0.0.1:8080->80/tcp", "0.0.0.0:5353->53/udp",
                         "127.0.0.1:19000->9000/tcp", "127.0.0.1:19001->9001/tcp"]


@pytest.mark.parametrize("port, message", [
    (Port("80", "1-2"), "differ in length"),
    (Port("80", "8080", "::1"), "only IPv4"),
    (Port("80", "8080", "localhost"), "not an IP address"),
    (Port("80", "8080", protocol="sctp"), "not tcp or udp"),
    (Port("0", "8080"), "within 1-65535"),
])
def test_bad_publish_values_are_usage_errors(port, message):
    with pytest.raises(UsageError, match=message):
        network.resolve_ports(RunSpec(ports=(port,)))


def test_a_bad_bridge_name_is_refused_before_anything_runs(hardrun):
    """Checked with the rest of the configuration: even --dry-run refuses it; the control,
    a good name, resolves."""
    refused = hardrun("run", "--dry-run", "--network", "bridge:much-too-long-name", "--", "true")
    assert refused.returncode == 125 and refused.stdout == ""
    assert refused.stderr.startswith("hardrun: --network bridge:much-too-long-name: a bridge "
                                     "name is 1 to 12") and refused.stderr.count("\n") == 1
    control = hardrun("run", "--dry-run", "--network", "bridge:web", "--", "true")
    assert control.returncode == 0 and '"bridge:web"' in control.stdout


def test_publishing_without_a_bridge_is_refused():
    with pytest.raises(UsageError, match="--publish needs a bridge network"):
        network.prepare(RunSpec(ports=(Port("80", "8080"),)), "x", None)


def test_work_in_the_namespace_of_a_gone_process_fails_instead_of_passing():
    """A container that died before its network was wired must not look wired: entering
    its namespace raises; the control runs in this process's own namespace."""
    from hardrun.runtime.network import in_netns
    require_root()
    with pytest.raises(FileNotFoundError):
        in_netns(2 ** 22 + 12345, lambda: "wired")
    assert in_netns(os.getpid(), lambda: "wired") == "wired"


def test_a_bridge_end_whose_ipv6_cannot_be_turned_off_is_refused(monkeypatch):
    """Fail closed: an IPv6 setting the kernel refuses stops the set-up with one line; the
    control, with writable settings, turns autoconfiguration off before IPv6 itself."""
    written = []
    monkeypatch.setattr(network, "_sysctl", lambda path, value: written.append((path, value)))
    network._no_host_ipv6("hr-x")
    assert written == [("ipv6/conf/hr-x/accept_ra", "0"), ("ipv6/conf/hr-x/accept_redirects", "0"),
                       ("ipv6/conf/hr-x/disable_ipv6", "1")]

    def refuse(path, value):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(network, "_sysctl", refuse)
    with pytest.raises(network.NetworkError, match=r"^cannot set accept_ra=0 on hr-x: "
                                                   r"Read-only file system$"):
        network._no_host_ipv6("hr-x")
