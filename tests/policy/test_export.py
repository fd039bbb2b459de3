"""`hardrun export`: each target carries the policy's run requirements; the OCI config
is valid against the OCI runtime-spec schema; what is exported passes the gate of the
policy it came from."""
import json
from pathlib import Path

import pytest
import yaml

from hardrun.frontends.hardrun_config import parse_run_config
from hardrun.policy import gate_run, load_policy
from hardrun.policy.export import export_spec, to_compose, to_docker_run, to_kubernetes, to_oci
from hardrun.spec.seccomp_portable import for_libseccomp
from hardrun.audit.formats.json import render_json
from tests.helpers import DATA, run_hardrun

CONFIG = """apiVersion: hardrun/v1
kind: Run
name: web
image: nginx:1.27@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
command: [nginx, -g, daemon off;]
user: "101:101"
capabilities: {add: [NET_BIND_SERVICE]}
mounts:
  - {type: tmpfs, target: /var/cache/nginx}
limits: {memory: 256m, pids: 128}
"""


def oci_validator():
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4
    folder = DATA / "oci-runtime-spec-schema"
    resources = []
    for path in folder.glob("*.json"):
        resource = Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT4)
        resources.append((path.name, resource))
        resources.append((path.resolve().as_uri(), resource))
    root = json.loads((folder / "config-schema.json").read_text())
    registry = Registry().with_resources(resources)
    return jsonschema.Draft4Validator(root, registry=registry)


@pytest.mark.parametrize("policy_name", ["default", "baseline", "restricted", "strict"])
def test_oci_export_is_valid_against_the_oci_schema(policy_name):
    spec = export_spec(load_policy(policy_name), parse_run_config(CONFIG, "run.yaml")[0])
    document = to_oci(spec)
    errors = sorted(oci_validator().iter_errors(document), key=str)
    assert not errors, errors[0].message


@pytest.mark.parametrize("fields,expected", [
    ({"privileged": True}, 41),                                     # every capability
    ({"cap_add": ("ALL",), "cap_drop": ("SYS_ADMIN",)}, 40),        # all but the dropped
    ({"cap_drop": ("ALL",), "cap_add": ("NET_BIND_SERVICE",)}, 1),  # only the added
    ({"cap_drop": ("NET_RAW",)}, 13),                               # Docker's 14 less one
])
def test_oci_export_keeps_the_capabilities_docker_would(fields, expected):
    from hardrun.spec.run import RunSpec
    document = to_oci(RunSpec(kind="hardrun", user="1000", **fields))
    assert len(document["process"]["capabilities"]["bounding"]) == expected


def test_oci_export_does_not_empty_a_passed_through_variable():
    """`--env TOKEN` takes the caller's value at run time: the static config.json must not
    set it to the empty string (the other targets keep it passed through)."""
    from hardrun.spec.run import EnvVar, RunSpec
    spec = RunSpec(kind="hardrun", env=(EnvVar("TOKEN", None), EnvVar("MODE", "prod"), EnvVar("EMPTY", "")))
    env = to_oci(spec)["process"]["env"]
    assert "MODE=prod" in env and "EMPTY=" in env
    assert not any(entry.startswith("TOKEN") for entry in env)
    assert "--env TOKEN " in to_docker_run(spec)                 # control: docker-run passes it through


def test_oci_schema_rejects_a_broken_config():
    spec = export_spec(load_policy("restricted"))
    document = to_oci(spec)
    document["process"]["user"]["uid"] = "root"
    assert not oci_validator().is_valid(document)


def test_restricted_requirements_reach_every_target():
    spec = export_spec(load_policy("restricted"))
    flags = to_docker_run(spec)
    for flag in ("--cap-drop=ALL", "--security-opt no-new-privileges=true", "--read-only",
                 "--user 65534:65534", "--network none"):
        assert flag in flags
    service = to_compose(spec)["services"]["app"]
    assert service["cap_drop"] == ["ALL"] and service["read_only"] is True
    assert "no-new-privileges:true" in service["security_opt"]
    pod = to_kubernetes(spec)["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = pod["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    oci = to_oci(spec)
    assert oci["process"]["noNewPrivileges"] is True and oci["root"]["readonly"] is True
    assert oci["process"]["capabilities"]["bounding"] == []
    assert {"type": "user"} in oci["linux"]["namespaces"]


def test_config_export_keeps_its_settings():
    spec = export_spec(load_policy("restricted"), parse_run_config(CONFIG, "run.yaml")[0])
    oci = to_oci(spec)
    assert oci["process"]["user"] == {"uid": 101, "gid": 101}
    assert oci["process"]["capabilities"]["effective"] == ["CAP_NET_BIND_SERVICE"]
    assert oci["process"]["capabilities"]["ambient"] == ["CAP_NET_BIND_SERVICE"]
    assert oci["linux"]["resources"] == {"memory": {"limit": 256 * 1024 ** 2}, "pids": {"limit": 128}}
    assert oci["process"]["args"] == ["nginx", "-g", "daemon off;"]
    pod = to_kubernetes(spec)
    assert pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] == ["NET_BIND_SERVICE"]


