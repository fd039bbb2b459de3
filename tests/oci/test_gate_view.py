"""The verdict cache's key under engines (verdict_cache.gate_view): the fields it leaves out
or fixes are read by no part of the gate, and everything the gate does read stays in the key.

The corpus is real engine bundles (tests/data/oci-engines/, captured from Docker and
containerd). Each left-out field is changed to other values, to the wrong type and removed,
each string-only field (hostname, root.path) and Docker's HOSTNAME=<hex> to other values:
the key stays, and so do the verdict and the rule ids of every built-in policy (the gate
judged in full each time, no cache). Controls: changing a field the rules read (a
capability, an environment variable, HOSTNAME to a credential) changes the key and the
rule ids; a config not in the engines' compact form, or with a key given twice, keeps all
its bytes in the key; the engine's own /etc/hosts bind counts by the front end's decision,
which changes the key when it changes (its source gone, another bundle directory)."""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import shutil

import pytest

from hardrun.cli.oci import _judge
from hardrun.frontends.oci import parse_oci
from hardrun.policy import verdict_cache
from hardrun.policy.evaluate import evaluate_runspec
from hardrun.policy.load import builtin_policies, load_policy
from hardrun.runtime.bundle import raise_floor
from hardrun.spec.oci import SANDBOX_ANNOTATIONS

ENGINES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "oci-engines")
CORPUS = sorted(name for name in os.listdir(ENGINES) if name.endswith(".json"))
POLICIES = sorted(builtin_policies())
UNREAD_VALUES = ("/other/cgroup/path", 42, {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "x"]}]})


def compact(document: dict) -> bytes:
    """The form Docker and containerd write."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def load(name: str) -> dict:
    with open(os.path.join(ENGINES, name), encoding="utf-8") as handle:
        return json.load(handle)


def judged(config: bytes, bundle: str) -> dict:
    """Per policy: the plain gate's refusal (None: allowed) and the rule ids it found."""
    path = os.path.join(bundle, "config.json")
    out = {}
    for name in POLICIES:
        _, refusal = _judge(config, path, name, True)
        document = json.loads(config)
        raise_floor(document)
        specs = parse_oci(json.dumps(document, indent=1), path)
        rules = sorted({finding.rule for spec in specs for finding in evaluate_runspec(spec, load_policy(name))})
        out[name] = (refusal, rules)
    return out


def mutations(document: dict):
    """(what, the document with one left-out field changed) for each left-out field."""
    for value in UNREAD_VALUES:
        for where in ("hooks", "linux.cgroupsPath"):
            changed = copy.deepcopy(document)
            section, _, name = where.rpartition(".")
            (changed[section] if section else changed)[name] = value
            yield f"{where}={value!r}", changed
        changed = copy.deepcopy(document)
        changed.setdefault("annotations", {})["io.kubernetes.pod.name"] = value
        changed["annotations"]["com.docker.other"] = value
        yield f"annotations={value!r}", changed
    for where in ("hooks", "linux.cgroupsPath"):
        changed = copy.deepcopy(document)
        section, _, name = where.rpartition(".")
        (changed[section] if section else changed).pop(name, None)
        yield f"{where} removed", changed
    # every annotation but the pod sandbox's (the front end reads those: a control below)
    changed = copy.deepcopy(document)
    changed["annotations"] = {name: value for name, value in document.get("annotations", {}).items()
                              if name in SANDBOX_ANNOTATIONS}
    yield "annotations removed", changed
    for value in ("", "/", "0123456789ab"):
        for section, name in ((None, "hostname"), ("root", "path")):
            if name not in (document[section] if section else document):
                continue    # present or not stays in the key
            changed = copy.deepcopy(document)
            (changed[section] if section else changed)[name] = value
            yield f"{section}.{name}={value!r}", changed
    env = document["process"]["env"]
    for what, order in (("rotated", env[1:] + env[:1]), ("reversed", env[::-1])):
        changed = copy.deepcopy(document)
        changed["process"]["env"] = order
        yield f"the environment {what}", changed
    for value in ("000000000000", "0123456789abcdef" * 4, "4512de904489"):
        if not any(verdict_cache._is_hex_hostname(item) for item in document["process"]["env"]):
            continue    # the CRI's HOSTNAME=<the node's name> is kept as it is
        changed = copy.deepcopy(document)
        changed["process"]["env"] = [item for item in changed["process"]["env"] if not item.startswith("HOSTNAME=")]
        changed["process"]["env"].append(f"HOSTNAME={value}")
        yield f"HOSTNAME={value}", changed


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("gate-view") / "b")


