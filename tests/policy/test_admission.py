"""`hardrun export --to validating-admission-policy|kyverno`: the cluster refuses at
admission what `hardrun audit --policy` refuses.

No cluster runs here: the exported CEL is evaluated with a CEL implementation
(common-expression-language, the test extra) on the Pod Security Standards table of
test_pss.py, each pod also as a Deployment and a CronJob, and every verdict must equal
`hardrun audit --policy`'s on the same manifest. Both objects' shape is validated against
the schemas in tests/data/admission (see PROVENANCE.md there).
"""
import copy
import json
from functools import lru_cache
from pathlib import Path

import cel
import jsonschema
import pytest
import yaml

from hardrun.policy import load_policy, load_policy_text
from hardrun.policy.admission import CONTROLS, gating_rules, kyverno_policy, validating_admission_policy
from tests.helpers import run_hardrun
from tests.policy.test_pss import CASES, RESTRICTED_POD, both, verdict

SCHEMAS = Path(__file__).resolve().parent.parent / "data" / "admission"
KINDS = ("Pod", "Deployment", "CronJob")


def as_kind(pod: dict, kind: str, name: str = "web") -> dict:
    """The pod as a `kind` object named `name` (its metadata on the pod template)."""
    pod = copy.deepcopy(pod)
    if kind == "Pod":
        pod["metadata"]["name"] = name
        return pod
    template = {"metadata": {k: v for k, v in pod["metadata"].items() if k != "name"}, "spec": pod["spec"]}
    if kind == "Deployment":
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"selector": {"matchLabels": {"app": name}}, "template": template}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}}


@lru_cache(maxsize=None)
def program(expression: str):
    return cel.compile(expression)


def evaluate(variables: list, expressions: list, obj: dict) -> list[str]:
    """The messages of the expressions `obj` fails (CEL, variables first, in order)."""
    values: dict = {}
    for variable in variables:
        values[variable["name"]] = program(variable["expression"]).execute({"object": obj, "variables": values})
    return [item["message"] for item in expressions
            if program(item["expression"]).execute({"object": obj, "variables": values}) is not True]


def vap_failures(documents, obj) -> list[str]:
    policy = documents[0]["spec"]
    return evaluate(policy["variables"], policy["validations"], obj)


def kyverno_failures(cluster_policy, obj) -> list[str]:
    failed = []
    for rule in cluster_policy["spec"]["rules"]:
        if _kyverno_matches(rule.get("exclude"), obj) or not _kyverno_matches(rule["match"], obj):
            continue
        failed += evaluate(rule["validate"]["cel"]["variables"], rule["validate"]["cel"]["expressions"], obj)
    return failed


def _kyverno_matches(block, obj) -> bool:
    import fnmatch
    if not block:
        return False
    return any(obj["kind"] in f["resources"]["kinds"] and all(
        fnmatch.fnmatchcase(obj["metadata"]["name"], name) for name in f["resources"].get("names", ["*"])[:1])
        for f in block["any"])


@pytest.fixture(scope="module", params=["baseline", "restricted"])
def exported(request):
    """(level, the VAP documents, the Kyverno ClusterPolicy) as the command prints them."""
    level = request.param
    vap = run_hardrun("export", "--to", "validating-admission-policy", "--policy", level)
    kyverno = run_hardrun("export", "--to", "kyverno", "--policy", level)
    assert vap.returncode == 0 and kyverno.returncode == 0, vap.stderr + kyverno.stderr
    return level, list(yaml.safe_load_all(vap.stdout)), yaml.safe_load(kyverno.stdout)


@pytest.mark.parametrize("kind", KINDS)
def test_admission_verdicts_equal_the_audit_on_every_pss_case(exported, kind):
    level, documents, cluster_policy = exported
    mismatches = []
    for case, pod, baseline, restricted in CASES:
        obj = as_kind(pod, kind)
        expected = baseline if level == "baseline" else restricted
        audit_allows, findings = verdict(obj, level)
        vap_allows = not vap_failures(documents, obj)
        kyverno_allows = not kyverno_failures(cluster_policy, obj)
        if not (audit_allows == vap_allows == kyverno_allows == expected):
            mismatches.append((case, expected, audit_allows, vap_allows, kyverno_allows))
    assert mismatches == []


