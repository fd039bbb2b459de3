"""What a hardrun-oci container gets, read from inside it: exec enters with the container's
confinement (never the caller's), `hardrun run --dry-run` run by hardrun-oci confines as
`hardrun run` does, the floor (with --no-floor as its control) and the policy gate (with
a bundle the same policy lets through as its control)."""
from __future__ import annotations

import json
import os

import pytest

from tests.helpers import run_hardrun
from tests.oci.conftest import make_bundle, status_lines
from tests.rootfs import FIXED_RANGE

pytestmark = pytest.mark.runtime

STATUS_SCRIPT = "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status"


def test_exec_enters_with_the_containers_confinement_not_the_callers(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"], caps=("CHOWN", "KILL"))
    oci("create", "--bundle", bundle, "c1", check=True)
    oci("start", "c1", check=True)
    init = oci.state("c1")["pid"]
    script = STATUS_SCRIPT + "; for ns in pid mnt net; do readlink /proc/self/ns/$ns; done; id -u"
    result = oci("exec", "c1", "/bin/sh", "-c", script)
    assert result.returncode == 0, result.stderr
    inside = status_lines(result.stdout)
    with open(f"/proc/{init}/status") as handle:
        container = status_lines(handle.read())
    with open("/proc/self/status") as handle:
        caller = status_lines(handle.read())
    # the control: the caller (root on the host, no filter) is not confined
    assert caller["CapEff"] != container["CapEff"] and caller["Seccomp"] == "0"
    for key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
        assert inside[key] == container[key], key
    assert (inside["NoNewPrivs"], inside["Seccomp"], inside["CapEff"]) == ("1", "2", "0000000000000021")
    links = result.stdout.splitlines()[-4:-1]
    assert links == [os.readlink(f"/proc/{init}/ns/{name}") for name in ("pid", "mnt", "net")]
    assert links[0] != os.readlink("/proc/self/ns/pid")
    # an exec asking for more than the container's bounding set is refused
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                                   "capabilities": {"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"],
                                                    "permitted": ["CAP_SYS_ADMIN"]}}))
    refused = oci("exec", "--process", str(process), "c1")
    assert refused.returncode == 2 and "CAP_SYS_ADMIN beyond the container's bounding set" in refused.stderr
    oci("delete", "--force", "c1", check=True)


def test_exec_status_user_cwd_env_and_detach(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"])
    oci("create", "--bundle", bundle, "c1", check=True)
    oci("start", "c1", check=True)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["/bin/sh", "-c", "id -u; id -g; pwd; echo $GREETING; exit 5"],
                                   "env": ["PATH=/bin", "GREETING=hi"], "cwd": "/etc",
                                   "user": {"uid": 1000, "gid": 1000}}))
    result = oci("exec", "--process", str(process), "c1")
    assert (result.returncode, result.stdout) == (5, "1000\n1000\n/etc\nhi\n"), result.stderr
    pid_file = tmp_path / "exec.pid"
    detached = oci("exec", "--detach", "--pid-file", str(pid_file), "--cwd", "/tmp", "--env", "A=1", "c1",
                   "/bin/sleep", "30")
    assert detached.returncode == 0, detached.stderr
    pid = int(pid_file.read_text())
    assert pid in json.loads(oci("ps", "--format", "json", "c1", check=True).stdout)
    oci("delete", "--force", "c1", check=True)


def test_dry_run_bundle_confines_as_hardrun_run_does(oci, oci_rootfs, tmp_path):
    command = ["/bin/sh", "-c",
               STATUS_SCRIPT + "; cat /proc/self/uid_map; grep -c ' /proc/keys ' /proc/self/mountinfo || true"]
    # one fixed range for both: a container's own range would differ when another one runs
    dry = run_hardrun("run", "--dry-run", "--rootfs", oci_rootfs, *FIXED_RANGE, *command)
    assert dry.returncode == 0, dry.stderr
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.json").write_text(dry.stdout)
    through_oci = oci("run", "--bundle", str(bundle), "d1")
    direct = run_hardrun("run", "--rootfs", oci_rootfs, *FIXED_RANGE, *command)
    assert through_oci.returncode == 0 and direct.returncode == 0, through_oci.stderr + direct.stderr
    assert through_oci.stdout == direct.stdout
    lines = status_lines(direct.stdout)
    assert (lines["NoNewPrivs"], lines["Seccomp"], lines["CapEff"]) == ("1", "2", "0000000000000000")
    assert "0     100000      65536" in direct.stdout       # root remapped in both
    # the control: the host's own view is not confined that way
    with open("/proc/self/status") as handle:
        assert status_lines(handle.read())["CapEff"] != lines["CapEff"]


def _probe_bundle(directory, rootfs):
    script = STATUS_SCRIPT + "; grep -c ' /proc/keys ' /proc/self/mountinfo; echo done"
    return make_bundle(directory, rootfs, ["/bin/sh", "-c", script], nnp=False, masked=False)