@pytest.mark.parametrize("policy_name", ["baseline", "restricted", "strict"])
def test_exported_requirements_pass_the_policy_gate(policy_name):
    policy = load_policy(policy_name)
    for source in (None, parse_run_config(CONFIG, "run.yaml")[0]):
        spec = export_spec(policy, source)
        verdict, findings, _ = gate_run(spec, policy)
        assert verdict.allowed and not verdict.warned, [f.message for f in findings]


def test_export_cli_writes_files_and_the_seccomp_profile(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}))
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG + f"security:\n  seccomp: {profile}\n")
    out = tmp_path / "pod.yaml"
    written = tmp_path / "web-seccomp.json"
    result = run_hardrun("export", "--to", "kubernetes", "--policy", "restricted",
                         "--config", str(config), "--seccomp-out", str(written), "-o", str(out))
    assert result.returncode == 0, result.stderr
    pod = yaml.safe_load(out.read_text())
    assert pod["spec"]["securityContext"]["seccompProfile"] == {
        "type": "Localhost", "localhostProfile": "web-seccomp.json"}
    assert json.loads(written.read_text())["defaultAction"] == "SCMP_ACT_ERRNO"


def test_export_cli_bad_config_is_one_line_error(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nusr: root\n")
    result = run_hardrun("export", "--to", "oci", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}: line 3, column 1: unknown key 'usr'" in result.stderr
    assert "Traceback" not in result.stderr


PINNED = "alpine:3.20@sha256:" + "0123456789abcdef" * 4
TARGET_FILES = {"docker-run": "run.sh", "compose": "compose.yaml", "kubernetes": "pod.yaml",
                "oci": "config.json"}


class Audited:
    def __init__(self, report, policy):
        self.returncode = report.exit_code(policy.fail_on)
        self.stdout = render_json(report)


def export_then_audit(tmp_path, target, policy_name, *source):
    """What `hardrun export --to TARGET --policy P [--image|--config]` writes, then
    `hardrun audit --policy P` of that file (library calls; the CLI is tested below)."""
    from hardrun.api import audit_with_policy
    from hardrun.frontends.hardrun_config import read_run_config
    from hardrun.policy.export import export
    options = dict(zip(source[::2], source[1::2]))
    policy = load_policy(policy_name)
    config = read_run_config(options["--config"]) if "--config" in options else None
    out = tmp_path / TARGET_FILES[target]
    text = export(target, export_spec(policy, config, options.get("--image")))
    out.write_text(("#!/bin/sh\n" if target == "docker-run" else "") + text)
    return out, Audited(*audit_with_policy([str(out)], policy))


def test_export_cli_round_trip(tmp_path):
    out = tmp_path / "compose.yaml"
    result = run_hardrun("export", "--to", "compose", "--policy", "restricted", "--image", PINNED,
                         "--output", str(out))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert run_hardrun("audit", "--policy", "restricted", str(out)).returncode == 0
    assert run_hardrun("audit", "--policy", "restricted", "--kind", "compose", "-",
                       input=out.read_text()).returncode == 0


@pytest.mark.parametrize("target", list(TARGET_FILES))
@pytest.mark.parametrize("policy", ["default", "baseline", "restricted", "strict"])
def test_round_trip_policy_export_passes_the_audit(tmp_path, target, policy):
    out, audited = export_then_audit(tmp_path, target, policy, "--image", PINNED)
    document = json.loads(audited.stdout)
    assert document["files"] == [{"path": str(out), "kind": target}]
    assert audited.returncode == 0, [(f["rule"], f["message"]) for f in document["findings"]]


@pytest.mark.parametrize("target", list(TARGET_FILES))
@pytest.mark.parametrize("policy", ["baseline", "restricted", "strict"])
def test_round_trip_config_export_passes_the_audit(tmp_path, target, policy):
    config = tmp_path / "web.hardrun.yaml"
    config.write_text(CONFIG.replace("nginx:1.27@sha256:" + "a" * 64, PINNED))
    _, audited = export_then_audit(tmp_path, target, policy, "--config", str(config))
    document = json.loads(audited.stdout)
    assert audited.returncode == 0, [(f["rule"], f["message"]) for f in document["findings"]]


@pytest.mark.parametrize("target", list(TARGET_FILES))
def test_round_trip_keeps_a_violation_visible(tmp_path, target):
    """Export does not launder: a config the policy forbids exports into a file the same
    policy's audit fails."""
    config = tmp_path / "bad.hardrun.yaml"
    config.write_text(CONFIG.replace("NET_BIND_SERVICE", "SYS_ADMIN"))
    _, audited = export_then_audit(tmp_path, target, "baseline", "--config", str(config))
    rules = {f["rule"] for f in json.loads(audited.stdout)["findings"]}
    assert audited.returncode == 1 and "HR3001" in rules


def test_oci_export_embeds_the_default_seccomp_profile_for_its_capabilities():
    spec = export_spec(load_policy("restricted"), parse_run_config(CONFIG, "run.yaml")[0])
    seccomp = to_oci(spec)["linux"]["seccomp"]
    allowed = {name for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
               for name in rule["names"]}
    assert "read" in allowed and "mount" not in allowed          # mount needs CAP_SYS_ADMIN
    admin = to_oci(spec.evolve(cap_add=("SYS_ADMIN",)))["linux"]["seccomp"]
    assert "mount" in {n for r in admin["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}


def test_seccomp_out_writes_the_builtin_profile_as_libseccomp_applies_it(tmp_path):
    written = tmp_path / "hardrun-default.json"
    result = run_hardrun("export", "--to", "kubernetes", "--policy", "restricted",
                         "--seccomp-out", str(written))
    assert result.returncode == 0, result.stderr
    profile = json.loads(written.read_text())
    builtin = json.loads((Path("hardrun/data/seccomp/default.json")).read_text())
    assert profile == for_libseccomp(builtin) and profile != builtin
    pod = yaml.safe_load(result.stdout)
    assert pod["spec"]["securityContext"]["seccompProfile"] == {
        "type": "Localhost", "localhostProfile": "hardrun-default.json"}


def _oci_facts(document: dict) -> dict:
    """What hardrun promises in an OCI config, whichever command wrote it: the version,
    the mounts, the process's identity and privileges, the namespaces and id maps, the
    kernel paths (less the host's own thermal_throttle paths the runtime adds)."""
    process, linux = document["process"], document["linux"]
    return {
        "ociVersion": document["ociVersion"], "mounts": document["mounts"],
        "root.readonly": document["root"]["readonly"],
        "user": (process["user"]["uid"], process["user"]["gid"]), "args": process["args"],
        "cwd": process["cwd"], "PATH": [v for v in process["env"] if v.startswith("PATH=")],
        "capabilities": process["capabilities"], "noNewPrivileges": process["noNewPrivileges"],
        "rlimits": process.get("rlimits"),
        **{key: linux.get(key) for key in ("namespaces", "uidMappings", "gidMappings", "readonlyPaths")},
        "maskedPaths": [p for p in linux["maskedPaths"] if not p.endswith("/thermal_throttle")],
    }


def test_dry_run_and_oci_export_write_the_same_config(tmp_path):
    """`hardrun run --dry-run` and `hardrun export --to oci` go through one writer: for one
    spec they agree on every fact hardrun promises, and both are valid OCI 1.0.2 configs.
    The control: a spec that differs in one capability gives a different export, so the
    comparison is not blind."""
    from hardrun.runtime.config import resolve, to_oci as dry_run
    from hardrun.spec.run import Mount, RunSpec, Ulimit
    spec = RunSpec(kind="hardrun", user="1000:1000", command=("/bin/true",), cap_drop=("ALL",),
                   cap_add=("NET_BIND_SERVICE",), no_new_privileges=True, read_only_root=True,
                   mounts=(Mount("bind", "/data", source=str(tmp_path), read_only=True),
                           Mount("bind", "/logs", source=str(tmp_path), options=("noexec",)),
                           Mount("tmpfs", "/cache", options=("size=1m",)), Mount("tmpfs", "/var/cache"),
                           Mount("tmpfs", "/seed", options=("ro", "mode=755"))),
                   ulimits=(Ulimit("nofile", 1024, 2048),))
    planned, exported = dry_run(resolve(spec)), to_oci(spec)
    for document in (planned, exported):
        errors = sorted(oci_validator().iter_errors(document), key=str)
        assert not errors, errors[0].message
    assert planned["ociVersion"] == "1.0.2"
    assert _oci_facts(planned) == _oci_facts(exported)
    assert _oci_facts(to_oci(spec.evolve(cap_add=("NET_BIND_SERVICE", "KILL")))) != _oci_facts(planned)


def test_the_example_profile_for_other_runtimes_is_the_current_export():
    """examples/seccomp/hardrun-default.json (HR2030's good example, and what README points
    Docker users to) is what `hardrun export --seccomp-out` writes today, not a stale copy
    (control: it is not the raw built-in profile, which libseccomp reads differently)."""
    from hardrun.policy.export import default_seccomp_profile, seccomp_profile_data
    example = json.loads((Path(__file__).resolve().parents[2] / "examples" / "seccomp"
                          / "hardrun-default.json").read_text())
    assert example == seccomp_profile_data(export_spec(load_policy("default"), None, None))
    assert example != default_seccomp_profile()
