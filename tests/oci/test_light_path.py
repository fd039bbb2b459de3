"""The calls an engine makes several times per container (`state`, `start`, `kill`,
`delete`, `list`) import only the state side of hardrun-oci: no `json` (and through it
`re`), no `subprocess`, no click, no policy, audit or front-end module; `create` with its
verdict cached imports none of them but the verdict cache; and their JSON
(hardrun/jsonlite.py) is byte for byte what `json` writes and reads.

Each import check runs the real command in a fresh interpreter and lists the modules it
loaded; the control is `create` of a bundle whose verdict is not cached, which does load
the policy side, so the listing sees what a subcommand imports. The installed launcher
(scripts/setup.sh's hardrun-oci-py, `python -IS`) is checked the same way: no `site` for a
cached create nor for the shim's delete (which loads no cgroup set-up nor create's either), `site` and
YAML for a verdict not cached, and no engine's PYTHONPATH; a cached create loads exactly
the hardrun modules of CACHED_CREATE_MODULES (none of image_root, oci_joins, oci_exec)."""
from __future__ import annotations

import ast
import json
import os
import select
import subprocess
import sys

import pytest

from hardrun import jsonlite
from tests.helpers import hardrun_env
from tests.oci.conftest import make_bundle

HEAVY = ("json", "re", "subprocess", "click", "yaml", "enum")
HEAVY_PREFIXES = ("hardrun.policy", "hardrun.audit", "hardrun.frontends", "hardrun.cli.group")
LISTING = """
import sys
from hardrun.cli.oci import main
status = main(sys.argv[1:])
heavy = sorted(name for name in sys.modules if name in {heavy!r} or name.startswith({prefixes!r}))
with open({out!r}, "w") as handle:
    handle.write(" ".join(heavy))
sys.exit(status)
"""


def heavy_imports(tmp_path, root: str, *args, global_args=()) -> tuple[int, list[str], str]:
    """(exit status, the heavy modules the command imported, its stderr)."""
    out = tmp_path / "modules"
    code = LISTING.format(heavy=HEAVY, prefixes=HEAVY_PREFIXES, out=str(out))
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        result = subprocess.run([sys.executable, "-c", code, "--root", root, *global_args, *args],
                                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=hardrun_env(),
                                timeout=120)
    return result.returncode, out.read_text().split(), (tmp_path / "stderr").read_text()


def test_the_engine_s_frequent_calls_import_only_the_state_side(oci, oci_rootfs, tmp_path, monkeypatch):
    monkeypatch.setenv("HARDRUN_VERDICT_CACHE", str(tmp_path / "verdicts"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))   # the audit's caches cold: json is read
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"])
    # the control: create on a cache miss judges the bundle, and the listing shows it
    status, created_with, stderr = heavy_imports(tmp_path, oci.root, "create", "--bundle", bundle, "l1")
    assert status == 0, stderr
    assert "hardrun.policy.evaluate" in created_with and "json" in created_with
    # create again with the verdict cached: no json, re, enum, YAML, audit or front end either
    assert heavy_imports(tmp_path, oci.root, "delete", "--force", "l1")[0] == 0
    status, created_with, stderr = heavy_imports(tmp_path, oci.root, "create", "--bundle", bundle, "l1")
    assert status == 0, stderr
    assert created_with == ["hardrun.policy", "hardrun.policy.verdict_cache"]
    init = os.pidfd_open(oci.state("l1")["pid"])
    try:
        for args in (("state", "l1"), ("start", "l1"), ("list",), ("list", "--format", "json"),
                     ("kill", "l1", "KILL"), ("delete", "l1")):
            if args[0] == "delete":     # as the shim does: the init has exited before its delete
                assert select.select([init], [], [], 60)[0], "the killed init did not exit"
            status, imported, stderr = heavy_imports(tmp_path, oci.root, *args)
            assert status == 0, (args, stderr)
            assert imported == [], (args, imported)
    finally:
        os.close(init)
    assert not os.path.exists(os.path.join(oci.root, "l1"))