def test_the_floor_is_raised_recorded_and_shown_by_inspect(oci, oci_rootfs, tmp_path):
    """A lax bundle (no no_new_privs, no seccomp, no masked paths) gets the floor; with
    --no-floor (the control) the same bundle runs as lax as it asked."""
    bundle = _probe_bundle(tmp_path / "b", oci_rootfs)
    raised = oci("run", "--bundle", bundle, "f1")
    lax = oci("run", "--bundle", bundle, "f2", global_args=("--no-floor",))
    assert raised.returncode == 0 and lax.returncode == 0, raised.stderr + lax.stderr
    floor, control = status_lines(raised.stdout), status_lines(lax.stdout)
    assert (floor["NoNewPrivs"], floor["Seccomp"]) == ("1", "2")
    assert (control["NoNewPrivs"], control["Seccomp"]) == ("0", "0")
    # /proc/keys masked (/dev/null bound over it) with the floor only
    assert raised.stdout.splitlines()[-2:] == ["1", "done"]
    assert lax.stdout.splitlines()[-2:] == ["0", "done"]

    sleeper = make_bundle(tmp_path / "s", oci_rootfs, ["/bin/sleep", "60"], nnp=False, masked=False)
    oci("create", "--bundle", sleeper, "f3", check=True)
    annotations = oci.state("f3")["annotations"]
    changes = [value for key, value in annotations.items() if key.startswith("org.hardrun.floor.")]
    assert any(change.startswith("process.noNewPrivileges") for change in changes)
    assert any(change.startswith("linux.seccomp") for change in changes)
    assert any(change.startswith("linux.maskedPaths") and "/proc/keys" in change for change in changes)
    inspected = run_hardrun("inspect", "--oci-root", oci.root, str(oci.state("f3")["pid"]))
    assert inspected.returncode == 0, inspected.stderr
    assert "hardrun-oci container f3 (created)" in inspected.stdout
    assert "floor raised: process.noNewPrivileges: set to true" in inspected.stdout
    oci("delete", "f3", check=True)


ALL_CAPS = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
            "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK",
            "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN",
            "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
            "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
            "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")


def test_the_policy_refuses_a_lax_bundle_naming_the_rule_ids(oci, oci_rootfs, tmp_path):
    lax = make_bundle(tmp_path / "lax", oci_rootfs, ["/bin/echo", "ran"], caps=ALL_CAPS)
    refused = oci("run", "--bundle", lax, "p1", global_args=("--policy", "baseline"))
    assert (refused.returncode, refused.stdout) == (3, "")
    assert "refused by policy baseline: HR3001" in refused.stderr
    assert not os.path.exists(os.path.join(oci.root, "p1"))
    # the same rule ids `hardrun audit` gives the config.json under the same policy
    import re
    named = set(re.findall(r"HR\d{4}", refused.stderr.split("(")[0]))
    audit = run_hardrun("audit", "--policy", "baseline", "--format", "json", os.path.join(lax, "config.json"))
    assert named and named <= {finding["rule"] for finding in json.loads(audit.stdout)["findings"]}
    # the control: the same bundle with one harmless capability passes the same policy and runs
    fine = make_bundle(tmp_path / "fine", oci_rootfs, ["/bin/echo", "ran"])
    passed = oci("run", "--bundle", fine, "p2", global_args=("--policy", "baseline"))
    assert (passed.returncode, passed.stdout) == (0, "ran\n"), passed.stderr


FUSE = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}
OPEN_NODES = ("for node in fuse null zero; do (exec 3</dev/$node) 2>/dev/null && echo \"$node opened\" "
              "|| echo \"$node refused\"; done")


def test_the_device_cgroup_denies_a_node_its_rules_deny(oci, oci_rootfs, tmp_path):
    """Podman's form: deny every device, allow some, rely on runc's default list (/dev/null…).
    /dev/fuse (opened without privilege) is in the container (linux.devices) either way; only the
    rules differ."""
    deny_all = {"allow": False, "access": "rwm"}
    allow_fuse = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}
    seen = {}
    for name, rules in (("denied", [deny_all]), ("allowed", [deny_all, allow_fuse])):
        bundle = make_bundle(tmp_path / name, oci_rootfs, ["/bin/sh", "-c", OPEN_NODES], linux__devices=[FUSE],
                             linux__resources={"devices": rules})
        result = oci("run", "--bundle", bundle, name)
        assert result.returncode == 0, result.stderr
        seen[name] = set(result.stdout.splitlines())
    # the control: the same node, allowed by the rules, opens
    assert seen["allowed"] == {"fuse opened", "null opened", "zero opened"}
    # denied by the rules: the node is there but cannot be opened; runc's defaults still can
    assert seen["denied"] == {"fuse refused", "null opened", "zero opened"}
