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
from tests.policy.test_pss import CASES, RESTRICTED_POD, verdict

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
     "    reason: x\n", "scoped by files or images cannot be exported"),
    ("version: 1\nextends: baseline\nexemptions:\n  - rule: HR2001\n    services: ['app']\n"
     "    reason: x\n", "scope it to whole objects"),
    ("version: 1\nextends: baseline\nrules: {HR2014: error}\n", "rules HR2014 have no admission control"),
])
def test_what_cannot_be_exported_is_an_error(policy_text, message, tmp_path):
    (tmp_path / "p.yaml").write_text(policy_text)
    for target in ("validating-admission-policy", "kyverno"):
        result = run_hardrun("export", "--to", target, "--policy", "p.yaml", cwd=tmp_path)
        assert result.returncode == 1 and message in result.stderr and result.stdout == ""
        assert "Traceback" not in result.stderr


def test_admission_targets_refuse_run_config_options(tmp_path):
    result = run_hardrun("export", "--to", "kyverno", "--policy", "baseline", "--image", "nginx")
    assert result.returncode == 1 and "do not apply" in result.stderr