def test_every_control_is_exercised_both_ways(exported):
    """Each validation is failed by some case and passed by the compliant pod: none is
    vacuous, and none refuses everything."""
    level, documents, _ = exported
    compliant = as_kind({**RESTRICTED_POD, "metadata": {"name": "web"}}, "Pod")
    assert vap_failures(documents, compliant) == []
    failed_by_some = set()
    for _, pod, _, _ in CASES:
        failed_by_some |= {message.split(":")[0] for message in vap_failures(documents, as_kind(pod, "Pod"))}
    rules = {rule.id for rule in gating_rules(load_policy(level))}
    assert failed_by_some == rules and rules <= set(CONTROLS)


def test_each_kyverno_rule_is_one_control_with_the_same_cel(exported):
    level, documents, cluster_policy = exported
    validations = documents[0]["spec"]["validations"]
    rules = cluster_policy["spec"]["rules"]
    assert [rule["name"].upper() for rule in rules] == [v["message"].split(":")[0] for v in validations] \
        == [rule.id for rule in gating_rules(load_policy(level))]
    for rule, validation in zip(rules, validations):
        (expression,) = rule["validate"]["cel"]["expressions"]
        assert expression == {"expression": validation["expression"], "message": validation["message"]}
        assert rule["validate"]["cel"]["variables"] == documents[0]["spec"]["variables"]
        assert set(rule["match"]["any"][0]["resources"]["kinds"]) >= set(KINDS)
    assert cluster_policy["spec"]["validationFailureAction"] == "Enforce"


def _schema(name):
    return json.loads((SCHEMAS / name).read_text())


def test_the_objects_have_the_kubernetes_shape(exported):
    _, documents, cluster_policy = exported
    policy, binding = documents
    jsonschema.validate(policy, _schema("validatingadmissionpolicy.json"))
    jsonschema.validate(binding, _schema("validatingadmissionpolicybinding.json"))
    jsonschema.validate(cluster_policy, _schema("kyverno-clusterpolicy.json"))
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    # control: the schemas are closed, a misspelt field fails
    broken = copy.deepcopy(policy)
    broken["spec"]["validations"][0]["expresion"] = "true"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _schema("validatingadmissionpolicy.json"))


EXEMPTING = """\
version: 1
extends: baseline
exemptions:
  - practice: privileged
    services: ["Deployment/web *"]
    reason: the node agent needs the host
  - rule: HR3003
    reason: host ports are managed by the network team
"""


def test_exemptions_become_match_exclusions_with_the_same_verdicts():
    policy = load_policy_text(EXEMPTING, "exempting.yaml")
    documents = validating_admission_policy(policy)
    cluster_policy = kyverno_policy(policy)
    privileged = {**RESTRICTED_POD, "spec": {**RESTRICTED_POD["spec"], "containers": [
        {"name": "app", "image": "nginx:1.27", "securityContext": {"privileged": True}}]}}
    host_port = {**RESTRICTED_POD, "spec": {**RESTRICTED_POD["spec"], "containers": [
        {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80, "hostPort": 80}]}]}}
    from hardrun.audit.engine import audit_text
    from hardrun.policy import audit_options
    from hardrun.policy.evaluate import failing
    table = [(privileged, "Deployment", "web", True), (privileged, "Deployment", "api", False),
             (privileged, "CronJob", "web", False), (host_port, "Pod", "any", True)]
    for pod, kind, name, allowed in table:
        obj = as_kind(pod, kind, name)
        findings = audit_text(yaml.safe_dump(obj), "kubernetes", "x.yaml", audit_options(policy))
        assert (not failing(findings, policy)) == allowed, (kind, name)
        assert (not vap_failures(documents, obj)) == allowed, (kind, name)
        assert (not kyverno_failures(cluster_policy, obj)) == allowed, (kind, name)
    assert "HR3003" not in {v["message"][:6] for v in documents[0]["spec"]["validations"]}
    assert cluster_policy["spec"]["rules"][0]["exclude"] == {
        "any": [{"resources": {"kinds": ["Deployment"], "names": ["web"]}}]}


