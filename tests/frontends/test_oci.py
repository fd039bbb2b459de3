"""OCI runtime config.json -> one RunSpec, judged as a reviewer reads it."""
import copy
import json

import pytest

from hardrun.errors import ParseError
from hardrun.frontends import detect_kind
from hardrun.frontends.oci import parse_oci
from hardrun.spec.run import EnvVar, Mount, Ulimit

from tests.helpers import DATA

OCI = DATA / "oci"
SCHEMA_DIR = DATA / "oci-runtime-spec-schema"


def _validator():
    """Draft-4 validator over the local schema copy: every $ref resolves in the local
    registry (a registry without `retrieve` never fetches anything)."""
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = []
    for path in SCHEMA_DIR.glob("*.json"):
        contents = json.loads(path.read_text())
        contents["id"] = path.resolve().as_uri()    # relative $refs resolve beside it
        resources.append((contents["id"], Resource(contents, specification=DRAFT4)))
    registry = Registry().with_resources(resources)
    root = registry.contents((SCHEMA_DIR / "config-schema.json").resolve().as_uri())

    return Draft4Validator(root, registry=registry)


def load(name):
    return json.loads((OCI / name).read_text())


def spec_of(config):
    (spec,) = parse_oci(json.dumps(config, indent=2), "config.json")
    return spec


def test_schema_copy_is_whole_with_licence_and_provenance():
    names = {p.name for p in SCHEMA_DIR.iterdir()}
    assert {"LICENSE", "PROVENANCE.md", "config-schema.json", "config-linux.json",
            "defs.json", "defs-linux.json"} <= names
    assert "Apache License" in (SCHEMA_DIR / "LICENSE").read_text()


@pytest.mark.parametrize("name", ["config.json", "privileged-config.json"])
def test_fixtures_validate_against_the_oci_schema(name):
    errors = list(_validator().iter_errors(load(name)))
    assert errors == []


def test_the_validator_rejects_a_broken_config():
    broken = load("config.json")
    broken["process"]["user"]["uid"] = "root"
    del broken["process"]["cwd"]
    assert len(list(_validator().iter_errors(broken))) >= 2


def test_hardened_fixture():
    (spec,) = parse_oci((OCI / "config.json").read_text(), "config.json")
    assert (spec.kind, spec.subject, spec.line) == ("oci", "config.json process", 3)
    assert spec.user == "1000:1000" and spec.lines["user"] == 6
    assert spec.cap_drop == ("ALL",) and spec.cap_add == ("AUDIT_WRITE", "KILL", "NET_BIND_SERVICE")
    assert spec.lines["cap_add:KILL"] == 26
    assert spec.no_new_privileges is True and spec.read_only_root is True
    assert spec.seccomp == "inline:SCMP_ACT_ERRNO"
    assert spec.apparmor == "hardrun-default"
    assert spec.namespaces == {n: "private" for n in
                               ("pid", "network", "ipc", "uts", "mount", "user", "cgroup")}
    assert spec.network == "none"
    assert spec.userns_remap == (100000, 65536)      # root inside is uid 100000 outside
    assert "/proc/kcore" in spec.masked_paths and "/proc/sys" in spec.readonly_paths
    assert (spec.memory, spec.pids_limit, spec.cpus, spec.cpu_shares) == (268435456, 128, 0.5, 512)
    assert spec.devices == ()
    assert spec.ulimits == (Ulimit("nofile", 1024, 1024),)
    assert EnvVar("APP_TOKEN_FILE", "/run/secrets/token", 20) in spec.env
    binds = [m for m in spec.mounts if m.type == "bind"]
    assert binds == [Mount("bind", "/srv/data", "/var/lib/app/data", False, ("nosuid", "nodev"), 129),
                     Mount("bind", "/etc/app", "/etc/app", True, (), 140)]
    assert next(m for m in spec.mounts if m.target == "/sys").read_only


