"""Docker's loosening flags in `hardrun run`, each checked from inside the container with a
control (the same probe without the flag), and each refused by a policy with the audit's
rule id (exit 3, nothing started) while a permissive policy lets it through.

Root, user namespaces, cgroups and the busybox rootfs are required: these tests fail, never
skip, without them.
"""
from __future__ import annotations

import os
import re

import pytest

from hardrun.runtime.syscalls import last_cap

from tests.runtime.test_limits_run import container_cgroups, hardrun_run

pytestmark = pytest.mark.runtime

ALL_CAPS = (1 << (last_cap() + 1)) - 1


def inside(rootfs, env, script, *flags):
    """Run `sh -c script` in a container with `flags`; its stdout (it must succeed)."""
    done = hardrun_run(rootfs, env, *flags, "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout


def refused(rootfs, env, *flags, status=125):
    """The start is refused with `status` and one line, no traceback, nothing run."""
    done = hardrun_run(rootfs, env, *flags, "--", "sh", "-c", "echo STARTED")
    assert done.returncode == status, (done.stdout, done.stderr)
    assert "STARTED" not in done.stdout and "Traceback" not in done.stderr
    return done.stderr


def status_field(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def host_value(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


# ------------------------------------------------------------------ --privileged

PRIVILEGED_PROBE = ("cat /proc/self/status; cat /proc/self/uid_map; "
                    "grep -c ' /proc/keys ' /proc/self/mountinfo; "
                    "test -c /dev/loop-control && echo HAS-LOOP-CONTROL; "
                    "grep ' /sys ' /proc/self/mountinfo")


def test_privileged_gives_every_capability_no_filter_no_masks_and_host_devices(rootfs, env):
    out = inside(rootfs, env, PRIVILEGED_PROBE, "--privileged")
    assert int(status_field(out, "CapEff"), 16) == ALL_CAPS
    assert status_field(out, "Seccomp") == "0"
    assert "\n0\n" in out                              # /proc/keys is not masked
    assert "HAS-LOOP-CONTROL" in out
    assert out.split(" /sys ")[1].startswith("rw,")   # /sys writable, as in Docker
    # still in hardrun's user namespace: root inside is an unprivileged host uid
    assert re.search(r"^ +0 +[1-9][0-9]{5,} +65536$", out, re.M), out


def test_control_without_privileged_nothing_of_that(rootfs, env):
    out = inside(rootfs, env, PRIVILEGED_PROBE)
    assert int(status_field(out, "CapEff"), 16) == 0
    assert status_field(out, "Seccomp") == "2"
    assert "\n1\n" in out                              # /proc/keys is masked
    assert "HAS-LOOP-CONTROL" not in out
    assert out.split(" /sys ")[1].startswith("ro,")


OPEN_ROOT_ONLY = "exec 3<>/dev/rootonly && echo OPENED"


@pytest.fixture(scope="module")
def root_only_node(tmp_path_factory):
    """A device node of the test's own, owned by host root with mode 0600 (/dev/zero's numbers)."""
    path = tmp_path_factory.mktemp("devices") / "zero0600"
    os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))
    os.chmod(path, 0o600)
    return f"{path}:/dev/rootonly"


def test_privileged_under_the_user_namespace_cannot_open_a_root_only_host_device(rootfs, env, root_only_node):
    """The node's owner, host root, is unmapped in the container: all capabilities of the
    user namespace do not reach it."""
    done = hardrun_run(rootfs, env, "--privileged", "--device", root_only_node, "--", "sh", "-c", OPEN_ROOT_ONLY)
    assert "OPENED" not in done.stdout and "Permission denied" in done.stderr


def test_control_privileged_with_the_hosts_user_namespace_opens_it(rootfs, env, root_only_node):
    out = inside(rootfs, env, OPEN_ROOT_ONLY + "; cat /proc/self/status", "--privileged", "--userns", "host",
                 "--device", root_only_node)
    assert "OPENED" in out
    # every capability the caller may hold (its bounding set), no more
    assert int(status_field(out, "CapEff"), 16) == int(status_field(host_value("/proc/self/status"), "CapBnd"), 16)


# ------------------------------------------------------------------ --pid / --ipc / --uts host

def test_pid_host_shows_the_hosts_processes(rootfs, env):
    out = inside(rootfs, env, "tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'",
                 "--pid", "host")
    first, count = out.splitlines()
    assert first.strip() == host_value("/proc/1/cmdline").replace("\0", " ").strip()
    assert int(count) > 10


def test_control_a_private_pid_namespace_shows_only_the_container(rootfs, env):
    out = inside(rootfs, env, "tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'")
    first, count = out.splitlines()
    assert first.startswith("sh -c") and int(count) <= 3     # sh, ls, grep


def test_pid_host_with_init_is_refused(rootfs, env):
    assert "--init needs a private pid namespace" in refused(rootfs, env, "--pid", "host", "--init")


@pytest.mark.parametrize("namespace", ["ipc", "uts"])
def test_ipc_and_uts_host_share_the_hosts_namespace(rootfs, env, namespace):
    host = os.readlink(f"/proc/self/ns/{namespace}")
    shared = inside(rootfs, env, f"readlink /proc/self/ns/{namespace}", f"--{namespace}", "host")
    private = inside(rootfs, env, f"readlink /proc/self/ns/{namespace}")     # the control
    assert shared.strip() == host and private.strip() != host


def test_ipc_host_shares_the_hosts_dev_shm(rootfs, env, tmp_path):
    marker = f"/dev/shm/hardrun-test-{os.getpid()}"
    with open(marker, "w") as handle:
        handle.write("host")
    try:
        script = f"cat {marker} 2>/dev/null || echo absent"
        assert inside(rootfs, env, script, "--ipc", "host").split() == ["host"]
        assert inside(rootfs, env, script).split() == ["absent"]      # the control
    finally:
        os.unlink(marker)


def test_uts_host_gives_the_hosts_name(rootfs, env):
    out = inside(rootfs, env, "hostname; echo $HOSTNAME", "--uts", "host").split()
    assert out == [os.uname().nodename] * 2
    assert inside(rootfs, env, "hostname", ).split() != [os.uname().nodename]   # the control


def test_uts_host_refuses_a_host_name(rootfs, env):
    assert "--hostname needs a private UTS namespace" in refused(rootfs, env, "--uts", "host", "-h", "x")


# ------------------------------------------------------------------ --device

def test_device_is_bound_and_readable(rootfs, env):
    out = inside(rootfs, env, "head -c 4 /dev/mydisk | od -An -tx1; test -c /dev/mydisk && echo CHAR",
                 "--device", "/dev/zero:/dev/mydisk:rwm")
    assert out.split() == ["00", "00", "00", "00", "CHAR"]


READ_THEN_WRITE = ("(exec 3</dev/z) && echo READ; (exec 3>/dev/z) 2>/dev/null && echo WROTE; "
                   "(exec 3</dev/full) && echo OTHER; echo done")
# in a cgroup v2 directory of its own (not the hierarchy's root, which has no cgroup.freeze)
OWN_V2_CGROUP = "test -e /sys/fs/cgroup/unified/cgroup.freeze && echo OWN-V2-CGROUP; echo checked"


@pytest.mark.parametrize("device_cgroup", ["", "bpf"], ids=["v1-controller", "bpf-program"])
def test_device_permissions_are_enforced_by_a_device_cgroup(rootfs, env, monkeypatch, device_cgroup):
    """`--device /dev/fuse:/dev/z:r` (a node not among runc's defaults, which allow /dev/zero rwm):
    read opens, write is refused by the device cgroup (the v1 controller here; the BPF program of
    cgroup v2, in a v2 cgroup of the container's own, with HARDRUN_DEVICE_CGROUP=bpf); runc's
    default nodes still open. The control: the same node given rw is written."""
    monkeypatch.setenv("HARDRUN_DEVICE_CGROUP", device_cgroup)
    where = inside(rootfs, env, OWN_V2_CGROUP, "--device", "/dev/fuse:/dev/z:r").split()
    assert where == (["OWN-V2-CGROUP", "checked"] if device_cgroup == "bpf" else ["checked"])
    assert inside(rootfs, env, READ_THEN_WRITE, "--device", "/dev/fuse:/dev/z:r").split() == ["READ", "OTHER", "done"]
    assert inside(rootfs, env, READ_THEN_WRITE, "--device", "/dev/fuse:/dev/z:rw").split() == [
        "READ", "WROTE", "OTHER", "done"]


def test_device_permissions_under_privileged_are_refused(rootfs, env):
    """--privileged allows every device (as Docker), so a narrower --device cannot hold."""
    stderr = refused(rootfs, env, "--privileged", "--device", "/dev/zero:/dev/z:r")
    assert "permissions 'r' cannot be enforced under --privileged" in stderr


def test_control_without_device_the_node_is_absent(rootfs, env):
    out = inside(rootfs, env, "test -e /dev/mydisk && echo PRESENT; echo done")
    assert out.split() == ["done"]


def test_device_with_the_hosts_user_namespace_opens_a_root_only_node(rootfs, env, root_only_node):
    assert "OPENED" in inside(rootfs, env, OPEN_ROOT_ONLY, "--device", root_only_node, "--userns", "host")
    # the control: the same device under the user namespace is the unmapped owner's
    done = hardrun_run(rootfs, env, "--device", root_only_node, "--", "sh", "-c", OPEN_ROOT_ONLY)
    assert "OPENED" not in done.stdout and "Permission denied" in done.stderr


@pytest.mark.parametrize("value,message", [
    ("/etc/passwd", "not a character or block device"),
    ("/dev/zero:/etc/zero", "must be under /dev/"),
    ("/dev/zero:/dev/pts/0", "the container's own"),
    ("/dev/no-such-device", "No such file or directory"),
])
def test_bad_devices_are_refused_with_one_line(rootfs, env, value, message):
    stderr = refused(rootfs, env, "--device", value)
    assert message in stderr and len(stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ --sysctl

SYSCTLS = {
    "net.ipv4.ip_unprivileged_port_start": ("/proc/sys/net/ipv4/ip_unprivileged_port_start", "80"),
    "kernel.shmmax": ("/proc/sys/kernel/shmmax", "123456789"),
    "fs.mqueue.msg_max": ("/proc/sys/fs/mqueue/msg_max", "20"),
    "kernel.domainname": ("/proc/sys/kernel/domainname", "example.org"),
    "kernel.hostname": ("/proc/sys/kernel/hostname", "boxy"),
}


def test_namespaced_sysctls_are_set_inside_and_the_host_keeps_its_own(rootfs, env):
    before = {name: host_value(path) for name, (path, _) in SYSCTLS.items()}
    flags = [word for name, (_, value) in SYSCTLS.items() for word in ("--sysctl", f"{name}={value}")]
    script = "; ".join(f"cat {path}" for path, _ in SYSCTLS.values())
    assert inside(rootfs, env, script, *flags).split() == [value for _, value in SYSCTLS.values()]
    assert {name: host_value(path) for name, (path, _) in SYSCTLS.items()} == before
    # the control: without --sysctl the container sees the defaults of new namespaces
    defaults = inside(rootfs, env, script).split()
    assert all(got != value for got, (_, value) in zip(defaults, SYSCTLS.values()))


def test_a_sysctl_of_the_bridge_networks_interface_is_set_once_it_exists(rootfs, env):
    """eth0 appears when the parent wires the network: its sysctls are written after that.
    Bridge tests share /tmp/hardrun-net.lock (subnets and bridge names are host-wide)."""
    import fcntl
    script = "cat /proc/sys/net/ipv4/conf/eth0/rp_filter"
    with open("/tmp/hardrun-net.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        bridge = f"bridge:hrl{os.getpid() % 100000}"
        with_sysctl = inside(rootfs, env, script, "--network", bridge, "--sysctl", "net.ipv4.conf.eth0.rp_filter=2")
        control = inside(rootfs, env, script, "--network", bridge)
    assert with_sysctl.split() == ["2"] and control.split() != ["2"]


@pytest.mark.parametrize("flags,message", [
    (("--sysctl", "kernel.panic=1"), "not a namespaced sysctl"),
    (("--sysctl", "vm.swappiness=1"), "not a namespaced sysctl"),
    (("--network", "host", "--sysctl", "net.ipv4.ip_forward=1"), "network namespace is shared"),
    (("--ipc", "host", "--sysctl", "kernel.shmmax=1"), "ipc namespace is shared"),
    (("--uts", "host", "--sysctl", "kernel.domainname=x"), "uts namespace is shared"),
    (("--sysctl", "net.ipv4.../../x=1"), "invalid name"),
    (("-h", "a", "--sysctl", "kernel.hostname=b"), "both set the host name"),
])
def test_sysctls_that_would_reach_the_host_are_refused(rootfs, env, flags, message):
    assert message in refused(rootfs, env, *flags)


# ------------------------------------------------------------------ --security-opt apparmor= / label=

def test_lsm_loosenings_are_accepted_as_the_no_ops_they_are(rootfs, env):
    out = inside(rootfs, env, "echo RAN", "--security-opt", "apparmor=unconfined",
                 "--security-opt", "label=disable")
    assert out.split() == ["RAN"]


@pytest.mark.parametrize("option,lsm", [("apparmor=docker-default", "AppArmor"),
                                        ("label=type:spc_t", "SELinux"),
                                        ("label=level:s0:c1,c2", "SELinux")])
def test_lsm_confinement_that_cannot_be_applied_is_refused(rootfs, env, option, lsm):
    stderr = refused(rootfs, env, "--security-opt", option)
    assert lsm in stderr and "cannot be applied" in stderr or "cannot apply" in stderr


# ------------------------------------------------------------------ --group-add

def test_group_add_gives_supplementary_groups(rootfs, env):
    # user 1000 is in group extra (2000) by the image's /etc/group
    out = inside(rootfs, env, "id -G", "-u", "1000", "--group-add", "root", "--group-add", "3000")
    assert sorted(out.split(), key=int) == ["0", "1000", "2000", "3000"]
    assert sorted(inside(rootfs, env, "id -G", "-u", "1000").split(), key=int) == ["1000", "2000"]   # the control


def test_group_add_of_an_unknown_name_is_refused(rootfs, env):
    assert "unable to find --group-add nosuchgroup" in refused(rootfs, env, "--group-add", "nosuchgroup")


# ------------------------------------------------------------------ --oom-score-adj

def test_oom_score_adj_is_the_containers(rootfs, env):
    assert inside(rootfs, env, "cat /proc/self/oom_score_adj", "--oom-score-adj", "500").split() == ["500"]
    # the control: without the flag the caller's own value is inherited
    assert inside(rootfs, env, "cat /proc/self/oom_score_adj").split() == [host_value("/proc/self/oom_score_adj")]


def test_lowering_the_oom_score_adj_without_cap_sys_resource_is_refused(rootfs, env):
    # the container's root has no CAP_SYS_RESOURCE over the host: lowering fails closed
    assert "CAP_SYS_RESOURCE" in refused(rootfs, env, "--oom-score-adj", "-500")
    assert "out of range" in refused(rootfs, env, "--oom-score-adj", "1001")


# ------------------------------------------------------------------ --dry-run's OCI document

def test_dry_run_writes_the_loosenings_into_the_oci_config(rootfs, env):
    import json
    done = hardrun_run(rootfs, env, "--dry-run", "--pid", "host", "--device", "/dev/zero:/dev/z",
                       "--sysctl", "kernel.shmmax=1", "--group-add", "extra", "--oom-score-adj", "5",
                       "-u", "1000", "--", "true")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert "pid" not in {entry["type"] for entry in config["linux"]["namespaces"]}
    assert config["linux"]["devices"] == [{"path": "/dev/z", "type": "c", "major": 1, "minor": 5,
                                           "fileMode": 0o666, "uid": 0, "gid": 0}]
    # the device cgroup `hardrun run` gives it, so that hardrun-oci running this document allows
    # the node too (its cgroup starts from deny-all, as runc's)
    assert config["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]
    assert config["linux"]["sysctl"] == {"kernel.shmmax": "1"}
    assert config["process"]["user"]["additionalGids"] == [2000]
    assert config["process"]["oomScoreAdj"] == 5
    from tests.policy.test_export import oci_validator
    errors = sorted(oci_validator().iter_errors(config), key=str)
    assert not errors, errors[0].message
    lsm = hardrun_run(rootfs, env, "--dry-run", "--security-opt", "apparmor=unconfined",
                      "--security-opt", "label=disable", "--", "true")
    document = json.loads(lsm.stdout)
    assert document["process"]["apparmorProfile"] == "unconfined"
    assert document["annotations"]["org.hardrun.lsm"] == "apparmor=unconfined,label=disable"


# ------------------------------------------------------------------ the policy gate

POLICY_CASES = [
    ("HR2001", ("--privileged",)),
    ("HR2007", ("--pid", "host")),
    ("HR2007", ("--ipc", "host")),
    ("HR2007", ("--uts", "host")),
    ("HR2015", ("--device", "/dev/zero:/dev/z")),
    ("HR3006", ("--sysctl", "kernel.shmmax=1")),
    ("HR2009", ("--security-opt", "apparmor=unconfined")),
    ("HR2009", ("--security-opt", "label=disable")),
    ("HR2021", ("--group-add", "0")),
    ("HR2020", ("--oom-score-adj", "-500")),
]


@pytest.mark.parametrize("rule,flags", POLICY_CASES, ids=[f"{r}{'_'.join(f)}" for r, f in POLICY_CASES])
def test_a_policy_refuses_each_loosening_with_the_audits_rule_id(rootfs, env, rule, flags):
    stderr = refused(rootfs, env, "--policy", "strict", "-u", "1000", *flags, status=3)
    assert rule in stderr and "nothing was started" in stderr
    assert container_cgroups(env) == []
    assert not os.path.exists(env["HARDRUN_STATE_DIR"]) or os.listdir(env["HARDRUN_STATE_DIR"]) == []


@pytest.mark.parametrize("rule,flags", POLICY_CASES, ids=[f"{r}{'_'.join(f)}" for r, f in POLICY_CASES])
def test_control_a_permissive_policy_lets_each_loosening_through(rootfs, env, rule, flags):
    done = hardrun_run(rootfs, env, "--policy", "default", "-u", "1000", *flags, "--",
                       "sh", "-c", "echo STARTED")
    if rule == "HR2020":      # past the gate, the runtime refuses to lower it without CAP_SYS_RESOURCE
        assert done.returncode == 125 and "CAP_SYS_RESOURCE" in done.stderr
    else:
        assert done.returncode == 0 and done.stdout.split() == ["STARTED"], done.stderr


def test_control_strict_starts_the_same_command_without_a_loosening(rootfs, env):
    assert inside(rootfs, env, "echo STARTED", "--policy", "strict", "-u", "1000").split() == ["STARTED"]


# ------------------------------------------------------------------ the run config and the export

RUN_CONFIG = """apiVersion: hardrun/v1
kind: Run
user: "1000"
namespaces: {uts: host}
group-add: [3000]
oom-score-adj: 300
devices: [/dev/zero:/dev/mydisk]
sysctls: {kernel.shmmax: "4242"}
"""


def test_the_run_config_applies_the_same_loosenings(rootfs, env, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    script = ("id -G; cat /proc/self/oom_score_adj /proc/sys/kernel/shmmax; "
              "head -c 2 /dev/mydisk | od -An -tx1; readlink /proc/self/ns/uts")
    out = inside(rootfs, env, script, "--config", str(config)).split()
    assert sorted(out[:3], key=int) == ["1000", "2000", "3000"]
    assert out[3:] == ["300", "4242", "00", "00", os.readlink("/proc/self/ns/uts")]


def test_export_writes_group_add_and_oom_score_adj(tmp_path):
    import shlex
    from tests.helpers import run_hardrun
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    done = run_hardrun("export", "--to", "docker-run", "--config", str(config))
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout)
    assert words[words.index("--group-add") + 1] == "3000"
    assert words[words.index("--oom-score-adj") + 1] == "300"


@pytest.mark.parametrize("value,own_user_namespace,caps,refused_", [
    (500, True, 0, False),                           # raising needs nothing
    (-5, True, 1 << 24, True),                       # the container's root never has it over the host
    (-5, False, 1 << 24, False),                     # the host's user namespace and CAP_SYS_RESOURCE
    (-5, False, 0, True),                            # the host's, without it
    (1001, False, 1 << 24, True),                    # out of range
])
def test_oom_score_adj_check(value, own_user_namespace, caps, refused_):
    from hardrun.errors import UsageError
    from hardrun.runtime.tunables import check_oom_score_adj
    if refused_:
        with pytest.raises(UsageError):
            check_oom_score_adj(value, own_user_namespace, current=0, caps=caps)
    else:
        check_oom_score_adj(value, own_user_namespace, current=0, caps=caps)


def test_lowering_oom_score_adj_back_to_the_kernels_floor_needs_no_capability():
    """containerd's shim runs at its parent's score plus one and asks for the parent's (0) for the
    container: the kernel allows it without CAP_SYS_RESOURCE (its floor is a minimum only a
    privileged writer sets). Checked in a child without CAP_SYS_RESOURCE."""
    import subprocess
    import sys
    script = ("open('/proc/self/oom_score_adj', 'w').write('5')\n"
              "from hardrun.runtime.tunables import check_oom_score_adj\n"
              "check_oom_score_adj(0, False)\n"
              "from hardrun.errors import UsageError\n"
              "try:\n    check_oom_score_adj(-1, False)\nexcept UsageError:\n    print('below the floor refused')\n"
              "print(open('/proc/self/oom_score_adj').read().strip())\n")
    result = subprocess.run(["setpriv", "--inh-caps=-sys_resource", "--bounding-set=-sys_resource", "--",
                                    sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # the control: below the kernel's floor (0 here) is refused; the probe left the score as it was
    assert result.stdout.split() == ["below", "the", "floor", "refused", "5"]
