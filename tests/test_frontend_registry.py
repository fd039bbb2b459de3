"""The front-end registry is the one list of kinds: rules say `applies_to: run` for every
run-config kind, a new front end needs no rule file touched, and loading the list
imports no parser (hardrun run and hardrun audit start-up are benchmarked)."""
import subprocess
import sys
from pathlib import Path

import pytest

from hardrun.audit import rules
from hardrun.audit.engine import AuditOptions, audit_text
from hardrun.errors import HardrunError, RuleError
from hardrun.frontends import detect_kind, registry
from hardrun.frontends.detect import Peek, detect_kubernetes

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
SOCKET_AND_PRIVILEGED = ("docker run --privileged -v /var/run/docker.sock:/var/run/docker.sock "
                         "alpine:3.20\n")


def _ids(text, kind):
    return {f.rule for f in audit_text(text, kind, "x", AuditOptions()) if not f.suppressed}


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
    assert "HR2001" not in found                   # privileged: its rule lists the kinds it judges
    assert {"HR2001", "HR2002"} <= _ids(SOCKET_AND_PRIVILEGED, "docker-run")   # control


def test_without_a_registry_entry_a_kind_is_refused():
    rules.all_rules.cache_clear()
    with pytest.raises(HardrunError, match="no front end for kind 'fake'"):
        _ids(SOCKET_AND_PRIVILEGED, "fake")


def test_run_stands_for_every_run_kind_and_listed_kinds_stay_as_listed():
    every = rules.all_rules()
    assert every["HR2002"].applies_to == registry.RUN_KINDS
    assert every["HR0001"].applies_to == registry.KINDS
    assert every["HR3007"].applies_to == ("kubernetes",)
    assert every["HR1001"].model == registry.BUILD and every["HR2002"].model == registry.RUN


def _spells_out_every_run_kind(applies_to) -> bool:
    return set(registry.RUN_KINDS) <= set(applies_to)


def test_no_rule_file_spells_out_every_run_kind():
    import yaml
    spelled_out = [path.name for path in sorted(RULES_DIR.glob("HR*.yaml"))
                   if _spells_out_every_run_kind(yaml.safe_load(path.read_text())["applies_to"])]
    assert spelled_out == []
    # control: the list rule files used to carry is caught
    assert _spells_out_every_run_kind(["docker-run", "compose", "kubernetes", "oci", "hardrun"])


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
