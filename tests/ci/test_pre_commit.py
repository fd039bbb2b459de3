"""The pre-commit hook (.pre-commit-hooks.yaml), run by the real pre-commit on a
temporary git repository that takes this checkout as its hook repository.

Everything runs offline, inside a network namespace with no interface up: pre-commit
clones the hook repository from a local path, and pip builds the hook's environment
from a local wheelhouse (conftest.py), with no index.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ci.conftest import copy_checkout
from tests.helpers import CLEAN_DOCKERFILE, ROOT

BAD_DOCKERFILE = "FROM ubuntu\nUSER root\nRUN curl -k https://example.com/x | sh\n"


def _run(args, cwd, env=None, check=True):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _git_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PIP_", "PRE_COMMIT"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    return env


def _commit_all(repo: Path, env: dict, message: str) -> str:
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-q", "--no-verify", "-m", message], repo, env)
    return _run(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()


@pytest.fixture(scope="module")
def hook_setup(tmp_path_factory, offline_pip_env):
    """(hook repository, its commit, offline environment for pre-commit)."""
    base = tmp_path_factory.mktemp("pre-commit")
    home = base / "home"
    home.mkdir()
    env = _git_env(home)
    hook_repo = copy_checkout(base / "hardrun")
    _run(["git", "init", "-q", "-b", "main"], hook_repo, env)
    rev = _commit_all(hook_repo, env, "hardrun")
    env.update(offline_pip_env, PRE_COMMIT_HOME=str(base / "cache"), VIRTUALENV_NO_DOWNLOAD="1")
    return hook_repo, rev, env


@pytest.fixture
def project(tmp_path, hook_setup):
    hook_repo, rev, env = hook_setup
    repo = tmp_path / "project"
    repo.mkdir()
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    config = {"repos": [{"repo": str(hook_repo), "rev": rev, "hooks": [{"id": "hardrun-audit"}]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    (repo / "README.md").write_text("# a project\n")
    _commit_all(repo, env, "start")
    _run([sys.executable, "-m", "pre_commit", "install"], repo, env)
    return repo, env


def _offline_commit(repo: Path, env: dict, message: str):
    """`git commit` (which runs the hook) in a new network namespace: no network at all."""
    _run(["git", "add", "-A"], repo, env)
    return _run(["unshare", "--net", "git", "commit", "-m", message], repo, env, check=False)


def test_the_network_namespace_has_no_network(tmp_path):
    inside = _run(["unshare", "--net", "ip", "-o", "link", "show", "up"], tmp_path)
    assert inside.stdout.strip() == ""
    # control: the same command outside shows this machine's interfaces up
    assert _run(["ip", "-o", "link", "show", "up"], tmp_path).stdout.strip() != ""


def test_hook_file_declares_the_hook():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "hardrun-audit")
    assert hook["language"] == "python"
    assert hook["entry"].startswith("hardrun audit")


@pytest.mark.parametrize("name", ["Dockerfile", "app/Dockerfile.prod", "web.Dockerfile",
                                  "Containerfile", "compose.yaml", "k8s/deploy.yml",
                                  "oci/config.json", "scripts/run.sh", "Makefile",
                                  "docs/howto.md", ".gitlab-ci.yml", "bin/start"])
def test_hook_files_cover_what_the_auditor_reads(name):
    import re
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    assert re.search(hook["files"], name)


def test_hook_files_leave_other_files_alone():
    import re
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    for name in ("main.py", "src/lib.c", "logo.png", "Cargo.lock"):
        assert not re.search(hook["files"], name), name


def test_a_bad_dockerfile_blocks_the_commit_and_a_good_one_passes(project):
    repo, env = project
    (repo / "Dockerfile").write_text(BAD_DOCKERFILE)
    blocked = _offline_commit(repo, env, "bad")
    output = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, output
    assert "hardrun audit" in output and "Failed" in output and "HR1001" in output
    head = _run(["git", "rev-list", "--count", "HEAD"], repo, env).stdout.strip()
    assert head == "1"      # the commit was not made
    (repo / "Dockerfile").write_text(CLEAN_DOCKERFILE)
    # other files of kinds hardrun does not read ride along without an error
    (repo / "notes.yaml").write_text("colour: blue\n")
    passed = _offline_commit(repo, env, "good")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "hardrun audit" in passed.stderr and "Passed" in passed.stderr
    assert _run(["git", "rev-list", "--count", "HEAD"], repo, env).stdout.strip() == "2"


def test_skip_unknown_passes_over_named_files_of_no_kind(hardrun, tmp_path):
    (tmp_path / "Dockerfile").write_text(BAD_DOCKERFILE)
    (tmp_path / "notes.yaml").write_text("colour: blue\n")
    (tmp_path / "build.sh").write_text("#!/bin/sh\nmake\n")
    names = ("Dockerfile", "notes.yaml", "build.sh")
    # control: named on the command line, a file of no kind is an error
    strict = hardrun("audit", *names, cwd=tmp_path)
    assert strict.returncode == 2 and "notes.yaml: error: cannot tell" in strict.stdout
    skipping = hardrun("audit", "--skip-unknown", *names, cwd=tmp_path)
    assert skipping.returncode == 1, skipping.stdout
    assert skipping.stdout.splitlines()[-1].startswith("FAIL: 1 file audited")
    # a named file that does not exist is still an error
    missing = hardrun("audit", "--skip-unknown", "Dockerfile", "gone.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "gone.yaml" in missing.stdout
