"""The on-disk cache of parsed rule files and built-in policies: never stale, never
required."""
import json
import os
import shutil

import pytest

from hardrun import cache
from hardrun.audit import rules
from hardrun.policy import load
from hardrun.resources import data_dir
from tests.helpers import record_calls


@pytest.fixture
def rule_dir(tmp_path, monkeypatch):
    """A copy of the rule files that all_rules() reads instead of the bundled ones."""
    copy = tmp_path / "rules"
    shutil.copytree(data_dir("rules"), copy)
    monkeypatch.setattr(rules, "data_dir", lambda name: copy)
    rules.all_rules.cache_clear()
    yield copy
    rules.all_rules.cache_clear()


def test_a_rule_file_changed_after_caching_is_read_anew(cache_home, rule_dir):
    assert rules.all_rules()["HR1001"].severity == "error"
    assert list(cache_home.glob("rules-*.json")), "the parsed rules were cached"
    path = rule_dir / "HR1001.yaml"
    stat = path.stat()
    # Same size and same mtime: only the content tells the two versions apart.
    path.write_text(path.read_text().replace("severity: error", "severity: 'err'"))
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rules.all_rules.cache_clear()
    with pytest.raises(rules.RuleError, match="severity must be one of"):
        rules.all_rules()
    path.write_text(path.read_text().replace("severity: 'err'", "severity: info "))
    rules.all_rules.cache_clear()
    assert rules.all_rules()["HR1001"].severity == "info"


def test_cached_rules_equal_freshly_parsed_ones(cache_home, rule_dir):
    fresh = rules.all_rules()
    rules.all_rules.cache_clear()
    assert rules.all_rules() == fresh


def test_an_invalid_rule_file_is_reported_even_when_its_parse_is_cached(cache_home, rule_dir):
    (rule_dir / "HR1001.yaml").write_text("id: HR1001\n")
    rules.all_rules.cache_clear()
    for _ in range(2):
        with pytest.raises(rules.RuleError, match="missing keys"):
            rules.all_rules()
        rules.all_rules.cache_clear()


def test_an_unwritable_cache_directory_is_no_error(tmp_path, monkeypatch, rule_dir):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))     # a file: mkdir under it fails
    assert "HR1001" in rules.all_rules()


def test_a_corrupt_entry_is_ignored(cache_home, rule_dir):
    rules.all_rules()
    for entry in cache_home.glob("rules-*.json"):
        entry.write_text('{"key": "')
    rules.all_rules.cache_clear()
    assert "HR1001" in rules.all_rules()


def test_values_json_would_change_are_not_stored(cache_home):
    cache.store("test", "k1", {1: "int key"})
    cache.store("test", "k2", {"when": float("nan")})
    assert cache.load("test", "k1") is None and cache.load("test", "k2") is None
    cache.store("test", "k3", {"ok": [1, True, None, "x"]})
    assert cache.load("test", "k3") == {"ok": [1, True, None, "x"]}


def test_builtin_policy_from_the_cache_equals_the_parsed_one(cache_home):
    path = data_dir("policies") / "strict.yaml"
    text = path.read_text()
    parsed = load._parse(text, str(path))
    first = load._parse_builtin(text, str(path))
    assert list(cache_home.glob("policy-*.json"))
    cached = load._parse_builtin(text, str(path))
    for document in (first, cached):
        assert (document.data, document.values, document.keys) == (parsed.data, parsed.values, parsed.keys)
    assert load.load_policy("strict") == load.load_policy("strict")


def test_a_directory_others_may_write_to_is_not_used(cache_home, rule_dir):
    rules.all_rules()
    assert list(cache_home.glob("rules-*.json"))
    entry = next(cache_home.glob("rules-*.json"))
    key = json.loads(entry.read_text())["key"]
    assert cache.load("rules", key) is not None
    cache_home.chmod(0o777)
    assert cache.load("rules", key) is None
    cache.store("test", "k", {"a": 1})
    assert not list(cache_home.glob("test-*.json"))


# --- the rules, keyed by the files' identity, and a policy's validation ---------------------

@pytest.fixture
def parses(monkeypatch):
    """Rule files parsed with PyYAML (a cache miss parses all of them)."""
    return record_calls(monkeypatch, rules, "_parse_yaml")


def reload_rules():
    rules.all_rules.cache_clear()
    return rules.all_rules()


def test_rules_are_served_from_the_cache_until_a_rule_file_changes(cache_home, rule_dir, parses):
    reload_rules()
    count = len(parses)
    (rule_dir / "README.txt").write_text("not a rule file\n")       # control: not one of them
    assert reload_rules()["HR1001"].severity == "error" and len(parses) == count
    path = rule_dir / "HR1001.yaml"
    path.write_text(path.read_text().replace("severity: error", "severity: info "))
    assert reload_rules()["HR1001"].severity == "info" and len(parses) == 2 * count
    (rule_dir / "HR1001.yaml").rename(rule_dir / "HR1001.yaml.off")  # a rule file gone
    assert "HR1001" not in reload_rules()