@pytest.mark.parametrize("policy_text,message", [
    ("version: 1\nextends: baseline\nexemptions:\n  - rule: HR2001\n    files: ['k8s/*']\n"
     "    reason: x\n", "an exemption scoped by files cannot be exported to admission (an object there has no file"),
    ("version: 1\nextends: baseline\nexemptions:\n  - rule: HR2001\n    services: ['app']\n"
     "    reason: x\n", "scoped to containers (by image or container) cannot be exported for HR2001"),
    ("version: 1\nextends: restricted\nexemptions:\n  - rule: HR3009\n    images: ['nginx:*']\n"
     "    reason: x\n", "cannot be exported for HR3009: these rules also judge pod-level settings"),
    ("version: 1\nextends: baseline\nexemptions:\n  - rule: HR3003\n    images: ['nginx:[12]*']\n"
     "    reason: x\n", "exemption glob 'nginx:[12]*' cannot be exported to admission (use * and ? only)"),
    ("version: 1\nextends: baseline\nrules: {HR2016: error}\n", "rules HR2016 have no admission control"),
])
def test_what_cannot_be_exported_is_an_error(policy_text, message, tmp_path):
    (tmp_path / "p.yaml").write_text(policy_text)
    for target in ("validating-admission-policy", "kyverno"):
        result = run_hardrun("export", "--to", target, "--policy", "p.yaml", cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr and result.stdout == ""
        assert "Traceback" not in result.stderr


def test_admission_targets_refuse_run_config_options(tmp_path):
    result = run_hardrun("export", "--to", "kyverno", "--policy", "baseline", "--image", "nginx")
    assert result.returncode == 2 and "do not apply" in result.stderr


# ----------------------------------------------------------------- default and strict

# `default` and `strict` export once HR2016 is switched off (its secret heuristics have no
# exact CEL); every other gating rule of theirs is an admission control.
EXPORTABLE = {level: f"version: 1\nextends: {level}\nrules: {{HR2016: off}}\n" for level in ("default", "strict")}
DIGEST = "sha256:" + "0" * 64
# Compliant with strict (and so with default).
STRICT_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
    "spec": {
        "hostUsers": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "app", "image": f"nginx:1.27@{DIGEST}",
            "resources": {"limits": {"memory": "128Mi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
        }],
    },
}


def strict_pod(change=None, **spec_changes):
    document = copy.deepcopy(STRICT_POD)
    document["spec"].update(spec_changes)
    if change:
        change(document["spec"]["containers"][0], document["spec"])
    return document


def host_path(path, read_only=True, sub_path=None, mounted=True):
    def apply(c, s):
        s["volumes"] = [{"name": "host", "hostPath": {"path": path}}]
        if mounted:
            c["volumeMounts"] = [{"name": "host", "mountPath": "/host", "readOnly": read_only,
                                  **({"subPath": sub_path} if sub_path else {})}]
    return apply


def set_in(*keys, value):
    """Set container[keys…] = value (creating mappings on the way)."""
    def apply(c, s):
        node = c
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return apply


def drop(*keys):
    def apply(c, s):
        node = c
        for key in keys[:-1]:
            node = node[key]
        node.pop(keys[-1])
    return apply


def port(**fields):
    return lambda c, s: c.update(ports=[{"containerPort": 8080, **fields}])


def init_like_app(change):
    """An init container, the app's copy with `change` applied to it alone."""
    def apply(c, s):
        init = copy.deepcopy(c)
        init["name"] = "init"
        change(init, s)
        s["initContainers"] = [init]
    return apply


def memory(value):
    return set_in("resources", "limits", "memory", value=value)


def image(reference):
    return set_in("image", value=reference)


