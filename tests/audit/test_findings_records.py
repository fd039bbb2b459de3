"""Hit and Finding write their own __init__ (speed: one of each per finding); it must take
exactly the record's fields, in order, with the same defaults, and build the same record."""
import inspect

import pytest

from hardrun.audit.findings import Finding, Hit, ImageLocation
from hardrun.spec.record import FrozenInstanceError, _MISSING, fields, replace


@pytest.mark.parametrize("record", [Hit, Finding])
def test_the_written_init_takes_the_fields_in_order_with_their_defaults(record):
    parameters = list(inspect.signature(record.__init__).parameters.values())[1:]
    assert [p.name for p in parameters] == [f.name for f in fields(record)]
    for parameter, item in zip(parameters, fields(record)):
        expected = inspect.Parameter.empty if item.default is _MISSING else item.default
        assert parameter.default == expected, parameter.name
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


def test_positional_and_keyword_construction_give_the_same_record():
    image = ImageLocation("alpine:3.20", "sha256:0", layer=1)
    by_position = Finding("HR1001", "run-as-root", "error", "Dockerfile", 3, None, "root",
                          False, None, False, 7, "USER root", None, None, image)
    by_name = Finding(rule="HR1001", practice="run-as-root", severity="error", path="Dockerfile",
                      line=3, subject=None, message="root", column=7, evidence="USER root",
                      image=image)
    assert by_position == by_name and by_position.__dict__ == by_name.__dict__
    assert Hit(4, "m", column=2).__dict__ == {"line": 4, "message": "m", "subject": None,
                                              "severity": None, "rule": None, "column": 2,
                                              "anchor": None, "image": None}


def test_the_records_stay_frozen_and_replace_works():
    finding = Finding("HR1001", "run-as-root", "error", "Dockerfile", 3, None, "root")
    with pytest.raises(FrozenInstanceError):
        finding.line = 4
    with pytest.raises(FrozenInstanceError):
        Hit(1).line = 2
    changed = replace(finding, evidence="USER root", suppressed=True)
    assert changed.evidence == "USER root" and changed.suppressed and changed.line == 3
    assert replace(finding, evidence="other") == finding     # evidence: compare=False
    with pytest.raises(TypeError):
        Finding("HR1001", "run-as-root", "error", "Dockerfile", 3, None)   # message missing
    with pytest.raises(TypeError):
        Hit(1, unknown=True)
