"""The shared typed access to config.json (hardrun/spec/oci_config.py): one wording per
problem, named by the field's JSON path, and hardrun-oci's reader failing through it with
its own error class (a BundleError: exit 2)."""
from __future__ import annotations

import json
import os

import pytest

from hardrun.runtime import bundle as reader
from hardrun.runtime.bundle import BundleError
from hardrun.spec.oci_config import OciFieldError, OciFields, child_path, json_path
from tests.helpers import record_calls
from tests.oci.conftest import make_bundle


def failure(call) -> str:
    with pytest.raises(OciFieldError) as raised:
        call()
    return str(raised.value)


def test_values_of_the_asked_type_pass_and_absent_ones_are_none():
    fields = OciFields()
    assert fields.typed(None, int, "process.oomScoreAdj") is None
    assert fields.typed(0, int, "process.oomScoreAdj") == 0
    assert fields.typed({"a": 1}, dict, "linux") == {"a": 1}
    assert fields.strings(None, "process.env") == []
    assert fields.paths(["/proc/kcore"], "linux.maskedPaths") == ["/proc/kcore"]


@pytest.mark.parametrize("value, kind, message", [
    (True, int, "linux.namespaces[2].type: expected an integer"),     # a boolean is no integer
    ("5", int, "linux.namespaces[2].type: expected an integer"),
    (5, str, "linux.namespaces[2].type: expected a string"),
    ([], dict, "linux.namespaces[2].type: expected an object"),
    ({}, list, "linux.namespaces[2].type: expected an array"),
    ("yes", bool, "linux.namespaces[2].type: expected true or false"),
])
def test_a_value_of_another_type_is_named_by_its_path(value, kind, message):
    assert failure(lambda: OciFields().typed(value, kind, "linux.namespaces[2].type")) == message


def test_unknown_keys_and_unsupported_ones_asking_for_something_are_refused():
    fields = OciFields()
    assert failure(lambda: fields.take({"path": "r", "bogus": 1}, "root", {"path"})) == "root.bogus: unknown field"
    assert failure(lambda: fields.take({"intelRdt": {"l3": "x"}}, "linux", (), {"intelRdt"})) == \
        "linux.intelRdt: not supported by hardrun"
    assert failure(lambda: fields.take({"x": 1}, "", ())) == "x: unknown field"      # the document's own keys
    assert failure(lambda: fields.take([], "root", ())) == "root: expected an object"
    # the control: an unsupported key set to an empty value asks for nothing
    assert fields.take({"intelRdt": {}, "domainname": ""}, "linux", (), {"intelRdt", "domainname"})


def test_strings_and_paths():
    fields = OciFields()
    assert failure(lambda: fields.strings(["a\0b"], "process.args")) == \
        "process.args: expected strings without NUL bytes"
    assert failure(lambda: fields.strings([1], "process.args")) == "process.args: expected strings without NUL bytes"
    assert failure(lambda: fields.paths(["proc/kcore"], "linux.maskedPaths")) == \
        "linux.maskedPaths: 'proc/kcore' is not an absolute path"
    assert child_path("", "hostname") == "hostname" and child_path("linux", "sysctl") == "linux.sysctl"


def test_the_runtime_reader_fails_with_its_own_error_and_the_same_wording(tmp_path):
    with pytest.raises(BundleError) as raised:
        reader.from_document({"process": {"user": {"uid": "x"}}}, str(tmp_path), False)
    assert "process.user.uid: expected an integer" in str(raised.value)
    assert str(tmp_path / "config.json") in str(raised.value)
    assert not isinstance(raised.value, OciFieldError)
    assert raised.value.line is None        # no text to find it in (a config from a container's state)


def test_a_json_path_is_resolved_against_the_document():
    document = {"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
                "annotations": {"io.k8s.cri.sandbox-id": "x", "io": "y"}}
    assert json_path("linux.namespaces[1].type", document) == ("linux", "namespaces", 1, "type")
    # a key holding dots is one part, the longest key that fits
    assert json_path("annotations.io.k8s.cri.sandbox-id", document) == ("annotations", "io.k8s.cri.sandbox-id")
    assert json_path("annotations.io", document) == ("annotations", "io")
    # what the document does not hold ends the path at its nearest enclosing value
    assert json_path("linux.namespaces[7].type", document) == ("linux", "namespaces")
    assert json_path("linux.intelRdt", document) == ("linux",)
    assert json_path("hostname", document) == ()


