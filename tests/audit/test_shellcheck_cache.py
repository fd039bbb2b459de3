"""ShellCheck's verdicts cached per script: a hit gives what ShellCheck gives, and each
part of the key (the script, the binary) makes a miss, with a control that an unrelated
change still hits; no rc file is read. Needs Debian's `shellcheck`
(scripts/setup.sh --test): without it these tests fail, they do not skip."""
import json
import os
import shutil

import pytest

from hardrun import cache
from hardrun.audit import shellcheck
from tests.helpers import record_calls

SHELLCHECK = shutil.which("shellcheck")
# SC2086 on its line 2 (unquoted $1): the finding an rc file's `disable=` takes away
SCRIPT = shellcheck.Script("sh", (), ("echo $1",), 2, 2)


@pytest.fixture(autouse=True)
def private_places(tmp_path, monkeypatch):
    """A cache, a scratch directory, a home and a config directory of the test's own."""
    assert SHELLCHECK, "shellcheck is not installed: run scripts/setup.sh --test"
    for name in ("cache", "tmp/scratch", "home", "config"):
        (tmp_path / name).mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp" / "scratch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("SHELLCHECK_OPTS", raising=False)


@pytest.fixture
def runs(monkeypatch):
    """The scripts each ShellCheck process was given, one list per process."""
    return record_calls(monkeypatch, shellcheck, "_run_shellcheck",
                        lambda binary_path, found: [script.lines for script in found])


def codes(binary=SHELLCHECK, script=SCRIPT):
    return [(comment.code, comment.line) for _, comment in shellcheck.check(binary, [script])]


def entries(tmp_path):
    return sorted((tmp_path / "cache" / "hardrun").glob("shellcheck-*.json"))


def test_a_second_check_is_served_from_the_cache(tmp_path, runs, monkeypatch):
    assert codes() == [("SC2086", 2)]
    assert len(runs) == 1 and len(entries(tmp_path)) == 1
    assert codes() == [("SC2086", 2)]
    assert len(runs) == 1                       # no second ShellCheck process
    monkeypatch.setattr(shellcheck, "_run", None)   # and none could have run
    assert codes() == [("SC2086", 2)]


def test_only_the_scripts_the_cache_lacks_go_to_shellcheck(runs):
    first = shellcheck.Script("sh", (), ("cd /x",), 2, 2)
    second = shellcheck.Script("sh", (), ("echo $1",), 3, 3)
    shellcheck.check(SHELLCHECK, [first])
    both = shellcheck.check(SHELLCHECK, [first, second])
    assert runs == [[("cd /x",)], [("echo $1",)]]
    assert [(script.first_line, comment.code) for script, comment in both] == [(2, "SC2164"), (3, "SC2086")]


def test_cached_comments_equal_shellcheck_s_own_over_many_scripts(tmp_path, runs):
    found = [shellcheck.Script(dialect, (), lines, number + 2, number + 2) for number, (dialect, lines) in
             enumerate([("sh", ("echo $1", "cd /x; ls *")), ("bash", ("a=(1 2); echo $a",)),
                        ("sh", ("[ $x == y ] && echo `id`",)), ("dash", ("true",))])]
    fresh = shellcheck.check(SHELLCHECK, found)
    cached = shellcheck.check(SHELLCHECK, found)
    assert len(runs) == 1 and len(fresh) >= 6
    assert cached == fresh


def test_entries_are_private_files(tmp_path):
    codes()
    assert [oct(entry.stat().st_mode & 0o777) for entry in entries(tmp_path)] == ["0o600"]


# --- each part of the key ------------------------------------------------------------------

def test_another_script_text_or_dialect_is_a_miss(runs):
    codes()
    codes(script=shellcheck.Script("sh", (), ("echo $2",), 2, 2))
    codes(script=shellcheck.Script("bash", (), ("echo $1",), 2, 2))
    assert len(runs) == 3
    codes(script=shellcheck.Script("sh", (), ("echo $1",), 7, 7))   # control: moved in the Dockerfile
    assert len(runs) == 3