def test_the_light_path_s_errors_are_one_line_and_a_json_log_entry(oci, tmp_path):
    os.makedirs(oci.root, mode=0o700)
    log = tmp_path / "log.json"
    status, imported, stderr = heavy_imports(tmp_path, oci.root, "state", "missing",
                                             global_args=("--log", str(log), "--log-format", "json"))
    assert status == 1 and imported == []
    assert stderr == "hardrun-oci: container missing does not exist\n"
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and entry["msg"] == "container missing does not exist"
    status, imported, stderr = heavy_imports(tmp_path, oci.root, "kill", "missing", "NOSUCHSIGNAL")
    assert status == 2 and imported == []
    assert stderr.count("\n") == 1 and "unknown signal 'NOSUCHSIGNAL'" in stderr


def corpus() -> list:
    """Every JSON document of the tests' data: real bundles of the engines, schemas, SARIF."""
    found = []
    base = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
    for directory, _, names in os.walk(base):
        for name in sorted(names):
            if name.endswith(".json"):
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    text = handle.read()
                try:
                    found.append(json.loads(text))
                except ValueError:
                    continue    # the front ends' bad-input examples
    return found


def test_jsonlite_writes_and_reads_what_json_does():
    documents = corpus()
    assert len(documents) > 20
    documents += [{"é": "\u2028\"\\\x00", "n": [0, -1, 2.5, 1e300, None, True, False]}, [], {}, "text", 7]
    for document in documents:
        text = json.dumps(document)
        assert jsonlite.dumps(document) == text
        assert jsonlite.loads(text) == document
        assert jsonlite.loads(" \n" + json.dumps(document, indent=1) + "\n") == document
        assert jsonlite.loads(text.encode()) == document


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a": 1} x', "{'a': 1}", "nul", '[1,]', "[1] [2]"])
def test_jsonlite_refuses_what_json_refuses_with_json_s_message(text):
    with pytest.raises(ValueError) as plain:
        json.loads(text)
    with pytest.raises(ValueError) as light:
        jsonlite.loads(text)
    assert str(light.value) == str(plain.value)


def test_jsonlite_refuses_what_json_cannot_write():
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonlite.dumps({"a": object()})


# -- the installed command: scripts/setup.sh's hardrun-oci-py, behind the compiled front ------

LAUNCHER = os.path.join(os.path.dirname(sys.executable), "hardrun-oci-py")


# What a create with its verdict cached imports of hardrun, exactly (the default bundle: a
# user namespace of its own, its idmapped root). A module joining this list is a cost on
# every container an engine starts: load it where it is needed instead (the parts of the
# run path that create has no use of: image_root, oci_joins, oci_exec, the policy side).
CACHED_CREATE_MODULES = frozenset({
    "hardrun", "hardrun.cli", "hardrun.cli.oci", "hardrun.errors", "hardrun.jsonlite", "hardrun.policy",
    "hardrun.policy.verdict_cache", "hardrun.runtime", "hardrun.runtime._kernel", "hardrun.runtime.bundle",
    "hardrun.runtime.caps", "hardrun.runtime.cgroup_removal", "hardrun.runtime.cgroups",
    "hardrun.runtime.child", "hardrun.runtime.config", "hardrun.runtime.device_rules",
    "hardrun.runtime.devices", "hardrun.runtime.idmap", "hardrun.runtime.init", "hardrun.runtime.jobcontrol",
    "hardrun.runtime.lsm", "hardrun.runtime.mounts", "hardrun.runtime.oci", "hardrun.runtime.oci_create",
    "hardrun.runtime.oci_userns", "hardrun.runtime.parent", "hardrun.runtime.process",
    "hardrun.runtime.seccomp", "hardrun.runtime.seccomp_cache", "hardrun.runtime.seccomp_platform",
    "hardrun.runtime.state", "hardrun.runtime.stdio", "hardrun.runtime.syscalls", "hardrun.runtime.tunables",
    "hardrun.runtime.ulimits", "hardrun.runtime.userns", "hardrun.spec", "hardrun.spec.capabilities",
    "hardrun.spec.defaults", "hardrun.spec.oci", "hardrun.spec.oci_config", "hardrun.spec.record",
    "hardrun.spec.run", "hardrun.userfiles",
})