# (case, pod, the rules it fails under strict): both sides of every control added for
# default and strict; each rule's audit verdict must equal the admission one per rule.
RULE_CASES = [
    ("compliant", strict_pod(), set()),
    # HR2002 socket, HR2010 sensitive path, HR2011 writable hostPath (HR3002/HR3007 too:
    # restricted allows no hostPath volume at all)
    ("docker socket ro", strict_pod(host_path("/var/run/docker.sock")), {"HR2002", "HR3002", "HR3007"}),
    ("containerd dir rw", strict_pod(host_path("/run/containerd", read_only=False)),
     {"HR2002", "HR2011", "HR3002", "HR3007"}),
    ("socket by subPath", strict_pod(host_path("/var/run/", sub_path="docker.sock")), {"HR2002", "HR3002", "HR3007"}),
    ("socket dir not normalised", strict_pod(host_path("//var/./run//crio/")), {"HR2002", "HR3002", "HR3007"}),
    ("user socket dir", strict_pod(host_path("/run/user/1000/podman/.")), {"HR2002", "HR3002", "HR3007"}),
    ("socket file anywhere", strict_pod(host_path("/srv/podman.sock")), {"HR2002", "HR3002", "HR3007"}),
    ("socket name inside a name", strict_pod(host_path("/srv/docker.sock.d")), {"HR3002", "HR3007"}),
    ("run subdirectory", strict_pod(host_path("/run/lock")), {"HR2010", "HR3002", "HR3007"}),
    ("host root", strict_pod(host_path("/", read_only=False)), {"HR2010", "HR2011", "HR3002", "HR3007"}),
    ("host root dotted", strict_pod(host_path("/./")), {"HR2010", "HR3002", "HR3007"}),
    ("etc ro", strict_pod(host_path("/etc")), {"HR2010", "HR3002", "HR3007"}),
    ("etc below, doubled slashes", strict_pod(host_path("//etc//ssl/.")), {"HR2010", "HR3002", "HR3007"}),
    ("kubelet dir rw", strict_pod(host_path("/var/lib/kubelet/pods", read_only=False)),
     {"HR2010", "HR2011", "HR3002", "HR3007"}),
    ("sensitive by subPath", strict_pod(host_path("/", sub_path="proc")), {"HR2010", "HR3002", "HR3007"}),
    ("etc-like name", strict_pod(host_path("/etcetera")), {"HR3002", "HR3007"}),
    ("docker-like dir", strict_pod(host_path("/var/lib/dockerd")), {"HR3002", "HR3007"}),
    ("variable path", strict_pod(host_path("/etc/$DIR")), {"HR3002", "HR3007"}),
    ("data rw", strict_pod(host_path("/srv/data", read_only=False)), {"HR2011", "HR3002", "HR3007"}),
    ("data ro", strict_pod(host_path("/srv/data")), {"HR3002", "HR3007"}),
    ("socket volume not mounted", strict_pod(host_path("/var/run/docker.sock", mounted=False)), {"HR3002", "HR3007"}),
    # HR2003 dangerous capabilities (HR3001: only NET_BIND_SERVICE may be added)
    ("SYS_ADMIN added", strict_pod(set_in("securityContext", "capabilities", "add", value=["SYS_ADMIN"])),
     {"HR2003", "HR3001", "HR2005"}),
    ("cap_sys_module added", strict_pod(set_in("securityContext", "capabilities", "add", value=["cap_sys_module"])),
     {"HR2003", "HR3001"}),
    ("NET_ADMIN added", strict_pod(set_in("securityContext", "capabilities", "add", value=["NET_ADMIN"])),
     {"HR2003", "HR3001"}),
    ("all added", strict_pod(set_in("securityContext", "capabilities", "add", value=["all"])), {"HR2003", "HR3001"}),
    ("CHOWN added", strict_pod(set_in("securityContext", "capabilities", "add", value=["CHOWN"])), {"HR3001"}),
    ("NET_BIND_SERVICE added", strict_pod(set_in("securityContext", "capabilities", "add",
                                                 value=["NET_BIND_SERVICE"])), set()),
    # HR2006 writable root
    ("root writable", strict_pod(set_in("securityContext", "readOnlyRootFilesystem", value=False)), {"HR2006"}),
    ("root unset", strict_pod(drop("securityContext", "readOnlyRootFilesystem")), {"HR2006"}),
    ("init root unset", strict_pod(init_like_app(drop("securityContext", "readOnlyRootFilesystem"))), {"HR2006"}),
    ("init root read-only", strict_pod(init_like_app(lambda c, s: None)), set()),
    # HR2013 hostPort on every interface, HR2019 remote-administration ports (HR3003:
    # baseline allows no hostPort)
    ("hostPort, no hostIP", strict_pod(port(hostPort=8080)), {"HR3003", "HR2013"}),
    ("hostPort on 0.0.0.0", strict_pod(port(hostPort=8080, hostIP="0.0.0.0")), {"HR3003", "HR2013"}),
    ("hostPort on ::", strict_pod(port(hostPort=8080, hostIP="::")), {"HR3003", "HR2013"}),
    ("hostPort on loopback", strict_pod(port(hostPort=8080, hostIP="127.0.0.1")), {"HR3003"}),
    ("containerPort only", strict_pod(port()), set()),
    ("ssh published", strict_pod(port(containerPort=22, hostPort=2222, hostIP="127.0.0.1")), {"HR3003", "HR2019"}),
    ("rdp host port", strict_pod(port(containerPort=8080, hostPort=3389, hostIP="127.0.0.1")), {"HR3003", "HR2019"}),
    ("docker API everywhere", strict_pod(port(containerPort=2375, hostPort=12375)), {"HR3003", "HR2013", "HR2019"}),
    ("ssh not published", strict_pod(port(containerPort=22)), set()),
    # HR2014 memory limit
    ("no resources", strict_pod(drop("resources")), {"HR2014"}),
    ("cpu limit only", strict_pod(set_in("resources", "limits", value={"cpu": "500m"})), {"HR2014"}),
    ("memory 0", strict_pod(memory("0")), {"HR2014"}),
    ("memory 0 as a number", strict_pod(memory(0)), {"HR2014"}),
    ("memory 0Mi", strict_pod(memory("0Mi")), {"HR2014"}),
    ("memory 999m", strict_pod(memory("999m")), {"HR2014"}),
    ("memory 0.5", strict_pod(memory("0.5")), {"HR2014"}),
    ("memory 5e-1", strict_pod(memory("5e-1")), {"HR2014"}),
    ("memory 1000m", strict_pod(memory("1000m")), set()),
    ("memory 0.5Ki", strict_pod(memory("0.5Ki")), set()),
    ("memory 1e9", strict_pod(memory("1e9")), set()),
    ("memory as a number", strict_pod(memory(134217728)), set()),
    ("init without memory", strict_pod(init_like_app(drop("resources"))), {"HR2014"}),
    # HR2017 tag, HR2018 digest (strict: every rule at error)
    ("no tag", strict_pod(image("nginx")), {"HR2017"}),
    ("latest", strict_pod(image("nginx:latest")), {"HR2017", "HR2018"}),
    ("registry port, no tag", strict_pod(image("localhost:5000/app")), {"HR2017"}),
    ("tag only", strict_pod(image("nginx:1.27")), {"HR2018"}),
    ("registry port and tag", strict_pod(image("localhost:5000/app:1.0")), {"HR2018"}),
    ("digest only", strict_pod(image(f"nginx@{DIGEST}")), set()),
    ("tag is a variable", strict_pod(image("nginx:${TAG}")), set()),
    # HR3010 the host's user namespace
    ("hostUsers true", strict_pod(hostUsers=True), {"HR3010"}),
    ("hostUsers unset", strict_pod(lambda c, s: s.pop("hostUsers")), set()),
]


