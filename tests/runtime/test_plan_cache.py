"""The plan cache of `hardrun run` (hardrun/runtime/plan_cache.py): a stored plan gives
the same confinement as a resolved one, every part of what decided it makes a changed
start miss, and an entry anyone else could have written is never read."""
from __future__ import annotations

import marshal
import os
import shutil
from pathlib import Path

import pytest

from hardrun.frontends.docker_argv import parse_hardrun_args
from hardrun.runtime import config, plan_cache
from tests.helpers import run_hardrun
from tests.rootfs import build_rootfs, require_root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "plans"
    monkeypatch.setenv(plan_cache.ENV, str(directory))
    return directory


@pytest.fixture
def root(busybox_rootfs):
    """The session's busybox root (tests that change a root build their own)."""
    return busybox_rootfs


def _resolve(argv):
    spec, options = parse_hardrun_args(argv)
    return spec, options, config.resolve_fixed(spec)


def _store(cache, argv):
    spec, options, fixed = _resolve(argv)
    assert plan_cache.storable(spec, options, fixed)
    key = plan_cache.key_of(argv)
    assert plan_cache.store(str(cache), key, spec, options, fixed)
    return key


def _as_oci(spec, fixed):
    return config.to_oci(config.complete(spec, fixed))


ARGVS = [
    [],
    ["-u", "app", "--cap-add", "NET_RAW", "--cap-drop", "CHOWN", "--workdir", "/home/app"],
    ["--read-only=false", "--security-opt", "no-new-privileges=false", "-e", "A=1", "--memory", "64m",
     "--pids-limit", "50", "--ulimit", "nofile=100:200", "--tmpfs", "/scratch:size=1m,mode=700"],
    ["-v", "/etc:/data:ro", "--security-opt", "systempaths=unconfined", "--network", "host", "--init"],
    ["--security-opt", "seccomp=unconfined", "--ipc", "host", "--uts", "host", "-u", "1000:1000"],
]


@pytest.mark.parametrize("flags", ARGVS, ids=range(len(ARGVS)))
def test_a_stored_plan_is_the_resolved_plan(cache, root, flags):
    argv = ["--hostname", "h", *flags, "--rootfs", str(root), "--", "/bin/true"] if "--uts" not in flags \
        else [*flags, "--rootfs", str(root), "--", "/bin/true"]
    spec, _, fixed = _resolve(argv)
    entry = plan_cache.lookup(str(cache), _store(cache, argv))
    assert entry is not None
    assert entry.spec == spec
    assert _as_oci(entry.spec, entry.fixed) == _as_oci(spec, fixed)


def test_each_start_gets_its_own_id_and_host_name(cache, root):
    argv = ["--rootfs", str(root), "--", "/bin/true"]
    entry = plan_cache.lookup(str(cache), _store(cache, argv))
    first, second = (config.complete(entry.spec, entry.fixed) for _ in range(2))
    assert first.id != second.id and first.hostname != second.hostname
    assert f"HOSTNAME={first.hostname}" in first.env


# --- every part of what decided the plan: changed, the entry misses (controls: unchanged, it hits)

def test_the_command_line_environment_and_directory_are_in_the_key(cache, root, monkeypatch, tmp_path):
    argv = ["--rootfs", str(root), "--", "/bin/true"]
    key = plan_cache.key_of(argv)
    assert plan_cache.key_of(list(argv)) == key                       # control
    assert plan_cache.key_of(argv[:-1] + ["/bin/false"]) != key
    monkeypatch.setenv("OLDPWD", "/elsewhere")                          # a shell's noise: ignored
    assert plan_cache.key_of(argv) == key
    monkeypatch.setenv("SOME_SETTING", "1")
    assert plan_cache.key_of(argv) != key
    monkeypatch.delenv("SOME_SETTING")
    monkeypatch.chdir(tmp_path)
    assert plan_cache.key_of(argv) != key


def test_a_changed_passwd_or_group_misses(cache, tmp_path):
    require_root()
    rootfs = build_rootfs(tmp_path / "rootfs")
    argv = ["-u", "app", "--rootfs", str(rootfs), "--", "/bin/true"]
    key = _store(cache, argv)
    assert plan_cache.lookup(str(cache), key) is not None               # control
    passwd = rootfs / "etc" / "passwd"
    passwd.write_text(passwd.read_text().replace("app:x:1000:1000", "app:x:1001:1000"))
    assert plan_cache.lookup(str(cache), key) is None
    key = _store(cache, argv)
    assert plan_cache.lookup(str(cache), key) is not None
    group = rootfs / "etc" / "group"
    group.write_text(group.read_text() + "more:x:3000:app\n")
    assert plan_cache.lookup(str(cache), key) is None