def launcher_imports(tmp_path, root: str, *args, env=None) -> tuple[int, set[str], str]:
    """(exit status, the modules the launcher's run imported, its stderr): its own script run
    as its first line says, with `-X importtime` added to what that line asks for."""
    with open(LAUNCHER, encoding="utf-8") as handle:
        interpreter, *flags = handle.readline()[2:].split()
    err = tmp_path / "launcher-stderr"
    with open(err, "w") as stderr:
        result = subprocess.run([interpreter, *flags, "-X", "importtime", LAUNCHER, "--root", root, *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                env=env or hardrun_env(), timeout=120)
    lines = err.read_text().splitlines()
    modules = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
    return result.returncode, modules - {"imported package"}, "\n".join(
        line for line in lines if not line.startswith("import time:"))


def test_the_launcher_starts_isolated_and_without_site_until_a_third_party_module(oci, oci_rootfs, tmp_path,
                                                                                  monkeypatch):
    with open(LAUNCHER, encoding="utf-8") as handle:
        assert handle.readline().rstrip().endswith(" -IS"), f"{LAUNCHER}: run scripts/setup.sh"
    monkeypatch.setenv("HARDRUN_VERDICT_CACHE", str(tmp_path / "verdicts"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bundle = make_bundle(tmp_path / "b", oci_rootfs, ["/bin/sleep", "60"])
    # a verdict not cached: YAML (site-packages) is needed, `site` is run for it, and create works
    status, imported, stderr = launcher_imports(tmp_path, oci.root, "create", "--bundle", bundle, "s1")
    assert status == 0, stderr
    assert {"site", "yaml", "hardrun.policy.evaluate"} <= imported
    assert launcher_imports(tmp_path, oci.root, "delete", "--force", "s1")[0] == 0
    # cached: neither `site` nor any third-party module; nor for the engine's delete of a
    # container its shim has killed and reaped
    status, imported, stderr = launcher_imports(tmp_path, oci.root, "create", "--bundle", bundle, "s1")
    assert status == 0, stderr
    assert "site" not in imported and "hardrun.runtime.oci" in imported
    loaded = {name for name in imported if name == "hardrun" or name.startswith("hardrun.")}
    assert loaded == CACHED_CREATE_MODULES, (f"added: {sorted(loaded - CACHED_CREATE_MODULES)}, "
                                             f"gone: {sorted(CACHED_CREATE_MODULES - loaded)}")
    pid = oci.state("s1")["pid"]
    oci("start", "s1", check=True)
    os.kill(pid, 9)
    os.waitpid(pid, 0)      # the test process is the shim: a subreaper (conftest's as_shim)
    status, imported, stderr = launcher_imports(tmp_path, oci.root, "delete", "s1")
    assert status == 0, stderr
    assert "site" not in imported and "hardrun.runtime.cgroup_removal" in imported
    assert not imported & {"hardrun.runtime.cgroups", "hardrun.runtime.bundle", "hardrun.runtime.child",
                           "hardrun.runtime.oci_create"}
    assert not os.path.exists(os.path.join(oci.root, "s1"))


def test_the_launcher_keeps_the_engine_s_python_variables_out(tmp_path):
    shadow = tmp_path / "shadow"
    (shadow / "hardrun" / "cli").mkdir(parents=True)
    mark = tmp_path / "mark"
    (shadow / "hardrun" / "__init__.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(shadow)}
    result = subprocess.run([LAUNCHER, "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and "hardrun-oci version" in result.stdout, result.stderr
    assert not mark.exists()
    # the control: the same variable reaches a plain start of the same script
    subprocess.run([sys.executable, LAUNCHER, "--version"], capture_output=True, env=env, timeout=60)
    assert mark.exists()


def test_the_launcher_puts_hardrun_after_the_standard_library():
    """hardrun's directory (site-packages, for an install that is not editable) goes where
    `site` would put it, after the standard library: nothing installed there shadows a
    standard module for the runtime."""
    with open(LAUNCHER, encoding="utf-8") as handle:
        interpreter, *flags = handle.readline()[2:].split()
        prelude = handle.read().split("\nfrom hardrun.cli.oci import")[0]
    show = prelude + "\nimport os\nprint(repr((sys.path, HARDRUN_HOME, os.path.dirname(os.__file__))))\n"
    result = subprocess.run([interpreter, *flags, "-c", show], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    path, home, stdlib = ast.literal_eval(result.stdout)
    assert home in path and path.index(stdlib) < path.index(home), path
