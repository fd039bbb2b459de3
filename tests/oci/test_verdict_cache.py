"""The policy gate's verdict cache (hardrun/policy/verdict_cache.py): every cached answer is
the plain gate's answer, and an entry that is not provably ours and current is not believed.

Each test judges the same bundle with the plain gate (an empty cache) and from the cache;
the tampering tests first show that a planted entry IS believed when it passes the checks
(the control), then that the same entry fails once it breaks one of them."""
from __future__ import annotations

import json
import os

import pytest

from hardrun.cli.oci import judge_bundle
from hardrun.errors import HardrunError
from hardrun.policy import verdict_cache
from tests.helpers import NOBODY
from tests.oci.conftest import make_bundle


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "verdicts"
    monkeypatch.setenv("HARDRUN_VERDICT_CACHE", str(directory))
    return directory


def verdict(bundle: str, policy: str) -> str | None:
    """None when the gate lets the bundle through, else its refusal's message."""
    try:
        judge_bundle(bundle, policy)
    except HardrunError as error:
        assert getattr(error, "gate_refused", False), error
        return error.message
    return None


def entry_path(cache, bundle: str, policy: str):
    with open(os.path.join(bundle, "config.json"), "rb") as handle:
        key = verdict_cache.key(handle.read(), policy, True, bundle)
    return cache / f"{key}.verdict", key


def plant(cache, bundle: str, policy: str, refusal: str | None, policy_file: str):
    """A well-formed entry of ours saying `refusal` for the bundle."""
    path, key = entry_path(cache, bundle, policy)
    cache.mkdir(mode=0o700, exist_ok=True)
    assert verdict_cache.store(key, [policy_file], refusal, str(cache))
    return path


def builtin(name: str) -> str:
    from hardrun.policy.load import builtin_policies
    return str(builtin_policies()[name])


@pytest.fixture
def root_bundle(tmp_path):
    return make_bundle(tmp_path / "root", "/nonexistent", ["/bin/true"])


def test_a_refused_bundle_is_refused_from_the_cache_too(cache, root_bundle):
    plain = verdict(root_bundle, "restricted")
    assert plain and "HR2012" in plain
    path, _ = entry_path(cache, root_bundle, "restricted")
    assert path.is_file() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert verdict_cache.lookup(path.stem) == (False, plain)
    assert verdict(root_bundle, "restricted") == plain
    assert verdict(root_bundle, "default") is None           # the control: the default policy lets it run
    assert verdict(root_bundle, "default") is None


def test_a_changed_config_misses_the_cache(cache, tmp_path):
    bundle = make_bundle(tmp_path / "b", "/nonexistent", ["/bin/true"], caps=(), user={"uid": 1000, "gid": 1000})
    assert verdict(bundle, "restricted") is None
    assert verdict(bundle, "restricted") is None               # from the cache
    config = os.path.join(bundle, "config.json")
    with open(config) as handle:
        document = json.load(handle)
    document["process"]["user"] = {"uid": 0, "gid": 0}
    with open(config, "w") as handle:
        json.dump(document, handle)
    refused = verdict(bundle, "restricted")
    assert refused and "HR2012" in refused