def test_a_passwd_swapped_for_a_link_misses(cache, tmp_path):
    require_root()
    rootfs = build_rootfs(tmp_path / "rootfs")
    argv = ["-u", "app", "--rootfs", str(rootfs), "--", "/bin/true"]
    key = _store(cache, argv)
    (rootfs / "etc" / "other").write_text((rootfs / "etc" / "passwd").read_text())
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("other")
    assert plan_cache.lookup(str(cache), key) is None


def test_another_root_under_the_same_name_misses(cache, tmp_path):
    require_root()
    first = build_rootfs(tmp_path / "first")
    build_rootfs(tmp_path / "second")
    link = tmp_path / "current"
    link.symlink_to("first")
    argv = ["--rootfs", str(link), "--", "/bin/true"]
    key = _store(cache, argv)
    assert plan_cache.lookup(str(cache), key) is not None               # control
    link.unlink()
    link.symlink_to("second")
    assert plan_cache.lookup(str(cache), key) is None
    link.unlink()
    link.symlink_to("first")
    assert plan_cache.lookup(str(cache), key) is not None
    (first / "newfile").write_text("")                                  # the root changed
    assert plan_cache.lookup(str(cache), key) is None


def test_a_replaced_bind_source_misses(cache, root, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    argv = ["-v", f"{source}:/data", "--rootfs", str(root), "--", "/bin/true"]
    key = _store(cache, argv)
    assert plan_cache.lookup(str(cache), key) is not None               # control
    source.rmdir()
    source.write_text("now a file")
    assert plan_cache.lookup(str(cache), key) is None


def test_changed_code_misses(cache, root, tmp_path, monkeypatch):
    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(plan_cache, "_loaded_modules", lambda: [str(module)])
    argv = ["--rootfs", str(root), "--", "/bin/true"]
    key = _store(cache, argv)
    assert plan_cache.lookup(str(cache), key) is not None               # control
    module.write_text("x = 2\n")
    assert plan_cache.lookup(str(cache), key) is None


def test_the_resolution_code_is_recorded():
    loaded = plan_cache._loaded_modules()
    for name in ("runtime/config.py", "frontends/docker_argv.py", "runtime/userns.py", "runtime/mounts.py"):
        assert any(path.endswith(name) for path in loaded), name


def test_the_oldest_entries_go_beyond_the_limit(cache, root):
    keys = [_store(cache, ["--rootfs", str(root), "--", "/bin/echo", str(number)]) for number in range(3)]
    for number, key in enumerate(keys):
        os.utime(cache / f"{key}.plan", ns=(number, number))
    plan_cache._prune(str(cache), keep=2)
    assert sorted(path.name for path in cache.glob("*.plan")) == sorted(f"{key}.plan" for key in keys[1:])


# --- trust: an entry anyone else could have written is never read --------------------------

def _entry(cache, root):
    argv = ["--rootfs", str(root), "--", "/bin/true"]
    key = _store(cache, argv)
    assert plan_cache.lookup(str(cache), key) is not None               # control
    return key, cache / f"{key}.plan"


def test_an_entry_readable_or_writable_by_others_is_ignored(cache, root):
    key, path = _entry(cache, root)
    path.chmod(0o644)
    assert plan_cache.lookup(str(cache), key) is None
    path.chmod(0o600)
    assert plan_cache.lookup(str(cache), key) is not None
    os.chown(path, 1000, 1000)
    assert plan_cache.lookup(str(cache), key) is None


def test_an_entry_in_a_directory_others_can_write_is_ignored(cache, root):
    key, _ = _entry(cache, root)
    cache.chmod(0o777)
    assert plan_cache.lookup(str(cache), key) is None
    cache.chmod(0o700)
    assert plan_cache.lookup(str(cache), key) is not None


def test_an_entry_reached_through_a_link_is_ignored(cache, root, tmp_path):
    key, path = _entry(cache, root)
    moved = tmp_path / "elsewhere.plan"
    shutil.move(path, moved)
    path.symlink_to(moved)
    assert plan_cache.lookup(str(cache), key) is None


def test_an_entry_replaced_by_a_fifo_is_ignored_without_blocking(cache, root):
    import signal

    def hung(*_):
        raise AssertionError("opening the entry blocked on a FIFO")
    key, path = _entry(cache, root)
    assert plan_cache.lookup(str(cache), key) is not None      # the control: the real entry is used
    path.unlink()
    os.mkfifo(path, 0o600)
    # a guard against hanging for ever, not a measurement: an open without O_NONBLOCK never returns
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        assert plan_cache.lookup(str(cache), key) is None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _rewrite(path: Path, key: str, body: bytes, fix_digest: bool = True) -> None:
    from hardrun.runtime.seccomp_cache import sha256
    digest = sha256(body).hexdigest().encode() if fix_digest else b"0" * 64
    path.write_bytes(b" ".join((plan_cache.FORMAT, key.encode(), digest)) + b"\n" + body)


def test_a_changed_body_is_ignored(cache, root):
    key, path = _entry(cache, root)
    header, _, body = path.read_bytes().partition(b"\n")
    _rewrite(path, key, body.replace(b"/bin/true", b"/bin/trux"), fix_digest=False)
    assert plan_cache.lookup(str(cache), key) is None
    _rewrite(path, key, body)                                          # control
    assert plan_cache.lookup(str(cache), key) is not None


def test_the_format_is_closed(cache, root):
    """Only the listed records, with exactly their fields, and plain values: a well-signed
    entry naming anything else (a class of another module, a code object) is refused."""
    key, path = _entry(cache, root)
    depends, spec, fixed, options = marshal.loads(path.read_bytes().partition(b"\n")[2])
    tampered = [
        (depends, ("r", "Popen", [("args", "x")]), fixed, options),
        (depends, spec, ("d", [("caps", compile("1", "x", "eval"))]), options),
        (depends, ("r", "RunSpec", spec[2][:-1]), fixed, options),          # a field missing
        (depends, spec, ("d", fixed[1] + [("extra", 1)]), options),         # a field RuntimeConfig lacks
    ]
    for body in tampered:
        _rewrite(path, key, marshal.dumps(body))
        assert plan_cache.lookup(str(cache), key) is None
    _rewrite(path, key, marshal.dumps((depends, spec, fixed, options)))    # control
    assert plan_cache.lookup(str(cache), key) is not None


@pytest.mark.parametrize("flags", [["--privileged"], ["--network", "bridge"], ["--userns", "host"],
                                   ["--sysctl", "net.ipv4.ip_forward=1"], ["--env-file", "/etc/hostname"],
                                   ["--dry-run"], ["--policy", "default"]])
def test_plans_decided_by_more_than_the_entry_records_are_not_stored(root, flags):
    spec, options = parse_hardrun_args([*flags, "--rootfs", str(root), "--", "/bin/true"])
    fixed = config.resolve_fixed(spec)
    assert not plan_cache.storable(spec, options, fixed)
    spec, options = parse_hardrun_args(["--rootfs", str(root), "--", "/bin/true"])   # control
    assert plan_cache.storable(spec, options, config.resolve_fixed(spec))


# --- whole starts: the second start uses the entry and confines alike ------------------------

STATUS = "grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/self/uid_map; id"


def _entries(cache: Path) -> dict:
    return {path.name: path.stat().st_ino for path in cache.glob("*.plan")} if cache.exists() else {}


def test_a_repeated_start_uses_the_entry_and_gets_the_same_confinement(env, rootfs, tmp_path):
    cache = tmp_path / "plans"
    argv = ("run", "-u", "app", "--rootfs", rootfs, "--", "/bin/sh", "-c", STATUS)
    variables = {plan_cache.ENV: str(cache)}
    cold = run_hardrun(*argv, env=variables)
    assert cold.returncode == 0, cold.stderr
    written = _entries(cache)
    assert len(written) == 1
    warm = run_hardrun(*argv, env=variables)
    assert warm.returncode == 0, warm.stderr
    assert _entries(cache) == written          # read, not rewritten: a hit
    off = run_hardrun(*argv, env={plan_cache.ENV: "off"})
    assert off.returncode == 0, off.stderr
    # the same confinement, each start with its own id range (uid_map's outside column)
    def fixed(text):
        return [line for line in text.splitlines() if not line.strip()[:1].isdigit()]
    assert fixed(warm.stdout) == fixed(cold.stdout) == fixed(off.stdout)
    assert "Seccomp:\t2" in warm.stdout and "NoNewPrivs:\t1" in warm.stdout
    assert "CapEff:\t0000000000000000" in warm.stdout and "uid=1000(app)" in warm.stdout


def test_a_start_after_passwd_changed_follows_the_new_passwd(env, tmp_path):
    """The control of the stale-entry checks, from inside: the user's uid follows passwd."""
    require_root()
    rootfs = build_rootfs(tmp_path / "rootfs")
    cache = tmp_path / "plans"
    argv = ("run", "-u", "app", "--rootfs", str(rootfs), "--", "/bin/id", "-u")
    first = run_hardrun(*argv, env={plan_cache.ENV: str(cache)})
    assert (first.returncode, first.stdout) == (0, "1000\n"), first.stderr
    passwd = rootfs / "etc" / "passwd"
    passwd.write_text(passwd.read_text().replace("app:x:1000:1000", "app:x:1001:1000"))
    second = run_hardrun(*argv, env={plan_cache.ENV: str(cache)})
    assert (second.returncode, second.stdout) == (0, "1001\n"), second.stderr


def test_a_repository_policy_is_judged_even_with_a_warm_entry(env, rootfs, tmp_path):
    cache = tmp_path / "plans"
    repository = tmp_path / "repository"
    (repository / ".git").mkdir(parents=True)
    argv = ("run", "--cap-add", "NET_ADMIN", "--rootfs", rootfs, "--", "/bin/true")
    variables = {plan_cache.ENV: str(cache)}
    assert run_hardrun(*argv, env=variables, cwd=repository).returncode == 0     # control
    assert run_hardrun(*argv, env=variables, cwd=repository).returncode == 0
    (repository / ".hardrun.yaml").write_text("version: 1\nextends: baseline\n")
    refused = run_hardrun(*argv, env=variables, cwd=repository)
    assert refused.returncode == 3 and "HR3001" in refused.stderr, (refused.returncode, refused.stderr)


def test_a_warm_start_imports_neither_the_flag_parser_nor_the_resolver(env, rootfs, tmp_path):
    import subprocess
    import sys

    from tests.helpers import hardrun_env
    variables = hardrun_env({plan_cache.ENV: str(tmp_path / "plans")})

    def imported():
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "hardrun", "run", "--rootfs", rootfs,
                               "--", "true"], env=variables, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    parser = {"hardrun.frontends.docker_argv", "hardrun.frontends.docker_runspec", "hardrun.frontends.docker_flags"}
    cold = imported()
    assert parser <= cold                                   # control: a first start parses
    warm = imported()
    assert "hardrun.runtime.parent" in warm and warm & parser == set()


