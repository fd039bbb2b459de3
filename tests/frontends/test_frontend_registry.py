"""The front-end registry is the one list of kinds: rules say `applies_to: run` for every
run-config kind (or `{run-except: [kinds]}`), a new front end needs no rule file touched,
and loading the list imports no parser (hardrun run and hardrun audit start-up are benchmarked)."""
import subprocess
import sys
from pathlib import Path

import pytest

from hardrun.audit import rules
from hardrun.audit.engine import AuditOptions, audit_text
from hardrun.errors import HardrunError, RuleError
from hardrun.frontends import detect_kind, registry
from hardrun.frontends.detect import Peek, detect_kubernetes

RULES_DIR = Path(__file__).resolve().parent.parent.parent / "rules"
SOCKET_AND_PRIVILEGED = ("docker run --privileged -v /var/run/docker.sock:/var/run/docker.sock "
                         "alpine:3.20\n")


def _ids(text, kind):
    return {f.rule for f in audit_text(text, kind, "x", AuditOptions()) if not f.suppressed}


# What the seven rules that name run kinds listed by hand before `run-except`.
_OLD_HAND_LISTS = {
    "HR2001": ["docker-run", "compose", "kubernetes", "hardrun"],
    "HR2004": ["docker-run", "compose", "kubernetes"],
    "HR2013": ["docker-run", "compose", "kubernetes", "hardrun"],
    "HR2015": ["docker-run", "compose", "oci", "hardrun"],
    "HR2017": ["docker-run", "compose", "kubernetes", "hardrun"],
    "HR2018": ["docker-run", "compose", "kubernetes", "hardrun"],
    "HR2019": ["docker-run", "compose", "kubernetes", "hardrun"],
}


@pytest.fixture
def fake_run_front_end(monkeypatch):
    """A RUN front end `fake` added to the registry only (it reads docker run lines)."""
    fake = registry.FrontEnd("fake", registry.RUN, "hardrun.frontends.docker_run:parse", detect=())
    front_ends = registry.FRONT_ENDS + (fake,)
    monkeypatch.setattr(registry, "FRONT_ENDS", front_ends)
    monkeypatch.setattr(registry, "KINDS", registry.KINDS + ("fake",))
    monkeypatch.setattr(registry, "RUN_KINDS", registry.RUN_KINDS + ("fake",))
    monkeypatch.setattr(registry, "_BY_KIND", {**registry._BY_KIND, "fake": fake})
    rules.all_rules.cache_clear()
    yield
    rules.all_rules.cache_clear()


def test_a_new_run_front_end_is_judged_by_every_run_rule_without_touching_a_rule_file(fake_run_front_end):
    found = _ids(SOCKET_AND_PRIVILEGED, "fake")
    assert "HR2002" in found                       # socket mount: a rule with `applies_to: run`
    assert "HR2001" in found                       # privileged: `applies_to: run`
    assert {"HR2001", "HR2002"} <= _ids(SOCKET_AND_PRIVILEGED, "docker-run")   # control
    # control: the list HR2001 carried by hand, which left the new kind out, is refused
    with pytest.raises(RuleError, match="run kinds by hand"):
        rules._applies_to(Path("HR2001.yaml"), _OLD_HAND_LISTS["HR2001"])


def test_without_a_registry_entry_a_kind_is_refused():
    rules.all_rules.cache_clear()
    with pytest.raises(HardrunError, match="no front end for kind 'fake'"):
        _ids(SOCKET_AND_PRIVILEGED, "fake")


def test_run_stands_for_every_run_kind_and_listed_kinds_stay_as_listed():
    every = rules.all_rules()
    assert every["HR2002"].applies_to == registry.RUN_KINDS
    assert every["HR0001"].applies_to == registry.FILE_KINDS    # images hold no inline suppressions
    assert every["HR3007"].applies_to == ("kubernetes",)
    assert every["HR1001"].model == registry.BUILD and every["HR2002"].model == registry.RUN