def test_a_changed_policy_file_misses_the_cache(cache, root_bundle, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nextends: default\n")
    assert verdict(root_bundle, str(policy)) is None
    assert verdict(root_bundle, str(policy)) is None           # from the cache
    policy.write_text("version: 1\nextends: restricted\n")
    refused = verdict(root_bundle, str(policy))
    assert refused and "HR2012" in refused


def test_a_changed_parent_policy_misses_the_cache(cache, root_bundle, tmp_path):
    parent = tmp_path / "parent.yaml"
    parent.write_text("version: 1\nextends: default\n")
    child = tmp_path / "child.yaml"
    child.write_text("version: 1\nextends: parent.yaml\n")
    assert verdict(root_bundle, str(child)) is None
    parent.write_text("version: 1\nextends: restricted\n")     # only the file the child extends
    refused = verdict(root_bundle, str(child))
    assert refused and "HR2012" in refused


def test_a_planted_entry_is_believed_only_when_it_is_ours_and_intact(cache, root_bundle):
    path = plant(cache, root_bundle, "default", "planted refusal", builtin("default"))
    assert verdict(root_bundle, "default") == "planted refusal"    # the control: entries are read
    content = path.read_bytes()

    path.write_bytes(content.replace(b"planted refusal", b"planted refusaL"))   # body changed
    assert verdict_cache.lookup(path.stem) is None
    path.write_bytes(content)
    assert verdict(root_bundle, "default") == "planted refusal"

    os.chown(path, NOBODY, NOBODY)                                # written by another user
    assert verdict_cache.lookup(path.stem) is None
    os.chown(path, 0, 0)
    os.chmod(path, 0o644)                                         # readable or writable by others
    assert verdict_cache.lookup(path.stem) is None
    os.chmod(path, 0o600)
    os.chmod(cache, 0o777)                                        # a directory others may write to
    assert verdict_cache.lookup(path.stem) is None
    os.chmod(cache, 0o700)
    assert verdict(root_bundle, "default") == "planted refusal"
    os.unlink(path)
    os.symlink(str(cache / "elsewhere"), path)                    # a link is not followed
    assert verdict_cache.lookup(path.stem) is None


def test_an_ignored_entry_gives_the_plain_verdict(cache, root_bundle):
    path = plant(cache, root_bundle, "default", "planted refusal", builtin("default"))
    os.chown(path, NOBODY, NOBODY)
    assert verdict(root_bundle, "default") is None                # judged again, not believed
    assert verdict_cache.lookup(path.stem) == (True, None)       # and the entry is ours again


def test_an_entry_for_other_policy_content_is_not_believed(cache, root_bundle, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nextends: default\n")
    path = plant(cache, root_bundle, str(policy), "planted refusal", str(policy))
    assert verdict(root_bundle, str(policy)) == "planted refusal"     # the control
    policy.write_text("version: 1\nextends: default\ndescription: edited\n")
    assert verdict(root_bundle, str(policy)) is None
    assert path.exists()


def test_create_refuses_from_the_cache_with_the_rule_ids(oci, oci_rootfs, tmp_path, monkeypatch, cache):
    """End to end: the second `create` of a refused bundle is answered from the cache,
    with the same exit status and message, and nothing is created."""
    monkeypatch.setenv("HARDRUN_VERDICT_CACHE", str(cache))
    bundle = make_bundle(tmp_path / "cli", oci_rootfs, ["/bin/true"])
    first = oci("create", "--bundle", bundle, "c1", global_args=("--policy", "restricted"))
    assert first.returncode == 3 and "HR2012" in first.stderr
    assert len(list(cache.glob("*.verdict"))) == 1
    second = oci("create", "--bundle", bundle, "c1", global_args=("--policy", "restricted"))
    assert (second.returncode, second.stderr) == (first.returncode, first.stderr)
    assert oci("state", "c1").returncode != 0


@pytest.mark.parametrize("exemption", ["files: ['elsewhere/*']", "expires: 2099-12-31"])
def test_a_verdict_that_depends_on_the_path_or_the_date_is_not_cached(cache, root_bundle, tmp_path, exemption):
    """An exemption scoped to files judges the config's path, one that expires judges
    today's date: neither is in the key, so such a verdict is judged every time.
    The control: the same policy without the scope is cached."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nextends: restricted\nexemptions:\n  - rule: HR2012\n    reason: x\n")
    verdict(root_bundle, str(policy))
    assert entry_path(cache, root_bundle, str(policy))[0].exists()
    policy = tmp_path / "scoped.yaml"
    policy.write_text(f"version: 1\nextends: restricted\nexemptions:\n  - rule: HR2012\n    reason: x\n"
                      f"    {exemption}\n")
    first = verdict(root_bundle, str(policy))
    assert not entry_path(cache, root_bundle, str(policy))[0].exists()
    assert verdict(root_bundle, str(policy)) == first


def test_a_builtin_or_absolute_policy_hits_from_any_directory(cache, root_bundle, tmp_path, monkeypatch):
    """containerd's shim runs the runtime in each container's own bundle directory: the current
    directory is in the key only where the policy reference resolves from it."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nextends: restricted\n")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for reference in ("restricted", str(policy)):
        monkeypatch.chdir(first)
        refused = verdict(root_bundle, reference)
        assert refused and "HR2012" in refused
        _, key = entry_path(cache, root_bundle, reference)
        monkeypatch.chdir(second)
        assert entry_path(cache, root_bundle, reference)[1] == key
        assert verdict_cache.lookup(key) == (False, refused)


def test_a_relative_policy_path_is_judged_again_from_another_directory(cache, root_bundle, tmp_path, monkeypatch):
    """The control: the same relative reference names another file from another directory,
    with another verdict, so there the current directory must stay in the key."""
    strict, lax = tmp_path / "strict", tmp_path / "lax"
    for directory, parent in ((strict, "restricted"), (lax, "default")):
        directory.mkdir()
        (directory / "policy.yaml").write_text(f"version: 1\nextends: {parent}\n")
    monkeypatch.chdir(strict)
    refused = verdict(root_bundle, "policy.yaml")
    assert refused and "HR2012" in refused
    strict_key = entry_path(cache, root_bundle, "policy.yaml")[1]
    monkeypatch.chdir(lax)
    assert entry_path(cache, root_bundle, "policy.yaml")[1] != strict_key
    assert verdict(root_bundle, "policy.yaml") is None
