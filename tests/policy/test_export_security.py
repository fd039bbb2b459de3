"""`hardrun export`: the security fields of every target, value by value.

The schema and round-trip tests show an export is well formed and passes its policy's
audit; these show each protection is actually written: an OCI config with an empty
`readonlyPaths`, or a read-write /sys, is valid and would still pass them. Expected
values are written here from Docker's defaults (moby daemon/pkg/oci/defaults.go)
and each runtime's documentation, not read from the exporter.
"""
import shlex

import pytest

from hardrun.policy import load_policy
from hardrun.policy.export import export_spec, to_compose, to_docker_run, to_kubernetes, to_oci
from hardrun.spec.run import Mount

DOCKER_MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                       "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                       "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"]
DOCKER_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
SCRATCH_OPTIONS = "rw,nosuid,nodev,noexec"
MOUNTS = (Mount("bind", "/data", source="/srv/data", read_only=True),
          Mount("bind", "/out", source="/srv/out"))


@pytest.fixture(scope="module")
def spec():
    """The restricted policy's requirements, with a read-only and a read-write bind."""
    return export_spec(load_policy("restricted")).evolve(mounts=MOUNTS)


def test_oci_security_fields(spec):
    oci = to_oci(spec)
    linux, process = oci["linux"], oci["process"]
    assert linux["maskedPaths"] == DOCKER_MASKED_PATHS
    assert linux["readonlyPaths"] == DOCKER_READONLY_PATHS
    assert {ns["type"] for ns in linux["namespaces"]} == {"pid", "ipc", "uts", "mount", "cgroup",
                                                          "network", "user"}
    for key in ("uidMappings", "gidMappings"):
        assert linux[key] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert linux["resources"] == {"memory": {"limit": 1024 ** 3}, "pids": {"limit": 1024}}
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO" and linux["seccomp"]["syscalls"]
    assert process["noNewPrivileges"] is True
    assert process["user"] == {"uid": 65534, "gid": 65534}
    assert process["capabilities"] == {name: [] for name in ("bounding", "effective", "permitted",
                                                             "inheritable", "ambient")}
    assert oci["root"]["readonly"] is True
    mounts = {mount["destination"]: mount for mount in oci["mounts"]}
    assert mounts["/sys"]["type"] == "sysfs" and {"ro", "nosuid", "nodev", "noexec"} <= set(mounts["/sys"]["options"])
    assert "rw" not in mounts["/sys"]["options"]
    for target in ("/tmp", "/run"):
        assert {"nosuid", "nodev", "noexec"} <= set(mounts[target]["options"]), mounts[target]
    assert {"nosuid", "nodev", "ro"} <= set(mounts["/data"]["options"]) and "rw" not in mounts["/data"]["options"]
    assert {"nosuid", "nodev", "rw"} <= set(mounts["/out"]["options"]) and "ro" not in mounts["/out"]["options"]


def test_oci_capabilities_and_namespaces_follow_the_spec(spec):
    """Control for the fields above: loosening the spec changes them."""
    loose = to_oci(spec.evolve(cap_drop=(), cap_add=("NET_ADMIN",), no_new_privileges=False,
                               read_only_root=False, namespaces={"user": "host", "pid": "host"},
                               network="host"))
    assert "CAP_NET_ADMIN" in loose["process"]["capabilities"]["bounding"]
    assert loose["process"]["noNewPrivileges"] is False and loose["root"]["readonly"] is False
    assert {ns["type"] for ns in loose["linux"]["namespaces"]} == {"ipc", "uts", "mount", "cgroup"}
    assert "uidMappings" not in loose["linux"]