WRITTEN = """{
  "ociVersion": "1.2.0",
  "process": {
    "args": ["/bin/true"],
    "cwd": "/",
    "user": {"uid": 0, "gid": 0}
  },
  "root": {"path": "rootfs"},
  "linux": {
    "namespaces": [{"type": "mount"}, {"type": "pid"}],
    "intelRdt": {}
  }
}
"""


@pytest.mark.parametrize("change, field, line", [
    (lambda text: text.replace('"cwd": "/"', '"cwd": "relative"'), "process.cwd", 5),
    (lambda text: text.replace('"intelRdt": {}', '"intelRdt": {"closID": "x"}'), "linux.intelRdt", 11),
    (lambda text: text.replace('"pid"}', '"pid", "bogus": 1}'), "linux.namespaces[1].bogus", 10),
    (lambda text: text.replace('"uid": 0', '"uid": "0"'), "process.user.uid", 6),
])
def test_hardrun_oci_names_the_line_of_a_field_it_refuses(tmp_path, change, field, line):
    os.mkdir(tmp_path / "rootfs")
    (tmp_path / "config.json").write_text(WRITTEN)
    reader.load(str(tmp_path))      # the control: the config as written is read
    (tmp_path / "config.json").write_text(change(WRITTEN))
    with pytest.raises(BundleError) as raised:
        reader.load(str(tmp_path))
    assert raised.value.message.startswith(f"{field}: ")
    assert raised.value.line == line
    assert str(raised.value).startswith(f"{tmp_path}/config.json: line {line}: {field}: ")


def test_the_floor_s_additions_do_not_move_the_lines(tmp_path):
    """The floor adds fields to the document before it is read (maskedPaths, the seccomp
    note): a field refused after it still has its line in the file as written."""
    bundle = make_bundle(tmp_path / "b", str(tmp_path), ["/bin/true"])
    path = os.path.join(bundle, "config.json")
    with open(path) as handle:
        document = json.load(handle)
    document["process"]["cwd"] = "relative"
    with open(path, "w") as handle:
        json.dump(document, handle, indent=2)
    with open(path) as handle:
        text = handle.read()
    expected = text[:text.index('"cwd"')].count("\n") + 1
    with pytest.raises(BundleError) as raised:
        reader.load(bundle)
    assert raised.value.line == expected and "process.cwd: must be an absolute path" in str(raised.value)


# -- the one decoder (spec/oci_config.decode) and what each reader refuses of it -------------

CONFIG = """{
  "ociVersion": "1.0.2",
  "process": {
    "args": ["/bin/true"],
    "user": {"uid": 0, "gid": 0},
    "cwd": "/"
  },
  "root": {"path": "rootfs"},
  "hooks": {"prestart": 42},
  "linux": {
    "namespaces": [{"type": "mount"}],
    "intelRdt": {"closID": "x"},
    "resources": {"memory": {"limit": 1e9}}
  }
}
"""


def test_decode_lists_wrong_types_and_unknown_keys_instead_of_raising():
    from hardrun.spec.oci_config import TextLocator, decode
    document = json.loads(CONFIG)
    config = decode(document, TextLocator(document, CONFIG))
    assert [(problem.where, problem.message, problem.line) for problem in config.problems] == [
        ("hooks.prestart", "expected an array", 9),
        ("linux.resources.memory.limit", "expected an integer", 13)]
    assert [(key.where, key.message) for key in config.unknown] == [("linux.intelRdt", "not supported by hardrun")]
    # the values of the wrong type are left out of the record; the rest is decoded
    assert config.hooks == {"prestart": ()} and config.linux.resources.memory_limit is None
    assert config.process.args == ("/bin/true",) and config.linux.namespaces[0].type == "mount"
    # the audit reads JSON through YAML, where 1e9 is text: its `numbers` takes it
    from hardrun.frontends.oci import _as_int
    assert decode({"linux": {"resources": {"memory": {"limit": "1e9"}}}}, lambda where: None,
                  numbers=_as_int).linux.resources.memory_limit == 10 ** 9