@pytest.mark.parametrize("name", CORPUS)
def test_a_left_out_field_changes_neither_the_key_nor_the_verdict(name, bundle_dir):
    document = load(name)
    original = compact(document)
    assert verdict_cache.gate_view(original, bundle_dir)[0] == b"view"   # the engines' form: normalised
    expected_key = verdict_cache.key(original, "default", True, bundle_dir)
    expected = judged(original, bundle_dir)
    assert any(refusal for refusal, _ in expected.values()) or name.startswith("ctr")   # Docker's are refused somewhere
    for what, changed in mutations(document):
        config = compact(changed)
        assert verdict_cache.key(config, "default", True, bundle_dir) == expected_key, what
        assert judged(config, bundle_dir) == expected, what


@pytest.mark.parametrize("name", CORPUS)
def test_a_field_the_rules_read_changes_the_key_and_the_rule_ids(name, bundle_dir):
    """The control: the same machinery sees a change that matters."""
    document = load(name)
    original = compact(document)
    key = verdict_cache.key(original, "default", True, bundle_dir)
    before = judged(original, bundle_dir)
    for what, change in (("CAP_SYS_ADMIN", lambda d: d["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")),
                         ("an AWS key", lambda d: d["process"]["env"].append("KEY=AKIAABCDEFGHIJKLMNOP"))):
        changed = copy.deepcopy(document)
        change(changed)
        config = compact(changed)
        assert verdict_cache.key(config, "default", True, bundle_dir) != key, what
        assert judged(config, bundle_dir) != before, what
    # HOSTNAME holding what is not hex digits alone (a credential) is not fixed
    changed = copy.deepcopy(document)
    changed["process"]["env"].append("HOSTNAME=AKIAABCDEFGHIJKLMNOP")
    assert verdict_cache.key(compact(changed), "default", True, bundle_dir) != key
    assert judged(compact(changed), bundle_dir) != before
    for what, value in (("a hostname that is no string", 5), ("root.path that is no string", ["x"])):
        changed = copy.deepcopy(document)
        if what.startswith("a hostname"):
            changed["hostname"] = value
        else:
            changed["root"]["path"] = value
        assert verdict_cache.key(compact(changed), "default", True, bundle_dir) != key, what


def test_hostname_is_no_secret_s_name_and_hex_digits_no_credential():
    """What the fixed HOSTNAME=<hex> rests on (hardrun/audit/secrets.py)."""
    import random
    from hardrun.audit import secrets
    assert not secrets.is_secret_name("HOSTNAME")
    generator = random.Random(18)
    for length in range(12, 65):
        for _ in range(20):
            value = "".join(generator.choice("0123456789abcdef") for _ in range(length))
            assert secrets.find_credential_literals(value) == []


def test_containerd_s_containers_share_a_key(bundle_dir):
    """ctr's bundles differ only in cgroupsPath."""
    def key_of(name: str) -> str:
        with open(os.path.join(ENGINES, name), "rb") as handle:
            return verdict_cache.key(handle.read(), "default", True, bundle_dir)
    assert key_of("ctr-1.json") == key_of("ctr-2.json")