def test_privileged_fixture():
    (spec,) = parse_oci((OCI / "privileged-config.json").read_text(), "privileged-config.json")
    assert spec.user == "0:0"
    assert spec.cap_add == ("CHOWN", "SYS_ADMIN", "NET_RAW")   # bounding counts: it can be regained
    assert spec.seccomp == "unconfined" and spec.lines["seccomp"] == 53
    assert spec.no_new_privileges is None and spec.read_only_root is None
    assert spec.namespaces["network"] == "host"               # joined pid 1's namespace
    assert spec.namespaces["ipc"] == spec.namespaces["uts"] == "host"   # not listed
    assert spec.lines["namespace:ipc"] == spec.lines["namespace:uts"] == 54
    host = next(m for m in spec.mounts if m.target == "/host")
    assert (host.type, host.source, host.read_only) == ("bind", "/", False)
    sock = next(m for m in spec.mounts if m.target == "/var/run/docker.sock")
    assert sock.type == "bind"
    assert spec.devices == ("/dev/fuse", "/dev/*:/dev/*:rwm")   # the allow-all cgroup rule
    assert spec.masked_paths == () and spec.readonly_paths == ()
    assert spec.userns_remap is None


def test_missing_capabilities_object_says_nothing_about_caps():
    config = load("config.json")
    del config["process"]["capabilities"]
    spec = spec_of(config)
    assert spec.cap_add == () and spec.cap_drop == ()


def test_seccomp_allow_everything_is_unconfined():
    config = load("config.json")
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    assert spec_of(config).seccomp == "unconfined"
    config["linux"]["seccomp"]["syscalls"] = [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]
    assert spec_of(config).seccomp == "inline:SCMP_ACT_ALLOW"


def test_namespace_joined_by_path_and_no_linux_section():
    config = load("config.json")
    config["linux"]["namespaces"][1] = {"type": "network", "path": "/var/run/netns/app"}
    assert spec_of(config).namespaces["network"] == "container:/var/run/netns/app"
    windows = {"ociVersion": "1.0.0", "process": {"cwd": "C:\\", "user": {"uid": 0}},
               "windows": {"layerFolders": []}}
    spec = spec_of(windows)
    assert spec.namespaces == {} and spec.seccomp is None


def test_selinux_and_apparmor_unconfined():
    config = load("config.json")
    config["process"]["apparmorProfile"] = "unconfined"
    config["process"]["selinuxLabel"] = "system_u:system_r:spc_t:s0"
    spec = spec_of(config)
    assert spec.apparmor == "unconfined" and spec.selinux_disabled


def test_large_json_numbers():
    config = load("config.json")
    config["linux"]["resources"]["memory"]["limit"] = 1e9
    assert spec_of(config).memory == 10 ** 9


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["process"].__setitem__("capabilities", ["CAP_KILL"]), "process.capabilities"),
    (lambda c: c["process"]["capabilities"].__setitem__("bounding", "CAP_KILL"), "bounding"),
    (lambda c: c["process"]["capabilities"]["effective"].append(7), "effective"),
    (lambda c: c["process"]["user"].__setitem__("uid", "root"), "process.user.uid"),
    (lambda c: c["process"].__setitem__("noNewPrivileges", "yes"), "noNewPrivileges"),
    (lambda c: c["root"].__setitem__("readonly", 1), "root.readonly"),
    (lambda c: c.__setitem__("mounts", {"a": 1}), "mounts"),
    (lambda c: c["mounts"].append({"source": "/"}), "destination"),
    (lambda c: c["linux"].__setitem__("namespaces", [{"type": 5}]), "type"),
    (lambda c: c["linux"]["resources"]["pids"].__setitem__("limit", "many"), "pids.limit"),
    (lambda c: c["linux"].__setitem__("maskedPaths", "/proc"), "maskedPaths"),
])
def test_wrong_types_are_parse_errors_with_a_line(mutate, message):
    config = copy.deepcopy(load("config.json"))
    mutate(config)
    with pytest.raises(ParseError, match=message) as caught:
        spec_of(config)
    assert caught.value.line is not None and caught.value.line > 1