def test_compose_security_fields(spec):
    service = to_compose(spec)["services"]["app"]
    assert service["user"] == "65534:65534"
    assert service["cap_drop"] == ["ALL"] and "cap_add" not in service
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert service["read_only"] is True
    assert service["tmpfs"] == [f"/tmp:{SCRATCH_OPTIONS}", f"/run:{SCRATCH_OPTIONS}"]
    assert service["network_mode"] == "none"
    assert service["mem_limit"] == 1024 ** 3 and service["pids_limit"] == 1024
    assert service["volumes"] == [{"type": "bind", "target": "/data", "source": "/srv/data", "read_only": True},
                                  {"type": "bind", "target": "/out", "source": "/srv/out"}]
    for loosening in ("privileged", "userns_mode", "pid", "ipc", "cap_add"):
        assert loosening not in service


def test_kubernetes_security_fields(spec):
    pod = to_kubernetes(spec)["spec"]
    assert pod["securityContext"] == {"runAsUser": 65534, "runAsNonRoot": True, "runAsGroup": 65534,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    container = pod["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["resources"] == {"limits": {"memory": str(1024 ** 3)}}
    read_only = {mount["mountPath"]: mount.get("readOnly") for mount in container["volumeMounts"]}
    assert read_only["/data"] is True and read_only["/out"] is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert key not in pod


def test_kubernetes_loosened_fields_are_written():
    """Control: what the spec loosens shows up (root, privilege escalation, host namespaces)."""
    loose = export_spec(load_policy("restricted")).evolve(
        user="0", no_new_privileges=False, privileged=True, network="host", namespaces={"pid": "host"},
        system_paths_unconfined=True, seccomp="unconfined")
    pod = to_kubernetes(loose)["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    context = pod["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is True and context["privileged"] is True
    assert context["procMount"] == "Unmasked"
    assert pod["hostNetwork"] is True and pod["hostPID"] is True


def test_docker_run_security_flags(spec):
    words = shlex.split(to_docker_run(spec))
    pairs = list(zip(words, words[1:]))
    assert "--cap-drop=ALL" in words and not any(w.startswith("--cap-add") for w in words)
    assert ("--security-opt", "no-new-privileges=true") in pairs
    assert ("--user", "65534:65534") in pairs
    assert "--read-only" in words
    assert ("--tmpfs", f"/tmp:{SCRATCH_OPTIONS}") in pairs and ("--tmpfs", f"/run:{SCRATCH_OPTIONS}") in pairs
    assert ("--network", "none") in pairs
    assert ("--memory", str(1024 ** 3)) in pairs and ("--pids-limit", "1024") in pairs
    assert ("--mount", "type=bind,source=/srv/data,target=/data,readonly") in pairs
    assert ("--mount", "type=bind,source=/srv/out,target=/out") in pairs
    for loosening in ("--privileged", "--userns", "--pid", "--ipc"):
        assert loosening not in words


def test_docker_run_loosened_flags_are_written(spec):
    """Control: the flags above disappear or change when the spec loosens them."""
    words = shlex.split(to_docker_run(spec.evolve(cap_drop=(), cap_add=("NET_ADMIN",), privileged=True,
                                                  no_new_privileges=False, read_only_root=False,
                                                  namespaces={"user": "host"})))
    assert "--cap-add=NET_ADMIN" in words and "--privileged" in words
    assert "--read-only" not in words and "no-new-privileges=true" not in words
    assert "--userns" in words


@pytest.mark.parametrize("user,ambient", [("0:0", False), ("1000:1000", True)])
def test_oci_capability_sets_of_an_added_capability(spec, user, ambient):
    """An added capability fills bounding, effective and permitted; ambient carries it to a
    non-root user only, and inheritable with it (the kernel keeps ambient within
    inheritable, as `hardrun run` sets them); for root both stay empty (root regains
    inheritable capabilities at exec). The spec above, with no capability, is the control."""
    sets = to_oci(spec.evolve(user=user, cap_add=("NET_BIND_SERVICE",)))["process"]["capabilities"]
    for name in ("bounding", "effective", "permitted"):
        assert sets[name] == ["CAP_NET_BIND_SERVICE"], (name, sets)
    assert sets["inheritable"] == (["CAP_NET_BIND_SERVICE"] if ambient else [])
    assert sets["ambient"] == (["CAP_NET_BIND_SERVICE"] if ambient else [])
