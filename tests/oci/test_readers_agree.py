"""hardrun-oci's reader (runtime/bundle.py, which runs a config.json) and the audit's
(frontends/oci.py, which judges it: `hardrun audit` and hardrun-oci's policy gate) map the
same decoded record (spec/oci_config.OciConfig): they must agree on every field both read,
or the gate judges another container than the one that runs. Checked on the repository's
example config, on hardrun-oci's test bundles and on generated configs, each read both ways:
by each reader from the file (the audit through YAML with its marks, hardrun-oci through
`json`) and from one decode, as `hardrun-oci create` does (docs/architecture.md, "One OCI
reader"). The audit's RunSpec of every OCI config in tests/data and examples is the same,
lines and all, from the marked YAML and from the JSON decode the gate uses."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hardrun.frontends import detect_kind
from hardrun.frontends.oci import parse_oci, spec_of
from hardrun.runtime import bundle as reader
from hardrun.spec import oci as writer
from hardrun.spec.capabilities import NUMBERS
from hardrun.spec.defaults import MASKED_PATHS, READONLY_PATHS
from tests.helpers import DATA, ROOT
from tests.oci.conftest import make_bundle

PRIVATE_ONLY = ("network", "pid", "ipc", "uts")     # the audit marks these "host" when absent


def both(bundle: str):
    """(the runtime's Bundle, the audit's RunSpec) of one bundle, the floor left out, each
    reader reading the file; checked against one decode of it too (`once`)."""
    loaded = reader.load(bundle, floor=False)
    with open(os.path.join(bundle, "config.json")) as handle:
        (spec,) = parse_oci(handle.read(), os.path.join(bundle, "config.json"))
    once_loaded, once_spec = once(bundle)
    assert once_spec == spec and once_loaded.config.args == loaded.config.args
    assert once_loaded.config.cap_sets == loaded.config.cap_sets and limits(once_loaded) == limits(loaded)
    return loaded, spec


def limits(loaded) -> list:
    return [getattr(loaded.limits, name) for name in type(loaded.limits).__slots__]


def once(bundle: str):
    """(Bundle, RunSpec) from one decode of config.json, as `hardrun-oci create` has them."""
    with open(os.path.join(bundle, "config.json")) as handle:
        decoded = reader.decode_text(bundle, handle.read(), floor=False)
    return reader.load(bundle, decoded=decoded), spec_of(decoded[0], os.path.join(bundle, "config.json"))


def assert_agree(loaded, spec) -> None:
    config = loaded.config
    assert spec.command == config.args
    assert tuple(f"{var.name}={var.value}" for var in spec.env) == config.env
    assert os.path.normpath(spec.workdir) == config.workdir
    assert spec.user == f"{config.user.uid}:{config.user.gid}"
    assert tuple(int(group) for group in spec.group_add) == tuple(config.user.groups)
    granted = 0
    for mask in config.cap_sets:
        granted |= mask
    assert {NUMBERS[name] for name in spec.cap_add} == {bit for bit in range(64) if granted >> bit & 1}
    assert spec.masked_paths == config.masked_paths and spec.readonly_paths == config.readonly_paths
    assert spec.read_only_root == config.read_only
    assert bool(spec.no_new_privileges) == config.no_new_privileges
    assert spec.oom_score_adj == config.oom_score_adj
    assert spec.hostname == (config.hostname or spec.hostname)
    private = {name for name, how in spec.namespaces.items() if how == "private"}
    assert private == set(config.namespaces) - {name for name, _ in config.namespace_paths}
    for name in PRIVATE_ONLY:
        assert (spec.namespaces[name] == "private") == (name in config.namespaces)
    assert spec.ulimits == loaded.rlimits
    assert spec.memory == loaded.limits.memory and spec.pids_limit == loaded.limits.pids
    assert spec.cpus == loaded.limits.cpus and spec.cpu_shares == loaded.limits.cpu_shares


def test_the_example_config_is_read_alike_by_both(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    with open(DATA / "oci" / "config.json") as handle:
        document = json.load(handle)
    # what this host cannot apply, which hardrun-oci refuses (tests/oci/test_bundle.py)
    document["process"].pop("apparmorProfile", None)
    for index, mount in enumerate(document["mounts"]):      # bind sources: made here, under the bundle
        if mount.get("type") == "bind" and mount.get("source", "").startswith("/"):
            mount["source"] = str(bundle / f"source-{index}")
            os.mkdir(mount["source"])
    (bundle / "config.json").write_text(json.dumps(document, indent=2))
    (bundle / document["root"]["path"]).mkdir(parents=True)
    assert_agree(*both(str(bundle)))


@pytest.mark.parametrize("extra", [
    {},
    {"process__user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 6]}},
    {"process__rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]},
    {"process__oomScoreAdj": 500},
    {"linux__resources": {"memory": {"limit": 1 << 28}, "pids": {"limit": 64},
                          "cpu": {"shares": 512, "quota": 50000, "period": 100000}}},
])
def test_hardrun_oci_s_test_bundles_are_read_alike_by_both(tmp_path, extra):
    (tmp_path / "rootfs").mkdir()
    assert_agree(*both(make_bundle(tmp_path / "b", str(tmp_path / "rootfs"), ["/bin/sh", "-c", "true"], **extra)))


# The control: two bundles apart in one field; each reader's view of the one set against
# the other's of the other is told apart, so every field compared above is compared.
APART = [
    ("args", {"process__args": ["/bin/false"]}),
    ("env", {"process__env": ["PATH=/sbin"]}),
    ("cwd", {"process__cwd": "/tmp"}),
    ("user", {"process__user": {"uid": 1, "gid": 0}}),
    ("groups", {"process__user": {"uid": 0, "gid": 0, "additionalGids": [7]}}),
    ("capabilities", {"process__capabilities": writer.capabilities(("CHOWN", "KILL"), False)}),
    ("no_new_privileges", {"process__noNewPrivileges": False}),
    ("oom_score_adj", {"process__oomScoreAdj": 10}),
    ("rlimits", {"process__rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}]}),
    ("masked paths", {"linux__maskedPaths": ["/proc/kcore"]}),
    ("read-only root", {"root": {"path": "rootfs", "readonly": False}}),
    ("namespaces", {"linux__namespaces": [{"type": "mount"}, {"type": "uts"}]}),
    ("memory", {"linux__resources": {"memory": {"limit": 1 << 28}}}),
    ("pids", {"linux__resources": {"pids": {"limit": 9}}}),
    ("cpu", {"linux__resources": {"cpu": {"shares": 100}}}),
]


@pytest.mark.parametrize("extra", [extra for _, extra in APART], ids=[name for name, _ in APART])
def test_the_comparison_tells_configs_apart(tmp_path, extra):
    (tmp_path / "rootfs").mkdir()
    plain = both(make_bundle(tmp_path / "plain", str(tmp_path / "rootfs"), ["/bin/true"]))
    other = both(make_bundle(tmp_path / "other", str(tmp_path / "rootfs"), ["/bin/true"], **extra))
    assert_agree(*plain)
    assert_agree(*other)
    with pytest.raises(AssertionError):
        assert_agree(plain[0], other[1])
    with pytest.raises(AssertionError):
        assert_agree(other[0], plain[1])


CAPS = sorted(NUMBERS)
names = st.text(alphabet="ABCXYZ_", min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caps=st.lists(st.sampled_from(CAPS), max_size=6, unique=True),
       namespaces=st.sets(st.sampled_from(["pid", "ipc", "uts", "network", "cgroup"])),
       args=st.lists(st.text(alphabet="abc/-= ", min_size=1, max_size=8), min_size=1, max_size=4),
       env=st.lists(st.tuples(names, st.text(alphabet="xyz=:/", max_size=6)), max_size=4),
       uid=st.integers(0, 70000), gid=st.integers(0, 70000),
       groups=st.lists(st.integers(0, 70000), max_size=3),
       nnp=st.booleans(), masked=st.booleans(), read_only=st.booleans(),
       oom=st.one_of(st.none(), st.integers(0, 1000)),
       nofile=st.one_of(st.none(), st.tuples(st.integers(1, 4096), st.integers(4096, 65536))),
       memory=st.one_of(st.none(), st.integers(1 << 20, 1 << 34)),
       pids=st.one_of(st.none(), st.integers(1, 10000)),
       cwd=st.sampled_from(["/", "/tmp", "/a/b/"]))
def test_generated_configs_are_read_alike_by_both(tmp_path_factory, caps, namespaces, args, env, uid, gid,
                                                   groups, nnp, masked, read_only, oom, nofile, memory, pids, cwd):
    base = tmp_path_factory.mktemp("gen")
    (base / "rootfs").mkdir()
    process: dict = {"args": args, "env": [f"{name}={value}" for name, value in env], "cwd": cwd,
                     "user": {"uid": uid, "gid": gid, **({"additionalGids": groups} if groups else {})},
                     "capabilities": writer.capabilities(caps, False), "noNewPrivileges": nnp}
    if oom is not None:
        process["oomScoreAdj"] = oom
    if nofile:
        process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": nofile[0], "hard": nofile[1]}]
    linux: dict = {"namespaces": [{"type": name} for name in sorted(namespaces | {"mount"})],
                   "maskedPaths": list(MASKED_PATHS) if masked else [],
                   "readonlyPaths": list(READONLY_PATHS) if masked else []}
    resources: dict = {}
    if memory:
        resources["memory"] = {"limit": memory}
    if pids:
        resources["pids"] = {"limit": pids}
    if resources:
        linux["resources"] = resources
    document = {"ociVersion": "1.2.0", "process": process, "root": {"path": "rootfs", "readonly": read_only},
                "linux": linux}
    if "uts" in namespaces:
        document["hostname"] = "gen"
    (base / "config.json").write_text(json.dumps(document, indent=2))
    assert_agree(*both(str(base)))


def oci_configs() -> list[str]:
    """Every OCI config.json of the repository's test data and examples."""
    found = []
    for top in (DATA, ROOT / "examples"):
        for directory, _, names in os.walk(top):
            found += [os.path.join(directory, name) for name in names
                      if name.endswith(".json") and detect_kind(os.path.join(directory, name)) == "oci"]
    return sorted(found)


def test_the_corpus_holds_the_engines_bundles_and_the_examples():
    names = {os.path.relpath(path, ROOT) for path in oci_configs()}
    assert "tests/data/oci/config.json" in names and "tests/data/oci/privileged-config.json" in names
    assert sum(name.startswith("tests/data/oci-engines/") for name in names) >= 10


@pytest.mark.parametrize("path", oci_configs(), ids=lambda path: os.path.relpath(path, ROOT))
def test_the_gate_s_decode_gives_the_audit_s_runspec(path):
    """The gate maps the record decoded by `json` for running (lines from the JSON text);
    `hardrun audit` maps the one decoded from marked YAML: the same RunSpec, lines and all."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    (audited,) = parse_oci(text, path)
    config, changes = reader.decode_text(os.path.dirname(path), text, floor=False)
    assert changes == () and config.problems == ()
    gated = spec_of(config, path)
    assert gated == audited and gated.lines == audited.lines
    # the control: a field changed in the JSON is seen by the comparison
    document = json.loads(text)
    document.setdefault("process", {})["cwd"] = "/elsewhere"
    changed = spec_of(reader.decode_text(os.path.dirname(path), json.dumps(document), floor=False)[0], path)
    assert changed != audited and changed.workdir == "/elsewhere"
