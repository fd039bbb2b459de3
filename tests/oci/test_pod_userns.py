"""hardrun-oci --userns auto for bundles that join namespaces by path, outside an engine: a
pod's sandbox (its network namespace pinned by a file, as the CRI's is) gets a user
namespace of its own, and a container joining it (the CRI's sandbox annotation, or a
namespace of a hardrun-oci container) gets the sandbox's. Seen from inside each container;
the controls are the same bundles under `--userns keep` (the container's root is the host's)."""
from __future__ import annotations

import os

import pytest

from tests.oci.conftest import bind, make_bundle

SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SEEN = ("cat /proc/self/uid_map; for n in user net ipc; do readlink /proc/self/ns/$n; done; "
        "ls /sys/class/net | tr '\\n' ' '; echo")


# the id leases in a state root of the test's own (tests/oci/conftest.own_state)
pytestmark = pytest.mark.usefixtures("own_state")


def sandbox_bundle(directory, rootfs, netns: str, args=("/bin/sleep", "60"), sandbox_id: str = "sandbox",
                   **extra) -> str:
    return make_bundle(directory, rootfs, list(args),
                       namespaces=("mount", "pid", "ipc", "uts"),
                       linux__namespaces=[{"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                                          {"type": "network", "path": netns}],
                       annotations={CONTAINER_TYPE: "sandbox", SANDBOX_ID: sandbox_id}, **extra)


def member_bundle(directory, rootfs, sandbox_pid: int, netns: str, args, sandbox: str | None = "sandbox",
                  **extra) -> str:
    annotations = {CONTAINER_TYPE: "container", SANDBOX_ID: sandbox} if sandbox else {}
    return make_bundle(directory, rootfs, list(args), namespaces=("mount", "pid"),
                       linux__namespaces=[{"type": "mount"}, {"type": "pid"},
                                          {"type": "network", "path": netns},
                                          {"type": "ipc", "path": f"/proc/{sandbox_pid}/ns/ipc"},
                                          {"type": "uts", "path": f"/proc/{sandbox_pid}/ns/uts"}],
                       annotations=annotations, **extra)


def seen(output: str) -> dict:
    lines = output.splitlines()
    return {"uid_map": lines[0].split(), "user": lines[1], "net": lines[2], "ipc": lines[3],
            "interfaces": lines[4].split()}


def exec_seen(oci, container_id: str) -> dict:
    result = oci("exec", container_id, "/bin/sh", "-c", SEEN)
    assert result.returncode == 0, result.stderr
    return seen(result.stdout)


def test_a_sandbox_gets_its_own_range_and_its_member_shares_it(oci, oci_rootfs, tmp_path, pod_netns):
    """The sandbox joins a host-owned network namespace yet has a user namespace of its own
    (joined first, then the user namespace created); its member shares that user namespace,
    the network and ipc namespaces, and the range. Both see the pod's sysfs (only `lo`).
    Control: under keep, the same bundles run with the host's map."""
    oci.userns = "auto"
    oci("create", "--bundle", sandbox_bundle(tmp_path / "s", oci_rootfs, pod_netns), "sandbox", check=True)
    sandbox_pid = oci.state("sandbox")["pid"]
    sandbox = exec_seen(oci, "sandbox")
    member = oci("run", "--bundle", member_bundle(tmp_path / "m", oci_rootfs, sandbox_pid, pod_netns,
                                                  ["/bin/sh", "-c", SEEN]), "member")
    assert member.returncode == 0, member.stderr
    inside = seen(member.stdout)
    assert sandbox["uid_map"][:2] != ["0", "0"] and sandbox["uid_map"][2] == "65536", sandbox
    assert inside["uid_map"] == sandbox["uid_map"]
    assert (inside["user"], inside["net"], inside["ipc"]) == (sandbox["user"], sandbox["net"], sandbox["ipc"])
    assert inside["net"] == f"net:[{os.stat(pod_netns).st_ino}]"
    assert inside["interfaces"] == sandbox["interfaces"] == ["lo"], "the sysfs is not the pod's network's"
    oci("delete", "--force", "sandbox", check=True)
    oci.userns = "keep"
    oci("create", "--bundle", sandbox_bundle(tmp_path / "ks", oci_rootfs, pod_netns), "sandbox", check=True)
    control = oci("run", "--bundle", member_bundle(tmp_path / "km", oci_rootfs, oci.state("sandbox")["pid"],
                                                   pod_netns, ["/bin/sh", "-c", SEEN]), "member")
    assert seen(control.stdout)["uid_map"] == ["0", "0", "4294967295"], control.stdout + control.stderr
    oci("delete", "--force", "sandbox", check=True)


def test_a_member_cannot_write_a_host_root_file_that_keep_writes(oci, oci_rootfs, tmp_path, pod_netns):
    host = tmp_path / "host"
    host.mkdir()
    target = host / "owned-by-host-root"
    target.write_text("host\n")
    write = ["/bin/sh", "-c", "echo pod >> /h/owned-by-host-root && echo wrote || echo refused"]
    for mode, expected in (("auto", "refused"), ("keep", "wrote")):    # keep: the control
        oci.userns = mode
        oci("create", "--bundle", sandbox_bundle(tmp_path / f"s-{mode}", oci_rootfs, pod_netns), "sandbox",
            check=True)
        bundle = member_bundle(tmp_path / f"m-{mode}", oci_rootfs, oci.state("sandbox")["pid"], pod_netns, write,
                               mounts=[bind(str(host), "/h")])
        result = oci("run", "--bundle", bundle, "member")
        assert result.stdout.strip() == expected, (mode, result.stdout + result.stderr)
        oci("delete", "--force", "sandbox", check=True)
    assert target.read_text() == "host\npod\n"


def test_two_members_talk_over_the_pods_loopback(oci, oci_rootfs, tmp_path, pod_netns):
    """A server in one member, a client in another, over 127.0.0.1 of the pod: one network."""
    oci.userns = "auto"
    oci("create", "--bundle", sandbox_bundle(tmp_path / "s", oci_rootfs, pod_netns), "sandbox", check=True)
    result = served_over_loopback(oci, oci_rootfs, tmp_path, pod_netns, 8080, "from-the-server")
    assert result.stdout.strip() == "from-the-server", result.stdout + result.stderr
    for name in ("server", "sandbox"):
        oci("delete", "--force", name, check=True)


def served_over_loopback(oci, oci_rootfs, tmp_path, pod_netns, port: int, message: str):
    """A member of the sandbox serving `message` on `port`, started; the run of another member
    reading it from 127.0.0.1 of the pod (the server is left to the caller's delete)."""
    sandbox_pid = oci.state("sandbox")["pid"]
    server = member_bundle(tmp_path / "server", oci_rootfs, sandbox_pid, pod_netns,
                           ["/bin/sh", "-c", f"echo {message} | nc -l -p {port}"])
    oci("create", "--bundle", server, "server", check=True)
    oci("start", "server", check=True)
    client = member_bundle(tmp_path / "client", oci_rootfs, sandbox_pid, pod_netns,
                           ["/bin/sh", "-c", f"for i in $(seq 50); do nc 127.0.0.1 {port} </dev/null && exit; "
                                             "usleep 100000; done"])
    return oci("run", "--bundle", client, "client")


def test_a_container_joining_a_hardrun_containers_network_gets_its_range(oci, oci_rootfs, tmp_path):
    """`docker run --network container:X --pid container:X`: no annotation; the namespaces'
    owner is X's user namespace, so the bundle joins X's user namespace, then its network
    and pid namespaces (X's sleep is its pid 1). An exec into it enters the same."""
    oci.userns = "auto"
    oci("create", "--bundle", make_bundle(tmp_path / "x", oci_rootfs, ["/bin/sleep", "60"]), "x", check=True)
    oci("start", "x", check=True)
    pid = oci.state("x")["pid"]
    x = exec_seen(oci, "x")
    bundle = make_bundle(tmp_path / "y", oci_rootfs, ["/bin/sh", "-c", "tr '\\0' ' ' </proc/1/cmdline; echo; " + SEEN],
                         linux__namespaces=[{"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
                                            {"type": "pid", "path": f"/proc/{pid}/ns/pid"},
                                            {"type": "network", "path": f"/proc/{pid}/ns/net"}])
    result = oci("run", "--bundle", bundle, "y")
    assert result.returncode == 0, result.stderr
    first, rest = result.stdout.split("\n", 1)
    assert first.strip() == "/bin/sleep 60", result.stdout
    assert (seen(rest)["uid_map"], seen(rest)["net"]) == (x["uid_map"], x["net"])
    assert x["uid_map"][:2] != ["0", "0"]
    oci("delete", "--force", "x", check=True)


def test_a_member_whose_sandbox_is_not_there_is_refused(oci, oci_rootfs, tmp_path, pod_netns):
    """Never host root instead: one line naming the annotation; control: under keep the
    same bundle runs (as the engine asked, host root)."""
    oci.userns = "auto"
    bundle = member_bundle(tmp_path / "m", oci_rootfs, os.getpid(), pod_netns, ["/bin/echo", "ran"],
                           sandbox="gone")
    refused = oci("run", "--bundle", bundle, "member")
    assert refused.returncode != 0 and "ran" not in refused.stdout
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert SANDBOX_ID in refused.stderr and "gone" in refused.stderr, refused.stderr
    assert not os.path.exists(os.path.join(oci.root, "member"))
    oci.userns = "keep"
    control = oci("run", "--bundle", bundle, "member")
    assert (control.returncode, control.stdout) == (0, "ran\n"), control.stderr


def test_the_shared_lease_goes_with_its_last_holder_and_gc_keeps_it_meanwhile(oci, oci_rootfs, tmp_path, pod_netns,
                                                                                own_state):
    import signal
    from hardrun.runtime.userns import RANGES_DIR
    from tests.helpers import lease_holders, run_hardrun
    from tests.oci.conftest import process_gone
    from tests.oci.test_userns import wait_gone
    ranges = own_state / RANGES_DIR

    def holders():
        return lease_holders(ranges)

    oci.userns = "auto"
    oci("create", "--bundle", sandbox_bundle(tmp_path / "s", oci_rootfs, pod_netns), "sandbox", check=True)
    sandbox_pid = oci.state("sandbox")["pid"]
    oci("create", "--bundle", member_bundle(tmp_path / "m", oci_rootfs, sandbox_pid, pod_netns,
                                            ["/bin/sleep", "60"]), "member", check=True)
    member_pid = oci.state("member")["pid"]
    assert exec_seen(oci, "member")["user"] == exec_seen(oci, "sandbox")["user"], "exec: not the pod's namespace"
    (lease, pids), = holders().items()
    assert pids == [sandbox_pid, member_pid]
    os.kill(sandbox_pid, signal.SIGKILL)      # the sandbox dies first: its member still holds the range
    assert wait_gone(sandbox_pid, process_gone)
    gc = run_hardrun("gc")
    assert gc.returncode == 0 and lease in holders(), gc.stdout + gc.stderr
    oci("delete", "sandbox", check=True)
    assert lease in holders()
    oci("delete", "--force", "member", check=True)
    assert holders() == {}


def test_port_80_needs_the_sandboxs_sysctl_which_hardrun_writes_from_the_host(oci, oci_rootfs, tmp_path, pod_netns):
    """Root of the pod has no capability over the pod's network namespace (the host's user
    namespace owns it): binding port 80 is refused, until the sandbox's config sets
    net.ipv4.ip_unprivileged_port_start (containerd's enable_unprivileged_ports), which
    hardrun-oci writes while still privileged there (root in the pod could not)."""
    oci.userns = "auto"
    oci("create", "--bundle", sandbox_bundle(tmp_path / "s", oci_rootfs, pod_netns), "sandbox", check=True)
    refused = oci("run", "--bundle", member_bundle(tmp_path / "m", oci_rootfs, oci.state("sandbox")["pid"], pod_netns,
                                                   ["/bin/nc", "-l", "-p", "80"]), "member")
    assert refused.returncode != 0 and "Permission denied" in refused.stdout + refused.stderr, refused
    oci("delete", "--force", "sandbox", check=True)
    sysctl = {"net.ipv4.ip_unprivileged_port_start": "0"}
    oci("create", "--bundle", sandbox_bundle(tmp_path / "s0", oci_rootfs, pod_netns, linux__sysctl=sysctl),
        "sandbox", check=True)
    result = served_over_loopback(oci, oci_rootfs, tmp_path, pod_netns, 80, "on-80")
    assert result.stdout.strip() == "on-80", result.stdout + result.stderr
    for name in ("server", "sandbox"):
        oci("delete", "--force", name, check=True)


def test_a_bundle_naming_a_sandbox_whose_namespaces_it_does_not_join_is_refused(oci, oci_rootfs, tmp_path, pod_netns):
    """The annotation alone does not get a pod's user namespace: a bundle naming the sandbox
    but joining another network namespace (the host's) is refused. Control: the same
    annotation with the sandbox's namespaces is a member."""
    oci.userns = "auto"
    oci("create", "--bundle", sandbox_bundle(tmp_path / "s", oci_rootfs, pod_netns), "sandbox", check=True)
    sandbox_pid = oci.state("sandbox")["pid"]
    borrowing = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/echo", "ran"], namespaces=("mount", "pid"),
                            linux__namespaces=[{"type": "mount"}, {"type": "pid"}, {"type": "uts"},
                                               {"type": "network", "path": "/proc/self/ns/net"}],
                            annotations={CONTAINER_TYPE: "container", SANDBOX_ID: "sandbox"})
    refused = oci("run", "--bundle", borrowing, "borrowing")
    assert refused.returncode != 0 and "ran" not in refused.stdout
    assert "joins none of the namespaces of the pod's sandbox sandbox" in refused.stderr, refused.stderr
    member = oci("run", "--bundle", member_bundle(tmp_path / "m", oci_rootfs, sandbox_pid, pod_netns,
                                                  ["/bin/echo", "ran"]), "member")
    assert (member.returncode, member.stdout) == (0, "ran\n"), member.stderr
    oci("delete", "--force", "sandbox", check=True)


def test_a_joined_namespace_whose_owner_cannot_be_read_is_refused(monkeypatch):
    """Without the owner hardrun cannot tell whose user namespace the bundle would share: the
    create is refused rather than run with the engine's choice. Control: the owner read."""
    from hardrun.runtime import oci_joins
    from hardrun.runtime.oci_userns import IdmapError
    joined = [("network", "/proc/self/ns/net")]
    assert oci_joins.plan({}, joined, "c1", containers=None).kind == "keep"      # the host's own: kept, with a note

    def refused(fd):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(oci_joins, "owning_userns_of", refused)
    with pytest.raises(IdmapError, match="user namespace owning /proc/self/ns/net cannot be read: Operation not"):
        oci_joins.plan({}, joined, "c1", containers=None)
