"""hardrun/parsing/patterns.py: patterns built from the cache of compiled programs are the
patterns `re.compile` makes; a damaged, foreign or other interpreter's entry is never used."""
import json
import re
import subprocess
import sys

import pytest

from hardrun import cache
from hardrun.parsing import patterns
from tests.helpers import DATA, ROOT, hardrun_env, record_calls


@pytest.fixture
def compiles(monkeypatch):
    """The patterns compiled by `re` itself (not built from a cached program)."""
    return record_calls(monkeypatch, patterns, "_program")


def the_same(built: re.Pattern, pattern: str, flags: int = 0) -> bool:
    """Pattern equality compares the flags, the text and the compiled program."""
    expected = re.compile(pattern, flags)
    return built == expected and (built.groups, dict(built.groupindex)) == (expected.groups,
                                                                            dict(expected.groupindex))


# In a new process (this one has imported and compiled most of them already): every
# pattern an audit of tests/data and examples/ compiles through the cache, recorded, then
# built again (from the cache filled by the audit) and compared with re.compile's.
_EVERY_PATTERN = """
import re, sys
from hardrun.parsing import patterns
seen, real = {}, patterns.regex
def recording(pattern, flags=0):
    seen[pattern, int(flags)] = None
    return real(pattern, flags)
patterns.regex = recording
from hardrun.audit.engine import audit
audit(sys.argv[1:])
differ = [p for p, f in seen if real(p, f) != re.compile(p, f)
          or real(p, f).groupindex != re.compile(p, f).groupindex]
print(len(seen), differ)
"""


@pytest.mark.parametrize("attempt", ["cold", "warm"])
def test_every_pattern_an_audit_compiles_is_re_s_own(tmp_path_factory, attempt):
    env = hardrun_env({"XDG_CACHE_HOME": str(tmp_path_factory.getbasetemp() / "every-pattern-cache")})
    done = subprocess.run([sys.executable, "-c", _EVERY_PATTERN, str(DATA), str(ROOT / "examples")],
                          capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    count, differ = done.stdout.split(" ", 1)
    assert int(count) >= 20        # control: the audit's patterns went through the cache
    assert differ.strip() == "[]"


@pytest.mark.parametrize("pattern, flags", [
    (r"(?P<key>[a-z]+)\s*=\s*(?P<value>\S+)|#(.*)", re.I), (r"^(?:a|b)*?c{2,5}$", re.M | re.S),
    (r"(?<![\w.-])gpgcheck\s*=\s*0\b", re.I), (r"[^\s'\"\\$`|&;()<>]+", 0), (r"\u00e9t\u00e9", re.I),
])
def test_a_hit_gives_the_pattern_a_miss_gave(cache_home, compiles, pattern, flags):
    first = patterns.regex(pattern, flags)
    second = patterns.regex(pattern, flags)
    assert compiles == [pattern]                 # compiled once, then built from the cache
    assert the_same(first, pattern, flags) and the_same(second, pattern, flags)
    assert second.findall("KEY = v # x") == re.compile(pattern, flags).findall("KEY = v # x")


def entry(cache_home):
    [found] = list(cache_home.glob(f"{patterns.CACHE_KIND}-*.json"))
    return found


def test_a_program_the_engine_refuses_is_compiled_anew(cache_home, compiles):
    patterns.regex(r"a+b")
    stored = json.loads(entry(cache_home).read_text())
    stored["value"][1] = [99999, 1, 2]               # not an SRE program
    entry(cache_home).write_text(json.dumps(stored))
    assert the_same(patterns.regex(r"a+b"), r"a+b")
    assert compiles == [r"a+b", r"a+b"]
    assert the_same(patterns.regex(r"a+b"), r"a+b") and len(compiles) == 2    # rewritten: a hit


@pytest.mark.parametrize("damage", [
    lambda text: text[:20],                                                            # cut short
    lambda text: json.dumps({**json.loads(text), "key": "0" * 64}),                   # another key's
    lambda text: json.dumps({**json.loads(text), "value": [0, [1.5], 0, {}, [None]]}),   # not integers
    lambda text: json.dumps({**json.loads(text), "value": "x"}),
])
def test_a_damaged_or_foreign_entry_is_ignored(cache_home, compiles, damage):
    patterns.regex(r"x(y)z")
    entry(cache_home).write_text(damage(entry(cache_home).read_text()))
    assert the_same(patterns.regex(r"x(y)z"), r"x(y)z")
    assert len(compiles) == 2


def test_another_pattern_s_program_under_this_name_is_not_used(cache_home, compiles):
    patterns.regex(r"cat")
    cat = entry(cache_home)
    moved = cat.with_name(cat.name + ".kept")
    cat.rename(moved)
    patterns.regex(r"dog")
    dog = entry(cache_home)
    moved.rename(cat)
    dog.write_text(cat.read_text())              # cat's program where dog's should be
    assert the_same(patterns.regex(r"dog"), r"dog")
    assert compiles == ["cat", "dog", "dog"]


def test_another_interpreter_s_entries_are_not_used(cache_home, compiles, monkeypatch):
    patterns.regex(r"q+")
    patterns.regex(r"q+")
    assert len(compiles) == 1                    # control: a hit in this interpreter
    sre, identity = patterns._engine()
    monkeypatch.setattr(patterns, "_ENGINE", [(sre, identity + b"-another-build")])
    assert the_same(patterns.regex(r"q+"), r"q+")
    assert len(compiles) == 2


def test_the_flags_are_part_of_the_key(cache_home, compiles):
    assert the_same(patterns.regex(r"abc"), r"abc")
    assert the_same(patterns.regex(r"abc", re.I), r"abc", re.I)
    assert len(compiles) == 2 and patterns.regex(r"abc", re.I).match("ABC")


def test_invalid_and_bytes_patterns_behave_as_in_re(cache_home):
    with pytest.raises(re.error):
        patterns.regex(r"[")
    assert patterns.regex(rb"a+").match(b"aa") and not list(cache_home.glob("*"))


def test_entries_are_private_and_verified(cache_home):
    patterns.regex(r"private")
    found = entry(cache_home)
    assert oct(found.stat().st_mode & 0o777) == "0o600"
    key = json.loads(found.read_text())["key"]
    assert cache.load(patterns.CACHE_KIND, key) is not None
    assert cache.load(patterns.CACHE_KIND, key[:40] + "f" * 24) is None


def test_the_flags_are_re_s_own():
    assert (patterns.IGNORECASE, patterns.MULTILINE, patterns.DOTALL) == (re.I, re.M, re.S)


def test_a_dockerfile_audit_served_from_the_cache_imports_neither_re_nor_json(tmp_path):
    """`re` (with `enum`) and `json` cost about 4 ms of a one-file audit's start."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM alpine:3.20\nRUN apk add --no-cache curl\nUSER 10001\n")
    code = ("import sys\nfrom hardrun.cli.audit import main\n"
            f"main(['-f', 'json', '-o', {str(tmp_path / 'report.json')!r}, {str(dockerfile)!r}])\n"
            "print(sorted({'re', 'enum', 'json', 'fnmatch'} & set(sys.modules)))")
    env = hardrun_env({"XDG_CACHE_HOME": str(tmp_path / "cache")})

    def imported():
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              check=True).stdout.split("\n")[-2]

    assert imported() == "['enum', 'fnmatch', 'json', 're']"    # control: filling the caches compiles
    assert imported() == "[]"