def damage_entry(cache_home, kind: str, damage) -> None:
    """Rewrite the one `kind` entry under its own key with `damage(its value)`."""
    [entry] = list(cache_home.glob(f"{kind}-*.json"))
    stored = json.loads(entry.read_text())
    entry.write_text(json.dumps({"key": stored["key"], "value": damage(stored["value"])}))


@pytest.mark.parametrize("damage", [
    lambda rows: rows[:-1],                                  # a row short
    lambda rows: [row[:-1] for row in rows],                 # a field short
    lambda rows: [[1, *row[1:]] for row in rows],            # an id that is not a string
    lambda rows: [[*row[:5], "dockerfile", *row[6:]] for row in rows],   # applies_to not a list
    lambda rows: {"rows": rows},
])
def test_a_rules_entry_of_another_shape_is_ignored_and_written_anew(cache_home, rule_dir, parses, damage):
    fresh = reload_rules()
    damage_entry(cache_home, "rules", damage)
    count = len(parses)
    assert reload_rules() == fresh and len(parses) == 2 * count
    assert reload_rules() == fresh and len(parses) == 2 * count       # written anew: a hit


def test_a_rule_s_details_are_read_only_when_asked_for(cache_home, rule_dir, parses):
    fresh = reload_rules()
    count = len(parses)
    summary = reload_rules()["HR1001"]
    assert "why" not in vars(summary) and len(parses) == count        # a hit: the summary only
    assert summary.why == fresh["HR1001"].why and summary.bad == fresh["HR1001"].bad
    assert summary == fresh["HR1001"] and reload_rules() == fresh and len(parses) == count


@pytest.mark.parametrize("damage", [
    lambda details: {rule_id: row[:-1] for rule_id, row in details.items()},            # a field short
    lambda details: {rule_id: [1, *row[1:]] for rule_id, row in details.items()},       # why not a string
    lambda details: {rule_id: [*row[:3], [["dockerfile"]], row[4]] for rule_id, row in details.items()},
    lambda details: list(details.values()),
])
def test_damaged_details_are_read_from_the_rule_files(cache_home, rule_dir, parses, damage):
    fresh = reload_rules()
    damage_entry(cache_home, "rule-details", damage)
    count = len(parses)
    assert reload_rules() == fresh and len(parses) == 2 * count        # the files parsed again


def test_details_of_rule_files_changed_since_the_summary_are_an_error(cache_home, rule_dir):
    reload_rules()
    summary = reload_rules()
    for entry in cache_home.glob("rule-details-*.json"):
        entry.unlink()
    path = rule_dir / "HR1001.yaml"
    path.write_text(path.read_text())                     # the same text, a new change time
    with pytest.raises(rules.RuleError, match="changed while hardrun was running"):
        summary["HR1002"].why


@pytest.fixture
def validations(monkeypatch):
    return record_calls(monkeypatch, load, "_validate", lambda path, document: str(path))


def test_a_policy_validated_once_is_not_validated_again(cache_home, tmp_path, validations):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nextends: strict\nrules:\n  HR1001: off\n")
    first = load.load_policy(str(policy))
    assert validations[:2] == [str(policy), str(data_dir("policies") / "strict.yaml")]   # and its parents
    count = len(validations)
    (tmp_path / "other.yaml").write_text("version: 2\n")             # control: not in the chain
    assert load.load_policy(str(policy)) == first and len(validations) == count


def test_a_changed_policy_or_parent_is_validated_again(cache_home, tmp_path, validations):
    parent, policy = tmp_path / "parent.yaml", tmp_path / "policy.yaml"
    parent.write_text("version: 1\nrules:\n  HR1001: off\n")
    policy.write_text("version: 1\nextends: parent.yaml\n")
    load.load_policy(str(policy))
    assert len(validations) == 2
    parent.write_text("version: 1\nrules:\n  HR9999: off\n")          # the parent turns invalid
    with pytest.raises(load.ParseError, match="not a valid policy"):
        load.load_policy(str(policy))
    with pytest.raises(load.ParseError, match="unknown rule HR9999"):
        load.load_policy(str(parent))
    policy.write_text("version: 1\nextends: parent.yaml\nfail-on: nonsense\n")
    with pytest.raises(load.ParseError):
        load.load_policy(str(policy))


def test_a_policy_naming_a_rule_that_is_gone_is_refused_though_it_was_valid(cache_home, rule_dir, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrules:\n  HR1001: off\n")
    load.load_policy(str(policy))
    (rule_dir / "HR1001.yaml").unlink()
    rules.all_rules.cache_clear()
    with pytest.raises(load.ParseError, match="unknown rule HR1001"):
        load.load_policy(str(policy))