@pytest.mark.parametrize("left_out", registry.RUN_KINDS)
def test_a_rule_file_listing_every_run_kind_but_one_by_hand_is_refused(left_out):
    by_hand = [kind for kind in registry.RUN_KINDS if kind != left_out]
    count = len(registry.RUN_KINDS)
    refused = rf"HR9999.yaml: applies_to lists {count - 1} of the {count} run kinds by hand"
    with pytest.raises(RuleError, match=refused):
        rules._applies_to(Path("HR9999.yaml"), ["dockerfile"] + by_hand)
    # control: the same kinds written with the exclusion form load
    assert set(rules._applies_to(Path("HR9999.yaml"), {"run-except": [left_out]})) == set(by_hand)


@pytest.mark.parametrize("rule_id", sorted(_OLD_HAND_LISTS))
def test_the_old_hand_lists_are_refused_and_the_rule_files_keep_their_kinds(rule_id):
    with pytest.raises(RuleError, match="run kinds by hand"):
        rules._applies_to(Path(f"{rule_id}.yaml"), _OLD_HAND_LISTS[rule_id])
    # HR2001 judges OCI configs since the OCI front end recognises a privileged bundle
    widened = {"HR2001": {"oci"}}.get(rule_id, set())
    assert set(rules.all_rules()[rule_id].applies_to) == set(_OLD_HAND_LISTS[rule_id]) | widened


def test_run_except_stands_for_every_run_kind_but_those_in_registry_order():
    expand = lambda written: rules._applies_to(Path("HR9999.yaml"), written)   # noqa: E731
    assert expand({"run-except": ["oci"]}) == tuple(k for k in registry.RUN_KINDS if k != "oci")
    assert expand({"run-except": "oci"}) == expand({"run-except": ["oci"]})
    assert expand(["dockerfile", {"run-except": ["oci", "hardrun"]}]) == (
        "dockerfile",) + tuple(k for k in registry.RUN_KINDS if k not in ("oci", "hardrun"))
    assert expand(["kubernetes"]) == ("kubernetes",)           # control: a short list stays as listed


@pytest.mark.parametrize("written", [
    {"run-except": []}, {"run-except": ["images"]}, {"run-except": ["dockerfile"]},
    {"run-except": list(registry.RUN_KINDS)}, {"run-except": ["oci"], "also": 1},
    {"run-except": [["oci"]]}, {"run_except": ["oci"]}, 7,
])
def test_a_malformed_applies_to_is_one_error_naming_the_file(written):
    with pytest.raises(RuleError, match="HR9999.yaml.*applies_to"):
        rules._applies_to(Path("HR9999.yaml"), written)


def test_an_unknown_kind_in_applies_to_names_the_file():
    with pytest.raises(RuleError, match="unknown kinds in applies_to: \\['images'\\]"):
        rules._applies_to(Path("HR9999.yaml"), ["run", "images"])
    assert rules._applies_to(Path("HR9999.yaml"), ["oci", "run"])[0] == "oci"   # control


def test_every_registered_function_resolves():
    for front_end in registry.FRONT_ENDS:
        references = [front_end.parse, front_end.claims, front_end.sniff]
        references += [reference for _, reference in front_end.detect]
        for reference in filter(None, references):
            assert callable(registry.resolve(reference)), reference
    with pytest.raises(AttributeError):                                   # control
        registry.resolve("hardrun.frontends.detect:no_such_detector")


def test_detectors_run_in_step_order(tmp_path):
    config = tmp_path / "app.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nimage: alpine:3.20\n")
    assert detect_kind(str(config)) == "hardrun"
    # control: the Kubernetes detector, asked alone, would have taken it
    assert detect_kubernetes(config.name, Peek(str(config), None)) == "kubernetes"
    kinds = [kind for kind, _ in registry.detectors()]
    assert kinds.index("hardrun") < kinds.index("kubernetes") and kinds[-1] == "docker-run"


_LOADED_FRONT_ENDS = ("import sys, hardrun.frontends.registry as r\n"
                      "{}\n"
                      "print(sorted(m for m in sys.modules if m.startswith('hardrun.frontends.')))")


def _front_end_modules_loaded(extra: str = "") -> str:
    result = subprocess.run([sys.executable, "-c", _LOADED_FRONT_ENDS.format(extra)],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_loading_the_registry_imports_no_front_end():
    assert _front_end_modules_loaded() == "['hardrun.frontends.registry']"
    # control: resolving a parser does import its module
    assert "hardrun.frontends.oci" in _front_end_modules_loaded("r.resolve(r.front_end('oci').parse)")
