"""The frozen records behind the run models (hardrun/spec/record.py): what the models'
users rely on from `@dataclass(frozen=True)`."""
from pathlib import Path

import pytest

from hardrun.spec.record import FrozenInstanceError, dataclass, field, fields, replace
from hardrun.spec.run import EnvVar, Mount, RunSpec


def test_records_are_frozen():
    spec = RunSpec(user="1000")
    with pytest.raises(FrozenInstanceError):
        spec.user = "0"
    with pytest.raises(FrozenInstanceError):
        del spec.user
    assert spec.user == "1000"


def test_equality_and_hash_follow_the_compared_fields():
    one = RunSpec(user="1000", lines={"user": 3})
    other = RunSpec(user="1000", lines={"user": 7})   # lines: compare=False
    assert one == other and hash(EnvVar("A", "1")) == hash(EnvVar("A", "1"))
    assert RunSpec(user="1000") != RunSpec(user="0")
    assert Mount("bind", "/a", "/b") != EnvVar("bind", "/a", None)   # other types are never equal
    assert len({Mount("tmpfs", "/t"), Mount("tmpfs", "/t"), Mount("tmpfs", "/u")}) == 2


def test_positional_keyword_and_default_arguments():
    assert Mount("bind", "/data", source="/srv") == Mount(type="bind", target="/data", source="/srv")
    assert Mount("tmpfs", "/t").options == () and Mount("tmpfs", "/t").line is None
    with pytest.raises(TypeError, match="missing required argument: 'target'"):
        Mount("bind")
    with pytest.raises(TypeError, match="unexpected keyword argument 'size'"):
        Mount("tmpfs", "/t", size=1)
    with pytest.raises(TypeError, match="multiple values for argument 'type'"):
        Mount("bind", "/t", type="tmpfs")
    with pytest.raises(TypeError, match="positional arguments"):
        EnvVar("A", "1", 2, 3)


def test_factories_give_each_record_its_own_value():
    first, second = RunSpec(), RunSpec()
    assert first.namespaces == {} and first.namespaces is not second.namespaces


def test_repr_names_every_field():
    assert repr(EnvVar("A", None, 3)) == "EnvVar(name='A', value=None, line=3)"


def test_replace_and_fields():
    spec = RunSpec(user="1000").evolve(privileged=True)
    assert (spec.user, spec.privileged) == ("1000", True)
    with pytest.raises(TypeError, match="no field"):
        replace(spec, frobnicate=1)
    names = [item.name for item in fields(RunSpec)]
    assert names[:3] == ["kind", "path", "line"] and names[-1] == "lines"
    assert [item.compare for item in fields(RunSpec)][-1] is False


def test_definition_errors_are_caught():
    with pytest.raises(ValueError, match="mutable default"):
        @dataclass(frozen=True)
        class Bad:
            items: list = []
    with pytest.raises(TypeError, match="non-default field b"):
        @dataclass(frozen=True)
        class Order:
            a: int = 1
            b: int
    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=list)


def test_records_without_frozen_are_mutable_and_unhashable_as_dataclasses():
    from hardrun.audit.findings import Report
    report = Report()
    report.findings = ["x"]
    assert report.findings == ["x"] and report != Report() and Report() == Report()
    with pytest.raises(TypeError, match="unhashable"):
        hash(report)
    assert Report().files is not Report().files


def test_dataclasses_functions_work_on_records():
    import dataclasses
    from hardrun.audit.findings import Finding
    finding = Finding("HR1001", "root-user", "error", "Dockerfile", 3, None, "m", evidence="USER root")
    assert dataclasses.is_dataclass(finding) and dataclasses.is_dataclass(Finding)
    moved = dataclasses.replace(finding, line=4)
    assert (moved.line, moved.evidence, moved.rule) == (4, "USER root", "HR1001")
    assert moved == replace(finding, line=4)
    assert [item.name for item in dataclasses.fields(Finding)] == [item.name for item in fields(Finding)]
    assert [item.compare for item in dataclasses.fields(Finding)] == [item.compare for item in fields(Finding)]
    assert dataclasses.asdict(EnvVar("A", "1", 2)) == {"name": "A", "value": "1", "line": 2}
    with pytest.raises(TypeError):
        dataclasses.replace(finding, frobnicate=1)


def test_the_audit_path_imports_neither_dataclasses_nor_pathlib_nor_typing(tmp_path):
    """What the records are for: a one-file audit's start-up. The control: importing
    dataclasses is seen by the same probe."""
    import subprocess
    import sys
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM alpine:3.20\nUSER 10001\n")
    # what `hardrun audit` runs (hardrun/__main__.py), which then exits at once
    probe = ("import sys\nfrom hardrun.cli.audit import main\nmain(['-f', 'json', sys.argv[1]])\n"
             "{extra}print(sorted({{'dataclasses', 'inspect', 'pathlib', 'typing'}} & set(sys.modules)), "
             "file=sys.stderr)\n")
    for extra, expected in (("", "[]"), ("import dataclasses\n", "['dataclasses', 'inspect']")):
        result = subprocess.run([sys.executable, "-c", probe.format(extra=extra), str(dockerfile)],
                                capture_output=True, text=True, cwd=tmp_path,
                                env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache"),
                                     "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert result.stderr.strip().splitlines()[-1] == expected, result.stderr
