"""The `hardrun` command as scripts/setup.sh installs it: bin/hardrun started as
`python -IS`. It finds hardrun and the third-party modules in its environment's
site-packages without the site module's start-up, keeps the caller's PYTHON* variables
out, and a start served by the plan cache imports neither click, PyYAML nor the parser."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hardrun.runtime import plan_cache
from tests.helpers import ROOT

SCRIPT = ROOT / "bin" / "hardrun"
STATUS = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"
PARSER = {"hardrun.frontends.docker_argv", "hardrun.frontends.docker_runspec", "hardrun.frontends.docker_flags"}


def _script(*args, flags=("-IS",), env=None, cwd="/"):
    """bin/hardrun run by this environment's interpreter with `flags`, as its first line
    would start it; `env` is the whole environment (no PYTHONPATH unless given)."""
    return subprocess.run([sys.executable, *flags, str(SCRIPT), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _imports(stderr: str) -> set:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_the_installed_command_starts_isolated_without_site():
    """scripts/setup.sh adds -IS to the first line pip writes (pip drops the source's flags)."""
    installed = Path(sys.executable).parent / "hardrun"
    assert installed.read_text().splitlines()[0] == f"#!{sys.executable} -IS"
    assert SCRIPT.read_text().splitlines()[0] == "#!python -IS"


def test_a_warm_start_under_IS_imports_no_click_yaml_or_parser_and_confines_alike(env, rootfs, tmp_path):
    variables = {"PATH": "/usr/bin:/bin", **env, plan_cache.ENV: str(tmp_path / "plans")}
    argv = ("run", "--rootfs", rootfs, "--", "/bin/sh", "-c", STATUS)
    cold = _script(*argv, flags=("-IS", "-X", "importtime"), env=variables)
    assert cold.returncode == 0, cold.stderr
    assert PARSER <= _imports(cold.stderr)          # control: a first start parses the flags
    warm = _script(*argv, flags=("-IS", "-X", "importtime"), env=variables)
    assert warm.returncode == 0, warm.stderr
    imported = _imports(warm.stderr)
    assert "hardrun.runtime.parent" in imported
    assert not {name for name in imported if name.split(".")[0] in ("click", "yaml", "_yaml")}
    assert not imported & PARSER and "sitecustomize" not in imported
    assert warm.stdout == cold.stdout
    assert "Seccomp:\t2" in warm.stdout and "NoNewPrivs:\t1" in warm.stdout
    assert "CapEff:\t0000000000000000" in warm.stdout


def test_the_cold_paths_under_IS_reach_click_and_pyyaml(tmp_path):
    variables = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    version = _script("--version", env=variables)
    assert version.returncode == 0 and "hardrun" in version.stdout, version.stderr
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  web:\n    image: nginx:1.27\n    privileged: true\n")
    audit = _script("audit", "-f", "json", str(compose), flags=("-IS", "-X", "importtime"), env=variables)
    assert audit.returncode == 1, audit.stderr
    assert "privileged" in {finding["practice"] for finding in json.loads(audit.stdout)["findings"]}
    assert "yaml" in _imports(audit.stderr)


def test_the_callers_pythonpath_does_not_reach_the_command(tmp_path):
    """A `hardrun` package planted on PYTHONPATH runs in place of hardrun under a plain
    interpreter (the control), never under -IS."""
    planted = tmp_path / "planted" / "hardrun"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("")
    (planted / "__main__.py").write_text("def main():\n    print('planted')\n    return 0\n")
    variables = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(planted.parent)}
    control = _script("--version", flags=(), env=variables)
    assert (control.returncode, control.stdout) == (0, "planted\n"), control.stderr
    isolated = _script("--version", env=variables)
    assert isolated.returncode == 0 and "planted" not in isolated.stdout and "hardrun" in isolated.stdout