@pytest.mark.parametrize("text,message", [
    ("", "empty"), ("[1, 2]", "one JSON object"), ('{"a": 1', "invalid YAML"),
    ('{"a": 1, "a": 2}', "duplicate key"),
])
def test_not_a_config(text, message):
    with pytest.raises(ParseError, match=message):
        parse_oci(text, "config.json")


@pytest.mark.parametrize("name,head,kind", [
    ("config.json", '{\n\t"ociVersion": "1.0.2",\n\t"process": {\n', "oci"),
    ("state.json", '{"ociVersion": "1.0.2", "id": "a", "status": "running", "pid": 4}', None),
    ("config-schema.json", '{"properties": {"ociVersion": {"$ref": "defs.json"}, '
     '"process": {"type": "object"}}}', None),
    ("bundle.json", '{"ociVersion": "1.2.0", "process": {}}', "oci"),
    ("config.json", '{"compilerOptions": {}}', None),
    ("config.yaml", 'ociVersion: "1.0.0"\n', None),
])
def test_detection_of_oci_configs(name, head, kind, tmp_path):
    path = tmp_path / name
    path.write_text(head)
    # other kinds (docker-run for CI files and Markdown…) may claim what this one leaves
    for found in (detect_kind(str(path), head), detect_kind(str(path))):
        assert found == kind if kind else found != "oci"


def _docker_privileged(config):
    """What Docker 20.10 writes for `docker run --privileged`: every capability, no seccomp,
    no masked or read-only paths, /sys rw, every device allowed."""
    from hardrun.spec.capabilities import NUMBERS
    everything = [f"CAP_{name}" for name in NUMBERS]
    config["process"]["capabilities"] = {key: list(everything) for key in ("bounding", "effective", "permitted")}
    config["linux"].pop("seccomp", None)
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    config["linux"]["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys"] + [
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "rw"]}]
    return config


def test_a_docker_privileged_bundle_is_marked_privileged_hr2001():
    privileged = spec_of(_docker_privileged(load("config.json")))
    assert privileged.privileged and privileged.lines["privileged"]
    # controls: each of the marks alone taken back is no longer --privileged
    for undo in (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_ERRNO"}),
                 lambda c: c["linux"]["resources"].update(devices=[{"allow": False, "access": "rwm"}]),
                 lambda c: c["process"]["capabilities"].update(bounding=["CAP_CHOWN"], effective=["CAP_CHOWN"],
                                                               permitted=["CAP_CHOWN"]),
                 lambda c: c["mounts"][-1]["options"].append("ro")):
        config = _docker_privileged(load("config.json"))
        undo(config)
        assert not spec_of(config).privileged


def test_hardrun_audit_names_hr2001_for_a_privileged_bundle_like_for_the_docker_run_line(tmp_path):
    from tests.helpers import run_hardrun
    bundle = tmp_path / "config.json"
    bundle.write_text(json.dumps(_docker_privileged(load("config.json")), indent=1))
    line = tmp_path / "run.sh"
    line.write_text("docker run --privileged busybox true\n")
    for path in (bundle, line):
        result = run_hardrun("audit", "--format", "json", str(path))
        assert "HR2001" in {f["rule"] for f in json.loads(result.stdout)["findings"]}, result.stdout


ENGINE_ID = "0123456789abcdef" * 4


def _with_binds(tmp_path, binds, bundle_dir):
    """config.json in `bundle_dir` with these (source, destination) binds."""
    config = load("config.json")
    config["mounts"] = [{"destination": d, "type": "bind", "source": str(s), "options": ["rbind", "rw"]}
                        for s, d in binds]
    bundle_dir.mkdir(parents=True, exist_ok=True)
    (bundle_dir / "config.json").write_text(json.dumps(config, indent=1))
    (spec,) = parse_oci((bundle_dir / "config.json").read_text(), str(bundle_dir / "config.json"))
    return {m.target: m.type for m in spec.mounts}