def materialise(name: str, base) -> tuple[bytes, str]:
    """A Docker bundle as its daemon has it: the per-container files under
    <data-root>/containers/<id>/ and the bundle directory named after the id."""
    document = load(name)
    container_id = document["linux"]["cgroupsPath"].rsplit("/", 1)[1]
    files = base / "data" / "containers" / container_id
    files.mkdir(parents=True)
    for mount in document["mounts"]:
        if mount["source"].startswith("/tmp/") and "/containers/" in mount["source"]:
            mount["source"] = str(files / os.path.basename(mount["source"]))
            if mount["destination"] != "/dev/shm":
                (files / os.path.basename(mount["source"])).write_text("x\n")
    return compact(document), str(base / "moby" / container_id)


@pytest.mark.parametrize("pair", [("docker-none-1.json", "docker-none-2.json"),
                                  ("docker-default-1.json", "docker-default-2.json")])
def test_docker_s_containers_share_a_key(pair, tmp_path):
    (first, first_bundle), (second, second_bundle) = (materialise(name, tmp_path / name) for name in pair)
    assert first != second
    assert verdict_cache.key(first, "default", True, first_bundle) == \
        verdict_cache.key(second, "default", True, second_bundle)
    assert judged(first, first_bundle) == judged(second, second_bundle)
    # the control: the same bundle elsewhere, where its files are no longer the engine's own
    assert verdict_cache.key(first, "default", True, str(tmp_path / "x" / "elsewhere")) != \
        verdict_cache.key(first, "default", True, first_bundle)
    assert judged(first, str(tmp_path / "x" / "elsewhere")) != judged(first, first_bundle)


def test_a_config_in_another_form_keeps_all_its_bytes_in_the_key(bundle_dir):
    document = load("ctr-1.json")
    for form in (lambda d: json.dumps(d, indent=1).encode(), lambda d: json.dumps(d).encode()):
        changed = copy.deepcopy(document)
        changed["linux"]["cgroupsPath"] = "/elsewhere"
        assert verdict_cache.gate_view(form(document), bundle_dir)[0] != b"view"
        assert verdict_cache.key(form(document), "default", True, bundle_dir) != \
            verdict_cache.key(form(changed), "default", True, bundle_dir)


def test_a_key_given_twice_keeps_all_its_bytes_in_the_key(bundle_dir):
    """The front end and the cache's parser could each keep another of the two values."""
    text = compact(load("ctr-1.json"))
    twice = text[:-1] + b',"process":{"args":["sh"]}}'
    assert verdict_cache.gate_view(twice, bundle_dir)[:1] == [twice]


def test_the_bundle_directory_is_in_the_key_exactly_when_an_engine_file_is_bound(tmp_path):
    document = load("ctr-1.json")
    config = compact(document)
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    assert verdict_cache.key(config, "default", True, first) == verdict_cache.key(config, "default", True, second)
    # a bind of /etc/hosts from a file in a directory named like the bundle: the engine's own copy
    name = "0123456789abcdef"
    source_dir = tmp_path / "state" / name
    source_dir.mkdir(parents=True)
    (source_dir / "hosts").write_text("127.0.0.1 localhost\n")
    document["mounts"].append({"destination": "/etc/hosts", "type": "bind", "source": str(source_dir / "hosts"),
                               "options": ["rbind", "rw"]})
    config = compact(document)
    own, other = str(tmp_path / "bundles" / name), str(tmp_path / "bundles" / "fedcba9876543210")
    assert judged(config, own) != judged(config, other)          # the front end reads the directory
    assert verdict_cache.key(config, "default", True, own) != verdict_cache.key(config, "default", True, other)
    key = verdict_cache.key(config, "default", True, own)
    os.unlink(source_dir / "hosts")      # no longer a file: no longer the engine's copy
    assert verdict_cache.key(config, "default", True, own) != key
    shutil.rmtree(source_dir)


