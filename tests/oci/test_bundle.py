"""The OCI reader (hardrun.runtime.bundle): every field hardrun cannot apply is an error
naming it, never dropped; the documents hardrun-oci reads and writes (bundles from the
one writer, state, features) are valid against the OCI runtime-spec JSON schema."""
from __future__ import annotations

import json
import os

import pytest

from hardrun.runtime import bundle as reader
from tests.helpers import DATA
from tests.oci.conftest import make_bundle

SCHEMA_DIR = DATA / "oci-runtime-spec-schema"


def _validator(schema: str):
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4
    resources = []
    for path in SCHEMA_DIR.glob("*.json"):
        resource = Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT4)
        resources += [(path.name, resource), (path.resolve().as_uri(), resource)]
    return jsonschema.Draft4Validator(json.loads((SCHEMA_DIR / schema).read_text()),
                                      registry=Registry().with_resources(resources))


@pytest.fixture
def plain(tmp_path):
    rootfs = tmp_path / "rootfs-dir"
    rootfs.mkdir()
    return make_bundle(tmp_path / "b", str(rootfs), ["/bin/true"])


def _edit(bundle: str, change) -> str:
    path = os.path.join(bundle, "config.json")
    with open(path) as handle:
        document = json.load(handle)
    change(document)
    with open(path, "w") as handle:
        json.dump(document, handle)
    return bundle


UNSUPPORTED = [
    ("linux.intelRdt", lambda d: d["linux"].update(intelRdt={"closID": "guaranteed"})),
    ("linux.sysctl", lambda d: d["linux"].update(sysctl={"kernel.panic": "1"})),     # not namespaced
    ("linux.devices[0]", lambda d: d["linux"].update(devices=[{"path": "/dev/null", "type": "c", "major": 10,
                                                               "minor": 229}])),
    ("linux.personality", lambda d: d["linux"].update(personality={"domain": "LINUX32"})),
    ("linux.mountLabel", lambda d: d["linux"].update(mountLabel="system_u:object_r:x:s0")),
    ("linux.timeOffsets", lambda d: d["linux"].update(timeOffsets={"monotonic": {"secs": 1}})),
    ("linux.resources.blockIO.weight", lambda d: d["linux"].setdefault("resources", {}).update(
        blockIO={"weight": 5})),                                    # not a blkio weight (10-1000)
    ("linux.resources.blockIO.throttleReadBpsDevice[0].rate", lambda d: d["linux"].setdefault(
        "resources", {}).update(blockIO={"throttleReadBpsDevice": [{"major": 8, "minor": 0}]})),
    ("linux.resources.blockIO.throttleIODevice", lambda d: d["linux"].setdefault("resources", {}).update(
        blockIO={"throttleIODevice": []})),                         # no such field
    ("linux.resources.memory.kernel", lambda d: d["linux"].setdefault("resources", {}).update(
        memory={"kernel": 1 << 20})),
    ("linux.resources.devices[2]", lambda d: d["linux"].setdefault("resources", {}).update(
        devices=[{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "access": "rwm"},
                 {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "r"}])),   # a v1 cgroup cannot
    ("linux.namespaces[6].type", lambda d: d["linux"]["namespaces"].append({"type": "time"})),
    ("linux.rootfsPropagation", lambda d: d["linux"].update(rootfsPropagation="shared")),
    ("linux.seccomp", lambda d: d["linux"].update(seccomp={"defaultAction": "SCMP_ACT_NOTIFY",
                                                           "listenerPath": "/run/listener.sock"})),
    ("process.apparmorProfile", lambda d: d["process"].update(apparmorProfile="docker-default")),
    ("process.selinuxLabel", lambda d: d["process"].update(selinuxLabel="system_u:system_r:container_t:s0")),
    ("process.ioPriority", lambda d: d["process"].update(ioPriority={"class": "IOPRIO_CLASS_IDLE"})),
    ("process.scheduler", lambda d: d["process"].update(scheduler={"policy": "SCHED_FIFO"})),
    ("process.user.username", lambda d: d["process"]["user"].update(username="app")),
    ("hooks.createContainer", lambda d: d.update(hooks={"createContainer": [{"path": "/bin/true"}]})),
    ("mounts[5].type", lambda d: d["mounts"].append({"destination": "/mnt", "type": "nfs", "source": "srv:/x"})),
    ("mounts[5].options", lambda d: d["mounts"].append({"destination": "/mnt", "type": "tmpfs",
                                                         "source": "tmpfs", "options": ["suid"]})),
    ("domainname", lambda d: d.update(domainname="example.org")),
    ("linux.unknownThing", lambda d: d["linux"].update(unknownThing=1)),
]