@lru_cache(maxsize=None)
def _exportable(level):
    return load_policy_text(EXPORTABLE[level], f"{level}-exportable.yaml")


def audit_failures(obj, policy) -> set[str]:
    from hardrun.audit.engine import audit_text
    from hardrun.policy import audit_options
    from hardrun.policy.evaluate import failing
    findings = audit_text(yaml.safe_dump(obj), "kubernetes", "x.yaml", audit_options(policy))
    return {finding.rule for finding in failing(findings, policy)}


def rules_of(messages) -> set[str]:
    return {message.split(":")[0] for message in messages}


@pytest.fixture(scope="module", params=["default", "strict"])
def exported_level(request, tmp_path_factory):
    """(level, its exportable policy, the VAP documents, the Kyverno ClusterPolicy) as printed."""
    level = request.param
    directory = tmp_path_factory.mktemp(level)
    (directory / "p.yaml").write_text(EXPORTABLE[level])
    vap = run_hardrun("export", "--to", "validating-admission-policy", "--policy", "p.yaml", cwd=directory)
    kyverno = run_hardrun("export", "--to", "kyverno", "--policy", "p.yaml", cwd=directory)
    assert vap.returncode == 0 and kyverno.returncode == 0, vap.stderr + kyverno.stderr
    return level, _exportable(level), list(yaml.safe_load_all(vap.stdout)), yaml.safe_load(kyverno.stdout)


def _table():
    """Every case of both tables: the PSS cases and the cases of the added controls."""
    return [(case, pod) for case, pod, _, _ in CASES] + [(case, pod) for case, pod, _ in RULE_CASES]


@pytest.mark.parametrize("kind", KINDS)
def test_default_and_strict_admission_fails_the_rules_the_audit_fails(exported_level, kind):
    """Rule by rule: the controls a VAP and Kyverno fail equal the rules `hardrun audit
    --policy` fails, on every PSS case and every case of the added controls."""
    _, policy, documents, cluster_policy = exported_level
    mismatches = []
    for case, pod in _table():
        obj = as_kind(pod, kind)
        audit = audit_failures(obj, policy)
        vap = rules_of(vap_failures(documents, obj))
        kyverno = rules_of(kyverno_failures(cluster_policy, obj))
        if not audit == vap == kyverno:
            mismatches.append((case, sorted(audit), sorted(vap), sorted(kyverno)))
    assert mismatches == []