def materialise_captured(name: str, base) -> tuple[bytes, str]:
    """A Podman or CRI bundle as its engine had it, moved under `base`: every bind source of
    the engine's state made again (a file, /dev/shm's a directory), the bundle directory at its
    captured place (Podman: <root>/overlay-containers/<id>/userdata, where its /dev/shm is;
    the CRI: <state>/io.containerd.runtime.v2.task/k8s.io/<id>, the id in cgroupsPath)."""
    document = load(name)
    for mount in document["mounts"]:
        source = mount.get("source", "")
        if mount.get("type") == "bind" and source.startswith("/tmp/hr-"):
            mount["source"] = moved = str(base) + source
            os.makedirs(moved if mount["destination"] == "/dev/shm" else os.path.dirname(moved), exist_ok=True)
            if mount["destination"] != "/dev/shm":
                with open(moved, "w") as handle:
                    handle.write("x\n")
    if name.startswith("podman"):
        bundle = next(m["source"] for m in document["mounts"] if m["destination"] == "/dev/shm").rsplit("/", 1)[0]
    else:
        bundle = materialise_cri_bundle(document, base)
    return compact(document), bundle


def materialise_cri_bundle(document: dict, base) -> str:
    """The CRI's bundle directory of a captured container (its sources already moved under
    `base`) as containerd lays it out: <state>/io.containerd.runtime.v2.task/k8s.io/<id> (the
    state of its /dev/shm), its `work` link to the same under containerd's root (that of its
    /etc/resolv.conf), and its sandbox's bundle beside it."""
    def home(destination: str) -> str:        # the captured sources, moved under `base`
        source = next(m["source"] for m in document["mounts"] if m["destination"] == destination
                      and m["type"] == "bind")
        return source.split("/io.containerd.grpc.v1.cri/")[0]
    tasks = home("/dev/shm") + "/io.containerd.runtime.v2.task/k8s.io"
    root = home("/etc/resolv.conf")
    container_id = document["linux"]["cgroupsPath"].rsplit("/", 1)[1]
    bundle = os.path.join(tasks, container_id)
    os.makedirs(bundle, exist_ok=True)
    os.makedirs(os.path.join(tasks, document["annotations"]["io.kubernetes.cri.sandbox-id"]), exist_ok=True)
    if not os.path.lexists(os.path.join(bundle, "work")):
        os.symlink(root + "/io.containerd.runtime.v2.task/k8s.io/" + container_id, os.path.join(bundle, "work"))
    return bundle


def engine_binds(config: bytes, bundle: str) -> dict:
    (spec,) = parse_oci(config.decode(), os.path.join(bundle, "config.json"))
    return {mount.target: mount.type for mount in spec.mounts if mount.source and mount.source.startswith("/tmp/")}


@pytest.mark.parametrize("name", ["podman-1.json", "cri-1.json", "cri-sandbox-1.json"])
def test_podman_s_and_the_cri_s_own_binds_are_engine_files(name, tmp_path):
    """Their /etc/hosts, /etc/hostname, /etc/resolv.conf, /run/.containerenv and /dev/shm come
    from the engine's state for this container (its pod: a CRI container's /dev/shm is its pod's,
    from the sandbox its annotation names, in the CRI's layout): no host path a policy judges."""
    config, bundle = materialise_captured(name, tmp_path)
    binds = engine_binds(config, bundle)
    assert "/dev/shm" in binds
    assert set(binds.values()) == {"engine-file"}, binds
    refusal, rules = judged(config, bundle)["baseline"]
    assert refusal is None and "HR3002" not in rules
    # the control: the same bundle in a directory named after no container and, for the CRI,
    # naming another pod: its binds are host paths
    elsewhere = str(tmp_path / "elsewhere" / ("f" * 64))
    document = json.loads(config)
    if "io.kubernetes.cri.sandbox-id" in document.get("annotations", {}):
        document["annotations"]["io.kubernetes.cri.sandbox-id"] = "e" * 64
    config = compact(document)
    assert set(engine_binds(config, elsewhere).values()) == {"bind"}
    refusal, rules = judged(config, elsewhere)["baseline"]
    assert refusal and "HR3002" in rules