def test_hardrun_oci_refuses_every_problem_and_unknown_key_the_audit_only_those_it_reads(tmp_path):
    """Fail closed at the runtime: a wrong type anywhere or a key it cannot apply is a
    BundleError at its line; the audit judges what the run rules read and leaves hooks and
    keys it does not know alone. Controls: each refused config loads once the one fault is
    taken out, and the audit refuses a wrong type in a field it reads."""
    from hardrun.errors import ParseError
    from hardrun.frontends.oci import parse_oci
    bundle = tmp_path / "b"
    (bundle / "rootfs").mkdir(parents=True)
    document = json.loads(CONFIG)

    def write(changed: dict) -> str:
        text = json.dumps(changed, indent=2)
        (bundle / "config.json").write_text(text)
        return text

    for where, fix in (("hooks.prestart", lambda d: d.pop("hooks")),
                       ("linux.resources.memory.limit", lambda d: d["linux"].pop("resources")),
                       ("linux.intelRdt", lambda d: d["linux"].pop("intelRdt"))):
        text = write(document)
        with pytest.raises(BundleError, match=where.replace(".", r"\.")) as refused:
            reader.load(str(bundle), floor=False)
        assert refused.value.line is not None and where.split(".")[-1] in text.splitlines()[refused.value.line - 1]
        (spec,) = parse_oci(text, str(bundle / "config.json"))     # the audit: no error
        assert spec.command == ("/bin/true",)
        fix(document)
    write(document)
    assert reader.load(str(bundle), floor=False).config.args == ("/bin/true",)
    document["process"]["user"]["uid"] = "root"
    text = write(document)
    with pytest.raises(ParseError, match="`process.user.uid` must be an integer") as caught:
        parse_oci(text, "config.json")
    assert '"uid": "root"' in text.splitlines()[caught.value.line - 1]
    with pytest.raises(BundleError, match="process.user.uid: expected an integer"):
        reader.load(str(bundle), floor=False)


def test_json_locator_lines_are_those_of_the_text(tmp_path):
    """JsonLocator counts lines on from the last position it asked (linear in the text):
    each key's line is where it is written, in a pretty and in a one-line config alike."""
    from hardrun.spec.json_lines import JsonLocator
    document = json.loads(CONFIG)
    found = JsonLocator(CONFIG)
    for number, line in enumerate(CONFIG.splitlines(), 1):
        if line.strip().startswith('"') and ":" in line:
            key = json.loads(line.strip().split(":")[0])
            paths = [path for path in found.lines if path and path[-1] == key]
            assert any(found.lines[path] == number for path in paths), (key, number)
    assert found.line_of(("linux", "resources", "memory", "limit")) == 13
    compact = json.dumps(document, separators=(",", ":"))
    assert set(JsonLocator(compact).lines.values()) == {1}


class _Created:
    record = {"pid": 1}


def test_create_decodes_config_json_once_for_the_gate_and_the_loader(tmp_path, monkeypatch):
    """`hardrun-oci create`: one decode on a verdict-cache miss (the gate judges the record)
    and one on a hit; the loader is handed the record, not the file. The control: the
    counter sees the loader's own decode when it is given none."""
    from hardrun.cli import oci as cli
    from hardrun.frontends import oci as front_end
    from hardrun.runtime import oci_create as runtime
    from hardrun.spec import oci_config
    monkeypatch.setenv("HARDRUN_VERDICT_CACHE", str(tmp_path / "verdicts"))
    bundle = make_bundle(tmp_path / "b", str(tmp_path / "rootfs"), ["/bin/true"])
    os.mkdir(tmp_path / "rootfs")
    decodes, handed = [], []

    def counted(*args, **kwargs):
        decodes.append(args[0])
        return oci_config.decode(*args, **kwargs)

    monkeypatch.setattr(reader, "decode", counted)
    monkeypatch.setattr(front_end, "decode", counted)
    monkeypatch.setattr(runtime, "create", lambda root, container_id, options, bundle=None:
                        handed.append(bundle) or _Created())
    for attempt in ("miss", "hit"):
        decodes.clear()
        assert cli.main(["--root", str(tmp_path / "state"), "create", "--bundle", bundle, "c1"]) == 0
        assert len(decodes) == 1, attempt
        assert handed[-1].config.args == ("/bin/true",) and handed[-1].document is decodes[0]
    assert len(os.listdir(tmp_path / "verdicts")) == 1      # the second create was a hit
    decodes.clear()
    reader.load(bundle)
    assert len(decodes) == 1