def test_the_added_controls_fail_what_the_table_says_under_strict():
    """The table's expectations hold for the audit (so the equality above is not vacuous)."""
    policy = _exportable("strict")
    wrong = [(case, sorted(audit_failures(as_kind(pod, "Pod"), policy)), sorted(expected))
             for case, pod, expected in RULE_CASES
             if audit_failures(as_kind(pod, "Pod"), policy) != expected]
    assert wrong == []


def test_every_default_and_strict_control_is_exercised_both_ways(exported_level):
    level, policy, documents, _ = exported_level
    assert vap_failures(documents, as_kind(STRICT_POD, "Pod")) == []
    failed_by_some = set()
    for _, pod in _table():
        failed_by_some |= rules_of(vap_failures(documents, as_kind(pod, "Pod")))
    rules = {rule.id for rule in gating_rules(policy)}
    assert failed_by_some == rules and rules <= set(CONTROLS)
    added = {"HR2002", "HR2003", "HR2006", "HR2010", "HR2011", "HR2013", "HR2014", "HR2017", "HR2019"}
    assert added | ({"HR2018", "HR3010"} if level == "strict" else set()) <= rules


def test_default_and_strict_objects_have_the_kubernetes_shape(exported_level):
    _, _, (policy, binding), cluster_policy = exported_level
    jsonschema.validate(policy, _schema("validatingadmissionpolicy.json"))
    jsonschema.validate(binding, _schema("validatingadmissionpolicybinding.json"))
    jsonschema.validate(cluster_policy, _schema("kyverno-clusterpolicy.json"))


@pytest.mark.parametrize("level", ["default", "strict"])
def test_default_and_strict_refuse_while_hr2016_is_on(level):
    for target in ("validating-admission-policy", "kyverno"):
        result = run_hardrun("export", "--to", target, "--policy", level)
        assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
        assert f"policy {level}: rules HR2016 have no admission control; HR2016: its secret heuristics" \
            in result.stderr


CONTAINER_EXEMPTING = """\
version: 1
extends: strict
rules: {HR2016: off}
exemptions:
  - rule: HR2006
    services: [sidecar]
    reason: the sidecar rewrites its own configuration
  - rule: HR2018
    images: ["registry.example/*"]
    reason: the internal registry's tags are immutable
  - practice: host-namespace
    services: ["Deployment/agent container *"]
    reason: the node agent watches the host's network
  - rule: HR2003
    services: [debug]
    images: ["nginx:*"]
    reason: the debugging sidecar traces the app
"""


def with_containers(*containers, init=()):
    """STRICT_POD with these containers (each STRICT_POD's app, renamed and changed)."""
    document = copy.deepcopy(STRICT_POD)
    made = []
    for name, change in containers + init:
        container = copy.deepcopy(STRICT_POD["spec"]["containers"][0])
        container["name"] = name
        change(container, document["spec"])
        made.append(container)
    document["spec"]["containers"] = made[:len(containers)]
    if init:
        document["spec"]["initContainers"] = made[len(containers):]
    return document


def unchanged(c, s):
    pass


def host_network(c, s):
    s["hostNetwork"] = True


def ptrace(c, s):
    c["securityContext"]["capabilities"]["add"] = ["SYS_PTRACE"]