@pytest.mark.parametrize("annotation", SANDBOX_ANNOTATIONS)
def test_an_annotation_naming_another_container_vouches_for_none_of_its_files(annotation, tmp_path):
    """`podman run --annotation io.kubernetes.cri.sandbox-id=<other id> -v <its hosts>:/etc/hosts
    -v <its shm>:/dev/shm` (or CRI-O's annotation): the other container's files stay host mounts
    (HR3002 under baseline). The control: the same container's own copies are the engine's."""
    config, bundle = materialise_captured("podman-1.json", tmp_path)
    assert set(engine_binds(config, bundle).values()) == {"engine-file"}      # the control
    document = json.loads(config)
    other_id = "e" * 64
    other = tmp_path / "root" / "overlay-containers" / other_id / "userdata"
    (other / "shm").mkdir(parents=True)
    (other / "hosts").write_text("x\n")
    document["annotations"][annotation] = other_id
    for mount in document["mounts"]:
        if mount["destination"] in ("/dev/shm", "/etc/hosts"):
            mount["source"] = str(other / os.path.basename(mount["destination"]))
    binds = engine_binds(compact(document), bundle)
    assert binds["/dev/shm"] == "bind" and binds["/etc/hosts"] == "bind"
    refusal, rules = judged(compact(document), bundle)["baseline"]
    assert refusal and "HR3002" in rules and str(other / "shm") in refusal and str(other / "hosts") in refusal


def test_the_cri_s_annotation_vouches_only_in_the_cri_s_layout(tmp_path):
    """A CRI container's pod files are its own only with its bundle in containerd's k8s.io task
    directory and the files in the named sandbox's directory. The control is the captured bundle
    where the CRI put it (its /etc/hosts is the engine's); the attacks: the same bundle in
    another namespace's task directory (`ctr run`), the annotation naming another pod whose
    files are bound, and that pod no task of this containerd (tests/oci/test_cri_pod_files.py)."""
    config, bundle = materialise_captured("cri-1.json", tmp_path)
    assert engine_binds(config, bundle)["/etc/hosts"] == "engine-file"
    elsewhere = bundle.replace("/k8s.io/", "/default/")
    assert engine_binds(config, elsewhere)["/etc/hosts"] == "bind"
    assert "HR3002" in judged(config, elsewhere)["baseline"][1]
    # the verdict cache shares the decision: the same config misses there
    assert verdict_cache.key(config, "default", True, elsewhere) != verdict_cache.key(config, "default", True, bundle)
    document = json.loads(config)
    hosts = next(m for m in document["mounts"] if m["destination"] == "/etc/hosts")
    other = os.path.join(os.path.dirname(os.path.dirname(hosts["source"])), "e" * 64)
    os.makedirs(other)
    hosts["source"] = os.path.join(other, "hosts")
    with open(hosts["source"], "w") as handle:
        handle.write("x\n")
    assert engine_binds(compact(document), bundle)["/etc/hosts"] == "bind"
    document["annotations"]["io.kubernetes.cri.sandbox-id"] = "e" * 64
    assert engine_binds(compact(document), bundle)["/etc/hosts"] == "bind"      # no such pod here
    os.makedirs(os.path.join(os.path.dirname(bundle), "e" * 64))       # its sandbox's task
    assert engine_binds(compact(document), bundle)["/etc/hosts"] == "engine-file"   # that pod's member


def test_dev_shm_is_the_engine_s_own_only_as_its_container_s_directory(tmp_path):
    """The host's /dev/shm, another container's (`--ipc container:`), and a file named shm stay host mounts."""
    config, bundle = materialise_captured("podman-1.json", tmp_path)
    document = json.loads(config)
    shm = next(m for m in document["mounts"] if m["destination"] == "/dev/shm")
    other = tmp_path / "root" / "overlay-containers" / ("e" * 64) / "userdata" / "shm"
    other.mkdir(parents=True)
    a_file = tmp_path / "x" / os.path.basename(os.path.dirname(bundle)) / "shm"
    a_file.parent.mkdir(parents=True)
    a_file.write_text("x")
    for source in ("/dev/shm", str(other), str(a_file)):
        shm["source"] = source
        (spec,) = parse_oci(compact(document).decode(), os.path.join(bundle, "config.json"))
        assert {m.target: m.type for m in spec.mounts}["/dev/shm"] == "bind", source


