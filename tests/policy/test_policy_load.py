"""Loading policies: every malformed input is one error naming file, line and column and
saying what was expected; the built-in policies load; `extends` chains merge."""
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from hardrun.errors import HardrunError, ParseError, UsageError
from hardrun.policy import builtin_policies, load_policy, load_policy_text
from hardrun.policy.load import schema
from hardrun.parsing.validator import validate


def error_of(text, path="p.yaml"):
    with pytest.raises(ParseError) as caught:
        load_policy_text(text, path)
    return caught.value


@pytest.mark.parametrize("text,line,column,expected", [
    ("", 1, 1, "empty policy"),
    ("# only a comment\n", 1, 1, "empty policy"),
    ("{}\n", 1, 1, "missing required key 'version'"),
    ("version: 2\n", 1, 10, "expected 1, found 2"),
    ("version: 1\nfail-on: fatal\n", 2, 10, "expected one of 'error', 'warning', 'info'"),
    ("version: 1\nfailon: error\n", 2, 1, "unknown key 'failon'"),
    ("version: 1\nrules:\n  HR9999: off\n", 3, 3, "unknown rule HR9999"),
    ("version: 1\nrules:\n  hr3001: off\n", 3, 3, "a rule id such as HR2001"),
    ("version: 1\nrules:\n  HR3001: loud\n", 3, 11, "expected one of"),
    ("version: 1\npractices:\n  run-as-rooot: off\n", 3, 3, "unknown practice 'run-as-rooot'"),
    ("version: 1\ntrusted-registries: docker.io\n", 2, 21, "expected a list, found a string"),
    ("version: 1\nallowed-capabilities: [NET_BIND_SERVICE, SYS_FLY]\n", 2, 42, "unknown capability 'SYS_FLY'"),
    ("version: 1\nallowed-host-mounts:\n  - relative/path\n", 3, 5, "expected an absolute path"),
    ("version: 1\nallowed-host-mounts:\n  - {path: /srv, ro: true}\n", 3, 18, "unknown key 'ro'"),
    ("version: 1\nallowed-host-ports: [80, 70000]\n", 2, 26, "at most 65535"),
    ("version: 1\nruntime:\n  read-only-root: yes please\n", 3, 19, "expected true or false"),
    ("version: 1\nruntime:\n  seccomp: {requird: true}\n", 3, 13, "unknown key 'requird'"),
    ("version: 1\nruntime:\n  memory: lots\n", 3, 11, "a size such as 512m"),
    ("version: 1\nexemptions:\n  - rule: HR3001\n", 3, 5, "missing required key 'reason'"),
    ("version: 1\nexemptions:\n  - {reason: legacy}\n", 3, 5, "expected 'rule' or 'practice'"),
    ("version: 1\nexemptions:\n  - {rule: HR3001, practice: privileged, reason: x}\n", 3, 5, "exactly one of"),
    ("version: 1\nexemptions:\n  - {rule: HR3001, reason: '  '}\n", 3, 28, "exemptions[0].reason"),
    ("version: 1\nexemptions:\n  - {rule: HR3001, reason: x, expires: 2027-02-30}\n", 3, 40, "not a calendar date"),
    ("version: 1\nexemptions:\n  - {rule: HR3001, reason: x, expires: next year}\n", 3, 40, "expected"),
    ("version: 1\nexemptions:\n  - {rule: HR9998, reason: x}\n", 3, 12, "unknown rule HR9998"),
    ("version: 1\nversion: 1\n", 2, 1, "duplicate key 'version'"),
    ("version: 1\nrules: [\n", 3, 1, "invalid YAML"),
    ("- version: 1\n", 1, 1, "expected a mapping, found a list"),
    ("version: 1\nextends: no-such-policy\n", 2, 10, "no policy 'no-such-policy'"),
    ("base: &b {fail-on: error}\nversion: 1\n<<: *b\n", 3, 1, "merge keys"),
    ("version: 1\n<<: {fail-on: error}\n", 2, 1, "merge keys"),
])
def test_bad_policy_names_file_line_column_and_what_was_expected(text, line, column, expected):
    error = error_of(text)
    assert (error.path, error.line, error.column) == ("p.yaml", line, column), str(error)
    assert expected in error.message
    assert str(error).startswith(f"p.yaml: line {line}, column {column}: ")


# The practice names of the JSON output contract: fixed spellings a policy may name. The
# vocabulary itself is read from the rule files; this pins it so none is renamed away.
CONTRACT_PRACTICES = (
    "root-user", "copy-all", "secret", "untrusted-base", "unpinned-digest", "add-remote",
    "add-local", "curl-pipe-shell", "sudo", "tls-disabled", "expose-sensitive", "many-layers",
    "package-cache", "no-healthcheck",
    "privileged", "socket-mount", "cap-add-dangerous", "no-cap-drop", "no-nnp", "writable-root",
    "host-namespace", "seccomp-unconfined", "apparmor-unconfined", "sensitive-host-mount",
    "rw-volume", "run-as-root", "publish-all-interfaces", "no-resource-limits", "device-access",
)


def test_a_policy_may_name_every_practice_of_the_contract():
    switches = "".join(f"  {practice}: off\n" for practice in CONTRACT_PRACTICES)
    policy = load_policy_text(f"version: 1\npractices:\n{switches}", "p.yaml")
    assert set(CONTRACT_PRACTICES) <= set(policy.practices)
    # control: a name no rule file gives is refused
    assert "unknown practice 'no-such-practice'" in str(
        error_of("version: 1\npractices:\n  no-such-practice: off\n"))


