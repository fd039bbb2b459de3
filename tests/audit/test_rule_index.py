"""The index of which check modules judge which kind (hardrun/audit/checks/index.py):
generated from the rule files and every check module, so it cannot go stale, and an
audit imports only the check modules of the kinds it reads."""
import json
import os
import subprocess
import sys

from hardrun.audit import rules
from hardrun.audit.checks import MODULES
from hardrun.frontends import registry
from tests.helpers import hardrun_env

INDEX = os.path.join(os.path.dirname(rules.__file__), "checks", "index.py")
CHECKS = "hardrun.audit.checks."


def test_the_index_is_what_importing_every_check_module_gives():
    with open(INDEX, encoding="utf-8") as stream:
        written = stream.read()
    assert written == rules.index_source(), \
        "hardrun/audit/checks/index.py is stale: regenerate it with `python -m hardrun.audit.rules`"


def test_the_index_names_every_kind_and_every_check_module():
    from hardrun.audit.checks.index import KINDS, MODELS
    assert tuple(KINDS) == registry.KINDS
    assert {name for modules, _ in KINDS.values() for name in modules} == set(MODULES)
    assert sorted(kind for kinds in MODELS.values() for kind in kinds) == sorted(registry.KINDS)


def _imported_after_audit(tmp_path, name, text):
    """The check modules, the front ends and whether PyYAML a new process imported to audit `text`."""
    target = tmp_path / name
    target.write_text(text)
    code = ("import io, contextlib, sys\nfrom hardrun.cli.audit import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main(['-f', 'json', {str(target)!r}])\n"
            "print(__import__('json').dumps(sorted(sys.modules)))")
    env = hardrun_env({"XDG_CACHE_HOME": str(tmp_path / "cache")})
    for _ in range(2):      # the second with the cache of parsed rule files filled, as users run
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    modules = json.loads(result.stdout)
    checks = {m[len(CHECKS):] for m in modules if m.startswith(CHECKS) and "." not in m[len(CHECKS):]}
    return (checks - {"index", "buildutil"}, {m for m in modules if m.startswith("hardrun.frontends.")},
            "yaml" in modules)


def test_a_dockerfile_audit_imports_only_the_dockerfile_checks(tmp_path):
    checks, front_ends, yaml = _imported_after_audit(tmp_path, "Dockerfile", "FROM alpine:3.20\nUSER 10001\n")
    assert checks == {"build", "build_practices"}
    assert front_ends == {"hardrun.frontends.registry", "hardrun.frontends.detect", "hardrun.frontends.dockerfile"}
    assert not yaml


def test_a_kubernetes_audit_imports_no_dockerfile_image_or_seccomp_profile_checks(tmp_path):
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - {name: a, image: nginx}\n"
    checks, front_ends, yaml = _imported_after_audit(tmp_path, "pod.yaml", pod)
    assert checks == {"run", "policy"}
    assert "hardrun.frontends.dockerfile" not in front_ends and "hardrun.frontends.compose" not in front_ends
    assert yaml


def test_a_compose_audit_imports_the_run_checks_its_rules_need(tmp_path):
    checks, front_ends, _ = _imported_after_audit(tmp_path, "compose.yaml", "services:\n  web: {image: nginx}\n")
    assert checks == {"run", "policy", "seccomp_profile"}
    assert "hardrun.frontends.dockerfile" not in front_ends


def test_every_rule_is_still_listed_and_every_check_registered_with_all_modules():
    registered = rules.checks()
    listed = rules.all_rules()
    assert {rule_id for rule_id in listed if rule_id in registered} == set(registered)
    from hardrun.audit.checks.index import KINDS
    assert {rule_id for _, ids in KINDS.values() for rule_id in ids} == set(registered)
