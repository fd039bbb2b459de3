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
from tests.conftest import DATA, run_hardrun

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
    assert result.returncode == 1
    assert f"{config}: line 3, column 1: unknown key 'usr'" in result.stderr
    assert "Traceback" not in result.stderr