# (case, pod, kind, name, the rules it fails): both sides of each container-scoped exemption.
EXEMPTION_CASES = [
    ("compliant", with_containers(("app", unchanged), ("sidecar", unchanged)), "Pod", "web", set()),
    ("sidecar root writable", with_containers(("app", unchanged), ("sidecar", drop("securityContext",
     "readOnlyRootFilesystem"))), "Deployment", "web", set()),
    ("sidecar init root writable", with_containers(("app", unchanged), init=(("sidecar", drop(
        "securityContext", "readOnlyRootFilesystem")),)), "CronJob", "web", set()),
    ("app root writable", with_containers(("app", drop("securityContext", "readOnlyRootFilesystem")),
                                          ("sidecar", unchanged)), "Deployment", "web", {"HR2006"}),
    ("internal image by tag", with_containers(("app", image("registry.example/app:1.0"))), "Pod", "web", set()),
    ("outside image by tag", with_containers(("app", image("ghcr.io/app:1.0"))), "Pod", "web", {"HR2018"}),
    ("the agent on the host network", with_containers(("app", host_network), ("sidecar", unchanged)),
     "Deployment", "agent", set()),
    ("another deployment on the host network", with_containers(("app", host_network)), "Deployment", "web",
     {"HR2007"}),
    ("the agent as a pod on the host network", with_containers(("app", host_network)), "Pod", "agent", {"HR2007"}),
    ("the agent with an init container on the host network", with_containers(
        ("app", host_network), init=(("init", unchanged),)), "Deployment", "agent", {"HR2007"}),
    ("debug nginx traces", with_containers(("app", unchanged), ("debug", ptrace)), "Pod", "web", {"HR3001"}),
    ("debug busybox traces", with_containers(("app", unchanged), ("debug", both(ptrace, image(
        f"busybox:1.36@{DIGEST}")))), "Pod", "web", {"HR2003", "HR3001"}),
    ("app nginx traces", with_containers(("app", ptrace)), "Pod", "web", {"HR2003", "HR3001"}),
]


@pytest.mark.parametrize("case,pod,kind,name,expected", EXEMPTION_CASES, ids=[c[0] for c in EXEMPTION_CASES])
def test_container_scoped_exemptions_give_the_audit_verdicts(case, pod, kind, name, expected):
    """Exemptions by image, by container name and by the containers of one object: each
    leaves out exactly the containers the audit exempts, in the VAP's CEL and Kyverno's."""
    policy = _container_exempting()
    obj = as_kind(pod, kind, name)
    assert audit_failures(obj, policy) == expected
    assert rules_of(vap_failures(validating_admission_policy(policy), obj)) == expected
    assert rules_of(kyverno_failures(kyverno_policy(policy), obj)) == expected


@lru_cache(maxsize=None)
def _container_exempting():
    return load_policy_text(CONTAINER_EXEMPTING, "container-exempting.yaml")


def test_container_scoped_exemptions_keep_the_kubernetes_shape():
    policy = _container_exempting()
    documents = validating_admission_policy(policy)
    jsonschema.validate(documents[0], _schema("validatingadmissionpolicy.json"))
    jsonschema.validate(kyverno_policy(policy), _schema("kyverno-clusterpolicy.json"))
    # control: without the exemptions the same objects fail
    strict = _exportable("strict")
    sidecar = as_kind(EXEMPTION_CASES[1][1], "Deployment")
    assert rules_of(vap_failures(validating_admission_policy(strict), sidecar)) == {"HR2006"}


TRUSTING = "version: 1\nextends: default\nrules: {HR2016: off}\ntrusted-registries: [ghcr.io/acme, docker.io/library]\n"
# (image, whether HR2017 fails it under TRUSTING): both sides of the registry allowlist.
REGISTRY_CASES = [
    ("ghcr.io/acme/app:1.0", False), ("GHCR.IO/acme/app/worker:1.0", False), (f"ghcr.io/acme/app@{DIGEST}", False),
    ("nginx:1.27", False), ("docker.io/library/nginx:1.27", False), ("index.docker.io/nginx:1.27", False),
    ("${REGISTRY}/app:1.0", False),
    ("ghcr.io/acme/app", True),             # trusted, but no tag
    ("ghcr.io/acmex/app:1.0", True), ("ghcr.io/other/app:1.0", True), ("acme/app:1.0", True),
    ("quay.io/acme/app:1.0", True), (f"quay.io/acme/app@{DIGEST}", True), ("localhost:5000/app:1.0", True),
    ("docker.io/acme/app:1.0", True),
]


@pytest.mark.parametrize("kind", KINDS)
def test_trusted_registries_are_written_into_the_cel(kind):
    policy = load_policy_text(TRUSTING, "trusting.yaml")
    documents, cluster_policy = validating_admission_policy(policy), kyverno_policy(policy)
    for reference, fails in REGISTRY_CASES:
        obj = as_kind(strict_pod(image(reference)), kind)
        expected = {"HR2017"} if fails else set()
        assert audit_failures(obj, policy) == expected, reference
        assert rules_of(vap_failures(documents, obj)) == expected, reference
        assert rules_of(kyverno_failures(cluster_policy, obj)) == expected, reference