def test_the_engines_own_hosts_hostname_and_resolv_conf_are_not_host_mounts(tmp_path):
    """Docker binds <data-root>/containers/<id>/{hosts,hostname,resolv.conf}; the bundle is
    .../moby/<id>. Podman's bundle is .../<id>/userdata, beside the files."""
    state = tmp_path / "data-root" / "containers" / ENGINE_ID
    state.mkdir(parents=True)
    for name in ("hosts", "hostname", "resolv.conf"):
        (state / name).write_text("x\n")
    engine = [(state / "hosts", "/etc/hosts"), (state / "hostname", "/etc/hostname"),
              (state / "resolv.conf", "/etc/resolv.conf")]
    docker = _with_binds(tmp_path, engine, tmp_path / "exec-root" / "moby" / ENGINE_ID)
    assert set(docker.values()) == {"engine-file"}
    podman = _with_binds(tmp_path, engine, tmp_path / "containers" / ENGINE_ID / "userdata")
    assert set(podman.values()) == {"engine-file"}
    # the other side: the same files bound into a bundle not named after that container, the
    # host's own /etc/hosts, the host's /etc, and an engine file at another target are host mounts
    assert set(_with_binds(tmp_path, engine, tmp_path / "other" / ("f" * 64)).values()) == {"bind"}
    assert _with_binds(tmp_path, [("/etc/hosts", "/etc/hosts"), ("/etc", "/etc"), (state / "hosts", "/mnt/hosts")],
                       tmp_path / "moby" / ENGINE_ID) == {"/etc/hosts": "bind", "/etc": "bind", "/mnt/hosts": "bind"}


def test_under_baseline_docker_engine_files_pass_and_a_host_etc_bind_is_hr3002(tmp_path):
    from tests.helpers import run_hardrun
    state = tmp_path / "containers" / ENGINE_ID
    state.mkdir(parents=True)
    (state / "hosts").write_text("127.0.0.1 localhost\n")
    findings = {}
    for name, binds in (("engine", [(state / "hosts", "/etc/hosts")]), ("host", [("/etc", "/etc")])):
        bundle = tmp_path / name / ENGINE_ID
        _with_binds(tmp_path, binds, bundle)
        result = run_hardrun("audit", "--policy", "baseline", "--format", "json", str(bundle / "config.json"))
        findings[name] = {f["rule"] for f in json.loads(result.stdout)["findings"]}
    assert "HR3002" not in findings["engine"] and "HR2010" not in findings["engine"]
    assert "HR3002" in findings["host"]      # the control: `docker run -v /etc:/etc`


def test_under_baseline_binds_of_the_engines_storage_are_host_mounts(tmp_path):
    """`-v <data-root>/containers/<another id>:/x`, `-v <data-root>:/d` and another container's
    /etc/hosts: host binds, refused by baseline (HR3002). The control: the container's own
    /etc/hosts from the same storage passes."""
    from tests.helpers import run_hardrun
    data_root = tmp_path / "data-root"
    other = data_root / "containers" / ("f" * 64)
    own = data_root / "containers" / ENGINE_ID
    for directory in (other, own):
        directory.mkdir(parents=True)
        (directory / "hosts").write_text("127.0.0.1 localhost\n")
    findings = {}
    for name, binds in (("own", [(own / "hosts", "/etc/hosts")]),
                        ("other", [(other, "/x"), (data_root, "/d"), (other / "hosts", "/etc/hosts")])):
        bundle = tmp_path / name / "moby" / ENGINE_ID
        kinds = _with_binds(tmp_path, binds, bundle)
        assert set(kinds.values()) == ({"engine-file"} if name == "own" else {"bind"}), kinds
        result = run_hardrun("audit", "--policy", "baseline", "--format", "json", str(bundle / "config.json"))
        findings[name] = [f for f in json.loads(result.stdout)["findings"] if f["rule"] == "HR3002"]
    assert findings["own"] == []
    assert len(findings["other"]) == 3, findings["other"]