def _inspected(rootfs, cache) -> dict:
    """`hardrun inspect --json` of a running container started with this plan cache, with
    what differs between any two containers (pid, host ids, namespace ids) normalised."""
    import json

    from tests.helpers import popen_hardrun
    from tests.runtime.test_runtime import container_pid, wait_ready
    proc = popen_hardrun("run", "-u", "app", "--rootfs", rootfs, "--", "sh", "-c", "echo ready; exec sleep 30",
                         env={plan_cache.ENV: cache})
    try:
        wait_ready(proc)
        pid = container_pid(proc.pid)
        done = run_hardrun("inspect", "--json", str(pid))
        assert done.returncode == 0, done.stderr
        os.kill(pid, 9)          # hardrun sees it exit and cleans up after it
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    report = json.loads(done.stdout)
    del report["pid"], report["container"]
    report["namespaces"] = {name: value["shared_with_caller"] for name, value in report["namespaces"].items()}
    for ids, mapping in (("uid", "uid_map"), ("gid", "gid_map")):
        outside = report[mapping][0][1]
        report[ids] = [number - outside for number in report[ids]]
        if ids == "gid":
            report["groups"] = [number - outside for number in report["groups"]]
        report[mapping] = [[inside, count] for inside, _, count in report[mapping]]
    return report


def test_inspect_shows_the_same_confinement_cold_warm_and_without_the_cache(env, rootfs, tmp_path):
    cache = str(tmp_path / "plans")
    cold = _inspected(rootfs, cache)
    entries = _entries(Path(cache))
    warm = _inspected(rootfs, cache)
    assert _entries(Path(cache)) == entries and len(entries) == 1        # the warm start read it
    assert warm == cold == _inspected(rootfs, "off")
    assert warm["uid"] == [1000] * 4 and warm["no_new_privs"] is True and warm["seccomp"] == "filter"