def test_the_cri_s_containers_share_a_key_across_pods(tmp_path):
    """Two containers of one pod, and one of another pod, differ only in what the key leaves out
    or judges as the front end does (the sandbox's id, whose files are the engine's own either
    way; the paths of the sandbox's namespaces, another container's either way): one key, and
    the same verdict and rule ids under every policy. Controls: joining the host's network
    namespace (`/proc/1/ns/net`), and the annotation naming another pod than the one whose files
    are bound, change the key and the verdict."""
    keys, verdicts, documents = {}, {}, {}
    for name in ("cri-1.json", "cri-2.json", "cri-3.json"):
        config, bundle = materialise_captured(name, tmp_path)     # one containerd's state
        keys[name] = verdict_cache.key(config, "default", True, bundle)
        verdicts[name] = {policy: (bool(refusal), rules) for policy, (refusal, rules) in judged(config, bundle).items()}
        documents[name] = (json.loads(config), bundle)
    first, third = documents["cri-1.json"][0], documents["cri-3.json"][0]
    sandbox = "io.kubernetes.cri.sandbox-id"
    assert first["annotations"][sandbox] != third["annotations"][sandbox]
    assert [n.get("path") for n in first["linux"]["namespaces"]] != \
        [n.get("path") for n in third["linux"]["namespaces"]]
    assert keys["cri-1.json"] == keys["cri-2.json"] == keys["cri-3.json"]
    assert verdicts["cri-1.json"] == verdicts["cri-2.json"] == verdicts["cri-3.json"]
    document, bundle = documents["cri-3.json"]
    host = copy.deepcopy(document)
    network = next(n for n in host["linux"]["namespaces"] if n["type"] == "network")
    network["path"] = "/proc/1/ns/net"
    assert verdict_cache.key(compact(host), "default", True, bundle) != keys["cri-3.json"]
    assert judged(compact(host), bundle) != judged(compact(document), bundle)
    other_pod = copy.deepcopy(document)
    other_pod["annotations"][sandbox] = first["annotations"][sandbox]
    assert verdict_cache.key(compact(other_pod), "default", True, bundle) != keys["cri-3.json"]
    refusal, rules = judged(compact(other_pod), bundle)["baseline"]
    assert refusal and "HR3002" in rules


def test_podman_s_containers_share_a_key(tmp_path):
    """Podman 4.3 lists its own binds in a varying order (the two captured containers differ):
    the key sorts the engine's copies within their places."""
    (first, first_bundle), (second, second_bundle) = (materialise_captured(name, tmp_path / name)
                                                      for name in ("podman-1.json", "podman-2.json"))
    order = [[m["destination"] for m in json.loads(config)["mounts"]] for config in (first, second)]
    assert order[0] != order[1]
    assert verdict_cache.key(first, "default", True, first_bundle) == \
        verdict_cache.key(second, "default", True, second_bundle)
    assert judged(first, first_bundle) == judged(second, second_bundle)
    # the control: the first container's bundle read elsewhere, where its binds are host paths
    assert verdict_cache.key(first, "default", True, str(tmp_path / "x" / ("f" * 64))) != \
        verdict_cache.key(first, "default", True, first_bundle)


def engine_copy_places(config: bytes, bundle: str) -> list[int]:
    (spec,) = parse_oci(config.decode(), os.path.join(bundle, "config.json"))
    return [index for index, mount in enumerate(spec.mounts) if mount.type == "engine-file"]