def test_every_builtin_policy_loads():
    assert set(builtin_policies()) >= {"default", "baseline", "restricted", "strict"}
    for name in builtin_policies():
        assert load_policy(name).name == name


def test_extends_chain_merges_child_over_parent(tmp_path):
    parent = tmp_path / "team.yaml"
    parent.write_text("version: 1\nextends: baseline\nfail-on: warning\nrules: {HR3004: warning}\n")
    child = tmp_path / ".hardrun.yaml"
    child.write_text("version: 1\nextends: team.yaml\nallowed-capabilities: [NET_RAW]\n")
    policy = load_policy(child)
    assert policy.chain == (str(child), str(parent), "baseline")
    assert policy.fail_on == "warning"
    assert policy.rules == {"HR3004": "warning", "HR3005": "error"}
    assert policy.allowed_capabilities == ("NET_RAW",)
    assert policy.allowed_host_ports == ()                   # inherited from baseline


def test_extends_cycle_is_an_error_at_the_extends_line(tmp_path):
    (tmp_path / "a.yaml").write_text("version: 1\nextends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("version: 1\nfail-on: error\nextends: a.yaml\n")
    with pytest.raises(ParseError) as caught:
        load_policy(tmp_path / "a.yaml")
    assert caught.value.path == str(tmp_path / "b.yaml")
    assert (caught.value.line, caught.value.column) == (3, 10)
    assert "cycle" in caught.value.message


def test_self_extension_is_a_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("version: 1\nextends: ./a.yaml\n")
    with pytest.raises(ParseError, match="cycle"):
        load_policy(tmp_path / "a.yaml")


def test_an_error_in_a_parent_names_the_parent_file(tmp_path):
    (tmp_path / "parent.yaml").write_text("version: 1\nfail_on: error\n")
    (tmp_path / "child.yaml").write_text("version: 1\nextends: parent.yaml\n")
    with pytest.raises(ParseError) as caught:
        load_policy(tmp_path / "child.yaml")
    assert caught.value.path == str(tmp_path / "parent.yaml") and caught.value.line == 2


def test_missing_policy_file_is_a_usage_error():
    with pytest.raises(UsageError, match="not a built-in policy"):
        load_policy("/nonexistent/policy.yaml")


def test_yaml_tags_never_construct_objects():
    error = error_of("version: 1\ndescription: !!python/object/apply:os.system ['true']\n")
    assert error.line == 2


def test_alias_bomb_fails_fast():
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    error = error_of("\n".join(lines) + "\n")
    assert "too many aliases" in error.message


def test_unquoted_dates_and_on_off_switches_are_read():
    policy = load_policy_text("version: 1\nrules: {HR3001: on, HR3002: off}\ndefault-rules: off\n"
                              "exemptions:\n  - {rule: HR3001, reason: r, expires: 2030-01-31}\n")
    assert policy.rules == {"HR3001": "on", "HR3002": "off"}
    assert policy.default_rules == "off"
    assert policy.exemptions[0].expires.isoformat() == "2030-01-31"
    assert policy.exemptions[0].line == 5


def test_schema_is_valid_draft_2020_12_and_shipped_in_the_package():
    import jsonschema
    jsonschema.Draft202012Validator.check_schema(schema())
    text = Path("pyproject.toml").read_text()
    assert '"hardrun.policy" = ["schema.json"]' in text


# -- the own validator agrees with jsonschema ---------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.text(max_size=8),
                    st.sampled_from(["on", "off", "error", "HR3001", "/srv", "512m", "2027-01-31",
                                     "NET_RAW", "runtime/default", "refuse"]))
keys = st.sampled_from(["version", "extends", "fail-on", "default-rules", "rules", "practices",
                        "trusted-registries", "allowed-capabilities", "allowed-host-mounts",
                        "allowed-host-ports", "runtime", "exemptions", "rule", "practice",
                        "reason", "expires", "path", "read-only", "seccomp", "required",
                        "allowed", "HR3001", "privileged", "bogus", "memory", "user"])
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=5)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, documents, max_size=6))
def test_own_validator_agrees_with_jsonschema(document):
    import jsonschema
    reference = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert (not validate(schema(), document)) == reference.is_valid(document)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_no_exception_but_hardrun_errors_on_text(text):
    try:
        load_policy_text(text, "fuzz.yaml")
    except HardrunError as error:
        assert error.path == "fuzz.yaml"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, documents, max_size=6))
def test_fuzz_no_exception_but_hardrun_errors_on_documents(document):
    import yaml
    text = yaml.safe_dump(document)
    try:
        load_policy_text(text, "fuzz.yaml")
    except HardrunError as error:
        assert error.path == "fuzz.yaml" and error.line is not None


def _yaml_blocks(path):
    import re
    return re.findall(r"```yaml\n(.*?)```", Path(path).read_text(), re.S)


def test_documented_policy_and_run_config_examples_are_valid():
    from hardrun.frontends.hardrun_config import parse_run_config
    policy_example, run_example = _yaml_blocks("docs/policies.md")
    policy = load_policy_text(policy_example, "docs-example.yaml")
    assert policy.chain[-1] == "baseline" and policy.exemptions[0].rule == "HR3002"
    assert parse_run_config(run_example, "web.yaml")[0].name == "web"