@pytest.mark.parametrize("field,change", UNSUPPORTED, ids=[field for field, _ in UNSUPPORTED])
def test_a_field_hardrun_cannot_apply_is_an_error_naming_it(plain, field, change):
    reader.load(plain)       # the control: the same bundle without the field is read
    _edit(plain, change)
    with pytest.raises(reader.BundleError) as raised:
        reader.load(plain)
    assert f"{field}:" in str(raised.value)


def test_empty_values_of_unsupported_fields_are_accepted(plain):
    """Engines write empty objects for what they do not ask (Docker: `"sysctl": {}`)."""
    _edit(plain, lambda d: d["linux"].update(sysctl={}, devices=[], resources={"blockIO": {}}))
    reader.load(plain)


def test_dockers_zero_block_io_weight_means_unset(plain):
    """Docker 20.10 writes `blockIO: {"weight": 0}` into every bundle; runc writes nothing for it."""
    _edit(plain, lambda d: d["linux"].update(resources={"blockIO": {"weight": 0, "leafWeight": 0}}))
    assert reader.load(plain).limits.block_io is None


def test_a_later_mount_at_the_same_destination_goes_over_the_earlier(plain, tmp_path):
    """containerd's CRI sandbox: /dev/shm as tmpfs, then a bind of the sandbox's shm (runc mounts both,
    in order); any other destination mounted twice keeps both plans, in the config's order."""
    shm = tmp_path / "shm"
    shm.mkdir()
    _edit(plain, lambda d: d["mounts"].extend([
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec"]},
        {"destination": "/dev/shm", "type": "bind", "source": str(shm), "options": ["rbind", "rw"]},
        {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/mnt", "type": "bind", "source": str(shm), "options": ["rbind", "ro"]}]))
    mounts = reader.load(plain).config.mounts
    assert [m.kind for m in mounts if m.target == "/dev/shm"] == ["bind"]     # over the child's own tmpfs
    assert [m.kind for m in mounts if m.target == "/mnt"] == ["tmpfs", "bind"]
    # a kernel file system hardrun mounts itself is still refused twice
    _edit(plain, lambda d: d["mounts"].append({"destination": "/proc", "type": "proc", "source": "proc"}))
    with pytest.raises(reader.BundleError, match=r"/proc mounted twice"):
        reader.load(plain)


def test_runc_specs_own_default_config_is_accepted(tmp_path):
    """`runc spec` asks for ambient capabilities it leaves out of inheritable: the kernel cannot raise
    them (runc's PR_CAP_AMBIENT_RAISE fails and runc goes on), so hardrun runs with none either."""
    import subprocess
    subprocess.run(["runc", "spec"], cwd=tmp_path, check=True)
    (tmp_path / "rootfs").mkdir()
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["capabilities"]["ambient"] and not spec["process"]["capabilities"].get("inheritable")
    loaded = reader.load(str(tmp_path))
    bounding, effective, permitted, inheritable, ambient = loaded.config.cap_sets
    assert ambient == 0 and permitted == bounding != 0


def test_docker_s_device_list_and_namespaced_sysctls_are_applied(plain):
    null = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    docker_like = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "access": "rwm"},
                   {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"}, null]
    _edit(plain, lambda d: (d["linux"].update(sysctl={"net.ipv4.ip_forward": "1"},
                                              resources={"devices": docker_like}),
                            d["process"].update(oomScoreAdj=500)))
    cfg = reader.load(plain).config
    assert (cfg.sysctls, cfg.oom_score_adj) == ((("net.ipv4.ip_forward", "1"),), 500)


def test_the_reader_maps_the_config_onto_the_plan(plain, tmp_path):
    host = tmp_path / "data"
    host.mkdir()

    def change(document):
        document["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000], "umask": 0o27}
        document["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]
        document["linux"]["namespaces"][4] = {"type": "network", "path": "/proc/1/ns/net"}
        document["linux"]["cgroupsPath"] = "/pods/pod1/c1"
        document["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}
        document["mounts"].append({"destination": "/data", "type": "bind", "source": str(host),
                                   "options": ["rbind", "ro"]})
        document["hooks"] = {"prestart": [{"path": "/usr/bin/hook", "args": ["hook", "x"], "timeout": 5}]}
    loaded = reader.load(_edit(plain, change))
    cfg = loaded.config
    assert (cfg.user.uid, cfg.user.gid, cfg.user.groups, cfg.umask) == (1000, 1000, (2000,), 0o27)
    assert dict(cfg.namespace_paths) == {"network": "/proc/1/ns/net"} and cfg.network == "joined"
    assert [(p.kind, p.target, p.read_only) for p in cfg.mounts] == [("bind", "/data", True)]
    assert (loaded.limits.memory, loaded.limits.pids) == (64 << 20, 50)
    assert [(u.name, u.soft, u.hard) for u in loaded.rlimits] == [("nofile", 1024, 2048)]
    assert loaded.cgroups_path == "/pods/pod1/c1" and loaded.hooks["prestart"][0]["timeout"] == 5
    assert cfg.cap_sets[1] == 1 and cfg.detached      # CAP_CHOWN only; outlives its creator


def test_the_floor_only_adds(plain):
    loaded = reader.load(plain)
    assert loaded.floor == () or all(c.field != "process.noNewPrivileges" for c in loaded.floor)
    _edit(plain, lambda d: (d["process"].update(noNewPrivileges=False), d["linux"].update(maskedPaths=[])))
    raised = reader.load(plain)
    assert raised.config.no_new_privileges and raised.config.seccomp == "default"
    assert "/proc/keys" in raised.config.masked_paths
    lax = reader.load(plain, floor=False)
    assert (lax.config.no_new_privileges, lax.config.seccomp, lax.config.masked_paths) == (False, None, ())


def test_the_bundles_and_dry_run_output_are_valid_oci(plain):
    validator = _validator("config-schema.json")
    with open(os.path.join(plain, "config.json")) as handle:
        errors = list(validator.iter_errors(json.load(handle)))
    assert not errors, errors[0].message


def test_state_and_features_documents_are_valid(oci, oci_rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"])
    oci("create", "--bundle", bundle, "s1", check=True)
    state = oci.state("s1")
    errors = list(_validator("state-schema.json").iter_errors(state))
    assert not errors, errors[0].message
    oci("delete", "s1", check=True)
    features = json.loads(oci("features", check=True).stdout)
    errors = list(_validator("features-schema.json").iter_errors(features))
    assert not errors, errors[0].message


def test_the_command_line_refuses_bad_usage_in_one_line(oci):
    for args, expected in ((("frobnicate",), "unknown command"), (("create", "x"), None),
                           (("kill",), "expected an ID"), (("create", "--bogus", "x"), "unknown option --bogus")):
        result = oci(*args)
        assert result.returncode in (1, 2), args
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
        if expected:
            assert expected in result.stderr
    version = oci("--version", check=True).stdout
    assert version.startswith("hardrun-oci version ") and "spec: 1.0.2" in version


def _docker_default_caps() -> dict:
    from hardrun.spec.defaults import DOCKER_DEFAULT_CAPABILITIES
    names = ["CAP_" + name for name in DOCKER_DEFAULT_CAPABILITIES]
    return {"bounding": list(names), "effective": list(names), "permitted": list(names)}


_ORDERS = {"docker's": list, "podman's (sorted)": sorted,
           # an engine whose order hardrun has not seen: still its default, the floor holds
           "another engine's (reversed)": lambda values: values[::-1]}


@pytest.mark.parametrize("order", sorted(_ORDERS))
def test_the_floor_drops_net_raw_from_exactly_the_engine_default_set(order):
    caps = _docker_default_caps()
    document = {"process": {"capabilities": {name: _ORDERS[order](values)
                                             for name, values in caps.items()}}, "linux": {}}
    changes = reader.raise_floor(document)
    caps = document["process"]["capabilities"]
    assert all("CAP_NET_RAW" not in caps[name] for name in caps)
    assert len(caps["bounding"]) == 13
    assert reader.FloorChange("process.capabilities", "NET_RAW dropped from the engine's default set") in changes


# Docker 20.10 appends each --cap-add to its default list, NET_RAW again included:
# `--cap-add NET_RAW` lists it twice, `--cap-drop NET_RAW --cap-add NET_RAW` moves it last
# (tests/engines/test_docker.py captures both from dockerd)
@pytest.mark.parametrize("change", ["drop CAP_MKNOD", "add CAP_NET_ADMIN", "add CAP_NET_RAW",
                                    "drop CAP_NET_RAW, add CAP_NET_RAW"])
def test_a_set_the_user_changed_keeps_net_raw(change):
    caps = _docker_default_caps()
    for step in change.split(", "):
        verb, name = step.split()
        for values in caps.values():
            values.remove(name) if verb == "drop" else values.append(name)
    document = {"process": {"capabilities": caps}, "linux": {}}
    changes = reader.raise_floor(document)
    assert all("CAP_NET_RAW" in values for values in caps.values())
    assert not [c for c in changes if c.field == "process.capabilities"]
