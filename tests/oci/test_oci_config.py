"""The shared typed access to config.json (hardrun/spec/oci_config.py): one wording per
problem, named by the field's JSON path, and hardrun-oci's reader failing through it with
its own error class (a BundleError: exit 2)."""
from __future__ import annotations

import pytest

from hardrun.runtime.bundle import BundleError, _Reader
from hardrun.spec.oci_config import OciFieldError, OciFields, child_path


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
    reader = _Reader({}, str(tmp_path))
    with pytest.raises(BundleError) as raised:
        reader.typed("x", int, "process.user.uid")
    assert "process.user.uid: expected an integer" in str(raised.value)
    assert str(tmp_path / "config.json") in str(raised.value)
    assert not isinstance(raised.value, OciFieldError)