def test_a_changed_shellcheck_binary_is_a_miss(tmp_path, runs):
    wrapper = tmp_path / "bin" / "shellcheck"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {SHELLCHECK} "$@"\n')
    wrapper.chmod(0o755)
    codes(str(wrapper))
    (tmp_path / "bin" / "other").write_text("unrelated\n")      # control: beside it, not it
    codes(str(wrapper))
    assert len(runs) == 1
    before = wrapper.stat()
    # rebuilt in place: the same inode and size, another content and time
    wrapper.write_text(f'#!/bin/sh\nexec {SHELLCHECK} "$@"\t\n'[:before.st_size])
    os.utime(wrapper, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert (wrapper.stat().st_ino, wrapper.stat().st_size) == (before.st_ino, before.st_size)
    codes(str(wrapper))
    assert len(runs) == 2
    codes(SHELLCHECK)                            # another binary altogether
    assert len(runs) == 3


@pytest.mark.parametrize("place", ["tmp/.shellcheckrc", "tmp/shellcheckrc", "home/.shellcheckrc",
                                   "config/shellcheckrc"])
def test_no_rc_file_switches_a_check_off(tmp_path, runs, place):
    """The scripts are written under TMPDIR, where the first rc file up the tree may be
    anyone's (another user's /tmp/.shellcheckrc): none is read, cached or not. The control:
    ShellCheck itself, given a script in the same directory, honours the planted file."""
    (tmp_path / place).write_text("disable=SC2086\n")
    assert codes() == [("SC2086", 2)] and len(runs) == 1
    script = tmp_path / "tmp" / "scratch" / "planted.sh"
    script.write_text("#!/bin/sh\necho $1\n")
    import subprocess
    honoured = subprocess.run([SHELLCHECK, "-f", "gcc", str(script)], capture_output=True, text=True)
    assert "SC2086" not in honoured.stdout and honoured.returncode == 0, honoured.stdout


# --- what is never cached ----------------------------------------------------------------

def never_cached(runs, tmp_path):
    codes()
    codes()
    return len(runs) == 2 and entries(tmp_path) == []


def test_control_a_plain_setup_is_cached(tmp_path, runs):
    codes()
    codes()
    assert len(runs) == 1 and len(entries(tmp_path)) == 1


def test_shellcheck_opts_disables_the_cache(tmp_path, runs, monkeypatch):
    monkeypatch.setenv("SHELLCHECK_OPTS", "-x")
    assert never_cached(runs, tmp_path)


def test_a_script_with_a_source_directive_is_not_cached(tmp_path, runs):
    script = shellcheck.Script("sh", (), ("# shellcheck source=/etc/profile", ". /etc/profile"), 2, 2)
    shellcheck.check(SHELLCHECK, [script])
    shellcheck.check(SHELLCHECK, [script])
    assert len(runs) == 2 and entries(tmp_path) == []


# --- damaged and foreign entries -------------------------------------------------------------

@pytest.mark.parametrize("damage", [
    lambda entry: entry.write_text('{"key": "'),                                  # cut short
    lambda entry: entry.write_text(json.dumps({"key": "f" * 64, "value": []})),  # another key's
    lambda entry: entry.write_text(json.dumps({"key": json.loads(entry.read_text())["key"],
                                               "value": [["2086", "info", "x", 3, 6]]})),  # wrong shape
    lambda entry: entry.write_text(json.dumps({"key": json.loads(entry.read_text())["key"],
                                               "value": {"comments": []}})),
])
def test_a_damaged_or_foreign_entry_is_ignored_and_rebuilt(tmp_path, runs, damage):
    assert codes() == [("SC2086", 2)]
    [entry] = entries(tmp_path)
    damage(entry)
    assert codes() == [("SC2086", 2)]
    assert len(runs) == 2
    assert codes() == [("SC2086", 2)] and len(runs) == 2     # rebuilt: a hit again


def test_an_entry_in_a_directory_others_may_write_to_is_not_trusted(tmp_path, runs):
    codes()
    (tmp_path / "cache" / "hardrun").chmod(0o777)
    codes()
    assert len(runs) == 2


def test_the_key_is_verified_on_read(tmp_path):
    codes()
    [entry] = entries(tmp_path)
    key = json.loads(entry.read_text())["key"]
    assert cache.load(shellcheck.CACHE_KIND, key) == [[2086, "info", "Double quote to prevent globbing "
                                                       "and word splitting.", 3, 6]]
    assert cache.load(shellcheck.CACHE_KIND, key[:40] + "0" * 24) is None
