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


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "hardrun"


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
