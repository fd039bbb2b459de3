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
    text = open(path).read()
    expected = text[:text.index('"cwd"')].count("\n") + 1
    with pytest.raises(BundleError) as raised:
        reader.load(bundle)
    assert raised.value.line == expected and "process.cwd: must be an absolute path" in str(raised.value)