@pytest.mark.parametrize("name", ["podman-1.json", "cri-1.json"])
def test_the_engine_s_copies_in_any_order_give_one_key_and_one_verdict(name, tmp_path):
    """Every order of the engine's own binds within their places: the same key, and the same
    verdict, refusal message and rule ids under every built-in policy. (A CRI sandbox mounts a
    tmpfs at /dev/shm before its bind there: its order stays in the key, see the controls.)"""
    config, bundle = materialise_captured(name, tmp_path)
    document = json.loads(config)
    places = engine_copy_places(config, bundle)
    assert len(places) >= 2
    expected_key, expected = verdict_cache.key(config, "default", True, bundle), judged(config, bundle)
    for order in itertools.islice(itertools.permutations(places), 1, 24):
        changed = copy.deepcopy(document)
        for place, taken in zip(places, order):
            changed["mounts"][place] = document["mounts"][taken]
        assert verdict_cache.key(compact(changed), "default", True, bundle) == expected_key, order
        assert judged(compact(changed), bundle) == expected, order


def test_an_order_that_changes_what_is_mounted_stays_in_the_key(tmp_path):
    """Controls: /dev after /dev/shm (the tmpfs would hide it), a mount at an engine copy's
    destination (which is on top depends on the order), an engine copy moved among the others."""
    config, bundle = materialise_captured("podman-1.json", tmp_path)
    document = json.loads(config)
    key = verdict_cache.key(config, "default", True, bundle)
    mounts = document["mounts"]
    destinations = [m["destination"] for m in mounts]
    dev_after = copy.deepcopy(document)
    dev_after["mounts"].append(dev_after["mounts"].pop(destinations.index("/dev")))
    user_hosts = {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro"]}
    hosts_twice = [copy.deepcopy(document) for _ in range(2)]
    hosts_twice[0]["mounts"].append(user_hosts)
    hosts_twice[1]["mounts"].insert(0, user_hosts)
    first_copy = engine_copy_places(config, bundle)[0]
    moved = copy.deepcopy(document)
    moved["mounts"].insert(first_copy + 1, moved["mounts"].pop(destinations.index("/proc")))
    assert verdict_cache.key(compact(dev_after), "default", True, bundle) != key
    assert verdict_cache.key(compact(moved), "default", True, bundle) != key
    assert len({verdict_cache.key(compact(d), "default", True, bundle) for d in hosts_twice}) == 2
    # each of them sorted by destination within the engine's places would have hidden the difference
    for changed in (dev_after, *hosts_twice):
        with_shuffle = copy.deepcopy(changed)
        places = engine_copy_places(compact(changed), bundle)
        with_shuffle["mounts"][places[0]], with_shuffle["mounts"][places[-1]] = \
            with_shuffle["mounts"][places[-1]], with_shuffle["mounts"][places[0]]
        assert verdict_cache.key(compact(with_shuffle), "default", True, bundle) != \
            verdict_cache.key(compact(changed), "default", True, bundle)
    # a CRI sandbox: a tmpfs at /dev/shm, then the engine's bind there: kept in its order
    sandbox_config, sandbox_bundle = materialise_captured("cri-sandbox-1.json", tmp_path / "sandbox")
    sandbox = json.loads(sandbox_config)
    places = engine_copy_places(sandbox_config, sandbox_bundle)
    swapped = copy.deepcopy(sandbox)
    first, second = sandbox["mounts"][places[0]], sandbox["mounts"][places[1]]
    swapped["mounts"][places[0]], swapped["mounts"][places[1]] = second, first
    assert verdict_cache.key(compact(swapped), "default", True, sandbox_bundle) != \
        verdict_cache.key(sandbox_config, "default", True, sandbox_bundle)


CREDENTIALS = ["KEY=AKIAABCDEFGHIJKLMNOP", "TOKEN=ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2]


def test_an_environment_in_another_order_gives_one_key_and_one_refusal(bundle_dir):
    """Two credentials in either order: one key, and the same refusal with the same message
    (the gate lists the findings in an order of its own)."""
    document = load("podman-1.json")
    configs = []
    for credentials in (CREDENTIALS, CREDENTIALS[::-1]):
        changed = copy.deepcopy(document)
        changed["process"]["env"] = credentials + changed["process"]["env"]
        configs.append(compact(changed))
    keys = {verdict_cache.key(config, "default", True, bundle_dir) for config in configs}
    verdicts = [judged(config, bundle_dir) for config in configs]
    assert len(keys) == 1 and verdicts[0] == verdicts[1]
    # the credentials are found (HR2016), in both orders
    assert "HR2016" in verdicts[0]["default"][1] and "HR2016" in verdicts[0]["strict"][1]
    assert verdicts[0] != judged(compact(document), bundle_dir)


def test_an_environment_naming_a_variable_twice_keeps_its_order(bundle_dir):
    """The control: the first of two values wins in the container, so that order stays in the key."""
    document = load("podman-1.json")
    keys = set()
    for order in (["KEY=x", CREDENTIALS[0]], [CREDENTIALS[0], "KEY=x"]):
        changed = copy.deepcopy(document)
        changed["process"]["env"] = order + changed["process"]["env"]
        keys.add(verdict_cache.key(compact(changed), "default", True, bundle_dir))
    assert len(keys) == 2


# gate_view's output for a set of bundles, recorded before its steps were split into small
# functions (tests/data/gate-views.json): the cache key of every one must stay.
GATE_VIEWS = os.path.join(os.path.dirname(ENGINES), "gate-views.json")


def gate_view_cases(base):
    """(case name, config, bundle) for each engine bundle as its engine has it, and variants
    that take each of gate_view's other ways: another form, a key given twice, mounts that are
    not objects, an option list that is not a list, a shuffled environment with a hex HOSTNAME;
    a document that is not an object, and no JSON."""
    for name in CORPUS:
        where = base / name
        if name.startswith("docker"):
            config, bundle = materialise(name, where)
        elif name.startswith(("podman", "cri")):
            config, bundle = materialise_captured(name, where)
        else:
            config, bundle = compact(load(name)), str(where / "bundle")
        document = json.loads(config)
        yield name, config, bundle
        yield name + " indented", json.dumps(document, indent=1).encode(), bundle
        yield name + " newline", config + b"\n", bundle
        yield name + " key twice", config[:-1] + b',"process":{"args":["sh"]}}', bundle
        for what, mounts in (("mounts not objects", ["x"]), ("options not a list", [
                {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": "ro"}])):
            changed = copy.deepcopy(document)
            changed["mounts"] = mounts
            yield f"{name} {what}", compact(changed), bundle
            yield f"{name} {what} indented", json.dumps(changed, indent=1).encode(), bundle
        changed = copy.deepcopy(document)
        changed["process"]["env"] = ["HOSTNAME=0123456789abcdef"] + changed["process"]["env"][::-1]
        yield name + " environment", compact(changed), bundle
    yield "not an object", b"[1]", str(base / "bundle")
    yield "not JSON", b"{", str(base / "bundle")


def view_digest(config: bytes, bundle: str, base) -> str:
    """The sha256 of gate_view's parts, with the temporary directory's path made fixed."""
    digest = hashlib.sha256()
    for part in verdict_cache.gate_view(config, bundle):
        part = part.replace(str(base).encode(), b"<base>")
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def test_the_gate_view_of_each_bundle_is_what_it_was(tmp_path):
    """A key that changes makes every engine's next start miss; one that merges two bundles
    would hand one the other's verdict. Control: a changed bundle gives another digest."""
    with open(GATE_VIEWS, encoding="utf-8") as handle:
        recorded = json.load(handle)
    cases = list(gate_view_cases(tmp_path))
    assert {name for name, _, _ in cases} == set(recorded)
    for name, config, bundle in cases:
        assert view_digest(config, bundle, tmp_path) == recorded[name], name
    _, config, bundle = cases[0]
    assert view_digest(config.replace(b"CAP_CHOWN", b"CAP_SYS_ADMIN"), bundle, tmp_path) != recorded[cases[0][0]]