@pytest.mark.parametrize("text, message", [
    ('{"ociVersion": "1.0.2", "process": {"args": ["x"]}', "invalid YAML"),     # cut short
    ("[1, 2]", "config.json must be one JSON object"),
])
def test_create_refuses_what_is_not_a_json_object_in_one_line_as_the_gate_did(tmp_path, capfd, monkeypatch, text,
                                                                               message):
    """What is not a JSON object is the audit reader's ParseError (exit 1), as the gate gave
    it before the single decode, and never a traceback (a truncated object made `_json`'s
    scanner raise SystemError: hardrun/jsonlite.py). The control: the same bundle with a
    JSON object gets past the decode (to the loader's refusal of its missing root)."""
    from hardrun.cli import oci as cli
    monkeypatch.setenv("HARDRUN_VERDICT_CACHE", str(tmp_path / "verdicts"))
    (tmp_path / "config.json").write_text(text)
    assert cli.main(["--root", str(tmp_path / "state"), "create", "--bundle", str(tmp_path), "c1"]) == 1
    stderr = capfd.readouterr().err
    assert message in stderr and stderr.count("\n") == 1 and "Traceback" not in stderr
    (tmp_path / "config.json").write_text('{"ociVersion": "1.0.2", "process": {"args": ["x"]}}')
    assert cli.main(["--root", str(tmp_path / "state"), "create", "--bundle", str(tmp_path), "c1"]) == 2
    assert "root: missing" in capfd.readouterr().err


def test_the_linux_object_decoded_again_gives_the_record_of_a_whole_decode():
    """`--userns auto` changes `linux` in place after the first decode: decoding that object
    again (with_linux_decoded) gives what a decode of the whole changed document gives, its
    problems and unknown keys included. The control: the first record no longer agrees."""
    from hardrun.spec.oci_config import TextLocator, decode, with_linux_decoded
    from hardrun.spec.record import replace
    document = json.loads(CONFIG)
    first = decode(document, TextLocator(document, CONFIG))
    document["linux"]["uidMappings"] = [{"containerID": 0, "hostID": "100000", "size": 65536}]
    document["linux"]["namespaces"].append({"type": "user"})
    del document["linux"]["intelRdt"]
    whole = decode(document, TextLocator(document, None))
    again = with_linux_decoded(first, TextLocator(document, None))
    def listed(errors):
        return [(error.where, error.message) for error in errors]

    assert listed(again.problems) == listed(whole.problems) == [
        ("hooks.prestart", "expected an array"), ("linux.uidMappings[0].hostID", "expected an integer"),
        ("linux.resources.memory.limit", "expected an integer")]
    assert again.problems[0] is first.problems[0]       # the rest of the record is the first decode's
    assert listed(again.unknown) == listed(whole.unknown) == []
    assert replace(again, problems=()) == replace(whole, problems=()) != replace(first, problems=(), unknown=())
    assert again.process is first.process


def test_the_user_namespace_added_by_create_maps_as_a_second_whole_decode_did(tmp_path, monkeypatch):
    """hardrun-oci's `--userns auto` maps the first decode's record with its `linux` decoded
    again (with_linux_changed), no second decode of the document: the same plan as the
    whole decode it replaces gives (the control: the decoder is called for the whole
    document there, not here)."""
    from hardrun.runtime.oci_userns import add_to_document
    from hardrun.spec.record import fields
    bundle = make_bundle(tmp_path / "b", str(tmp_path / "rootfs"), ["/bin/true"])
    os.mkdir(tmp_path / "rootfs")
    loaded = reader.load(bundle)
    lease = type("Lease", (), {"uid_start": 200000, "gid_start": 200000, "count": 65536})()
    add_to_document(loaded.document, lease)
    decodes = record_calls(monkeypatch, reader, "decode")
    again = reader.with_linux_changed(loaded)
    assert decodes == []
    whole = reader.from_document(loaded.document, loaded.path, seccomp_default=True)
    assert len(decodes) == 1
    assert "user" in again.config.namespaces and again.config.id_maps.uid == [(0, 200000, 65536)]

    def state(value) -> dict:
        return {name: getattr(value, name) for name in getattr(type(value), "__slots__", ())} or vars(value)

    def same(made, other) -> bool:     # the plan's parts that are plain classes compare by value
        return made == other or (type(made) is type(other) and state(made) == state(other))

    for item in fields(again.config):
        assert item.name == "id" or same(getattr(again.config, item.name), getattr(whole.config, item.name)), item.name
    for item in fields(again):
        assert item.name in ("config", "floor") or same(getattr(again, item.name), getattr(whole, item.name)), item.name
    assert again.floor == loaded.floor      # kept, as the floor's note is then added to it
