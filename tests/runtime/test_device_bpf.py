"""Device rules on cgroup v2: the BPF device program (device_bpf), tried from a process placed
in a cgroup of this host's unified hierarchy (/sys/fs/cgroup/unified: no controllers, but device
programs attach to any cgroup2 directory), and compared with the v1 devices controller on the
same rule lists. The nodes are made with mknod in a temporary directory (the root filesystem
is not nodev), so every test names its own device numbers."""
from __future__ import annotations

import errno
import itertools
import os
import uuid

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from hardrun.runtime import cgroups, device_bpf, syscalls
from hardrun.runtime.cgroups import ContainerCgroup, Hierarchy, Layout, LimitError, Limits
from hardrun.runtime.device_rules import DeviceRuleError, cgroup_v1_writes, v1_state

from tests.helpers import output_of_child
from tests.limits_support import require_root

pytestmark = pytest.mark.runtime

UNIFIED = "/sys/fs/cgroup/unified"
V1_DEVICES = "/sys/fs/cgroup/devices"
DENY_ALL = {"allow": False, "access": "rwm"}
# name -> (type, major, minor): null, zero, fuse, loop0 (a block device)
NODES = {"null": ("c", 1, 3), "zero": ("c", 1, 5), "fuse": ("c", 10, 229), "loop0": ("b", 7, 0)}
OPENS = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}


def config_only(rules) -> tuple:
    """The writes of `rules` without runc's defaults after them (which allow /dev/zero)."""
    return cgroup_v1_writes(rules)[:len(rules) + 1]


def _rule(allow: bool, kind: str, major=None, minor=None, access: str = "rwm") -> dict:
    return {"allow": allow, "type": kind, "major": major, "minor": minor, "access": access}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """The device nodes of NODES in a directory the tests open them from."""
    require_root()
    assert os.path.isdir(UNIFIED), "these tests need the cgroup v2 hierarchy at /sys/fs/cgroup/unified"
    directory = tmp_path_factory.mktemp("nodes")
    for name, (kind, major, minor) in NODES.items():
        mode = (0o020000 if kind == "c" else 0o060000) | 0o666
        os.mknod(directory / name, mode, os.makedev(major, minor))
    return directory


class ScratchCgroup:
    """A cgroup of its own under `mountpoint` (removed at the end: that also frees its program)."""

    def __init__(self, mountpoint: str):
        self.path = os.path.join(mountpoint, f"hardrun-test-devbpf-{uuid.uuid4().hex[:12]}")
        os.mkdir(self.path)

    def remove(self) -> None:
        os.rmdir(self.path)


@pytest.fixture
def unified_cgroup(nodes):
    cgroup = ScratchCgroup(UNIFIED)
    yield cgroup
    cgroup.remove()


def outcomes(cgroup_path: str | None, directory, checks) -> dict:
    """Run each check ((node, "r"|"w"|"rw"|"mknod")) in a child placed in `cgroup_path` (None:
    where the test runs); {check: "ok" | errno name}."""
    def join_and_try() -> str:
        if cgroup_path is not None:
            with open(os.path.join(cgroup_path, "cgroup.procs"), "w") as procs:
                procs.write("0")
        return "\n".join(f"{node} {how} {_try(directory, node, how)}" for node, how in checks)

    text = output_of_child(join_and_try)
    found = {}
    for line in text.splitlines():
        node, how, result = line.split()
        found[(node, how)] = result
    assert len(found) == len(checks), f"the child reported {text!r}"
    return found


def _try(directory, node: str, how: str) -> str:
    try:
        if how == "mknod":
            kind, major, minor = NODES[node]
            target = os.path.join(directory, f"made-{node}-{os.getpid()}")
            os.mknod(target, (0o020000 if kind == "c" else 0o060000) | 0o600, os.makedev(major, minor))
            os.unlink(target)
        else:
            os.close(os.open(os.path.join(directory, node), OPENS[how]))
        return "ok"
    except OSError as error:
        return errno.errorcode[error.errno]


def test_an_allowed_node_opens_a_denied_one_gives_eperm(nodes, unified_cgroup):
    rules = [DENY_ALL, _rule(True, "c", 1, 3, "rw")]
    checks = [("null", "rw"), ("zero", "r"), ("zero", "mknod"), ("fuse", "rw")]
    # the control: the same process without the program opens /dev/zero and makes its node
    assert set(outcomes(unified_cgroup.path, nodes, checks).values()) == {"ok"}
    device_bpf.attach(unified_cgroup.path, config_only(rules))
    seen = outcomes(unified_cgroup.path, nodes, checks)
    assert seen == {("null", "rw"): "ok", ("zero", "r"): "EPERM", ("zero", "mknod"): "EPERM",
                    ("fuse", "rw"): "EPERM"}
    assert outcomes(None, nodes, checks)[("zero", "r")] == "ok"    # outside the cgroup: untouched


def test_runcs_defaults_allow_mknod_of_any_node_but_not_opening_it(nodes, unified_cgroup):
    device_bpf.attach(unified_cgroup.path, cgroup_v1_writes([]))
    seen = outcomes(unified_cgroup.path, nodes, [("fuse", "mknod"), ("fuse", "r"), ("loop0", "mknod"),
                                                 ("loop0", "r"), ("zero", "rw"), ("null", "rw")])
    assert seen == {("fuse", "mknod"): "ok", ("fuse", "r"): "EPERM", ("loop0", "mknod"): "ok",
                    ("loop0", "r"): "EPERM", ("zero", "rw"): "ok", ("null", "rw"): "ok"}


def test_an_m_only_rule_allows_mknod_not_open(nodes, unified_cgroup):
    writes = (("devices.deny", "a"), ("devices.allow", "c 10:229 m"))
    device_bpf.attach(unified_cgroup.path, writes)
    assert outcomes(unified_cgroup.path, nodes, [("fuse", "mknod"), ("fuse", "r"), ("zero", "mknod")]) == {
        ("fuse", "mknod"): "ok", ("fuse", "r"): "EPERM", ("zero", "mknod"): "EPERM"}


def test_an_update_replaces_the_program_without_a_gap(nodes, unified_cgroup):
    """The new program is attached before the old one goes: one program afterwards, the new one."""
    allow_zero = config_only([DENY_ALL, _rule(True, "c", 1, 5, "rw")])
    deny_zero = config_only([DENY_ALL, _rule(True, "c", 10, 229, "rw")])
    device_bpf.attach(unified_cgroup.path, allow_zero)
    assert outcomes(unified_cgroup.path, nodes, [("zero", "r")]) == {("zero", "r"): "ok"}
    device_bpf.attach(unified_cgroup.path, deny_zero)
    fd = os.open(unified_cgroup.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(device_bpf.attached(fd)) == 1
    finally:
        os.close(fd)
    assert outcomes(unified_cgroup.path, nodes, [("zero", "r"), ("fuse", "r")]) == {
        ("zero", "r"): "EPERM", ("fuse", "r"): "ok"}


# --------------------------------------------------------------- the same as v1

RULES = st.builds(_rule, st.booleans(), st.sampled_from(["a", "b", "c"]), st.sampled_from([None, 1, 7, 10]),
                  st.sampled_from([None, 0, 3, 5, 229]),
                  st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]))
CHECKS = list(itertools.product(NODES, ("r", "w", "rw", "mknod")))


def _v1_outcomes(nodes, writes) -> dict:
    cgroup = ScratchCgroup(V1_DEVICES)
    try:
        for file, line in writes:
            with open(os.path.join(cgroup.path, file), "w") as handle:
                handle.write(line)
        return outcomes(cgroup.path, nodes, CHECKS)
    finally:
        cgroup.remove()


def _bpf_outcomes(nodes, writes) -> dict:
    cgroup = ScratchCgroup(UNIFIED)
    try:
        device_bpf.attach(cgroup.path, writes)
        return outcomes(cgroup.path, nodes, CHECKS)
    finally:
        cgroup.remove()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=st.lists(st.one_of(RULES.filter(lambda rule: rule["type"] != "a"),
                                st.builds(lambda allow: {"allow": allow, "access": "rwm"}, st.booleans())),
                      max_size=6),
       with_defaults=st.booleans())
def test_the_program_decides_as_the_v1_controller_on_the_same_rules(nodes, rules, with_defaults):
    try:
        writes = cgroup_v1_writes(rules)
    except DeviceRuleError:
        assume(False)       # refused on either kind of host alike
        raise
    if not with_defaults:   # the config's rules alone, so that denials show and m-only lists count
        writes = config_only(rules)
    assert _bpf_outcomes(nodes, writes) == _v1_outcomes(nodes, writes), v1_state(writes)


def test_the_differential_test_can_tell_them_apart(nodes):
    """The control of the comparison above: different rules give different outcomes on v1."""
    allow_zero = config_only([DENY_ALL, _rule(True, "c", 1, 5)])
    deny_zero = config_only([DENY_ALL])
    assert _v1_outcomes(nodes, allow_zero) != _v1_outcomes(nodes, deny_zero)
    assert _bpf_outcomes(nodes, allow_zero) != _bpf_outcomes(nodes, deny_zero)


def test_last_rule_wins_orderings(nodes):
    later_allow = config_only([DENY_ALL, _rule(False, "c", 1, 5), _rule(True, "c", 1, 5, "r")])
    assert _bpf_outcomes(nodes, later_allow)[("zero", "r")] == "ok"
    later_deny = config_only([DENY_ALL, _rule(True, "c", 1, 5, "rw"), _rule(False, "c", 1, 5, "w")])
    seen = _bpf_outcomes(nodes, later_deny)
    assert (seen[("zero", "r")], seen[("zero", "w")], seen[("zero", "rw")]) == ("ok", "EPERM", "EPERM")
    allow_all_but = config_only([{"allow": True, "access": "rwm"}, _rule(False, "b", None, None, "r")])
    seen = _bpf_outcomes(nodes, allow_all_but)
    assert (seen[("loop0", "r")], seen[("loop0", "w")], seen[("fuse", "r")]) == ("EPERM", "ok", "ok")


# --------------------------------------------------------------- the cgroup code

def test_the_layout_takes_the_program_where_asked_or_where_no_v1_controller_is(monkeypatch):
    v1 = Hierarchy("/sys/fs/cgroup/devices", 1, {"devices"})
    unified = Hierarchy(UNIFIED, 2)
    assert Layout((v1, unified), device_cgroup="").hierarchy_for("devices") is v1
    assert Layout((v1, unified), device_cgroup="bpf").hierarchy_for("devices") is unified
    assert Layout((unified,), device_cgroup="").hierarchy_for("devices") is unified
    assert Layout((unified,), device_cgroup="v1").hierarchy_for("devices") is None
    monkeypatch.setenv("HARDRUN_DEVICE_CGROUP", "bpf")
    assert cgroups.detect_layout().hierarchy_for("devices").mountpoint == UNIFIED
    monkeypatch.setenv("HARDRUN_DEVICE_CGROUP", "ebpf")
    with pytest.raises(Exception, match="HARDRUN_DEVICE_CGROUP=ebpf: expected bpf or v1"):
        cgroups.detect_layout()


def _device_limits(rules) -> Limits:
    return Limits(pids=None, devices=cgroup_v1_writes(rules), devices_asked=bool(rules))


def test_a_container_cgroup_on_v2_gets_the_program_and_takes_it_away(nodes, monkeypatch):
    monkeypatch.setenv("HARDRUN_CGROUP_PARENT", f"hardrun-test-devbpf-{os.getpid()}")
    layout = Layout(cgroups.detect_layout().hierarchies, device_cgroup="bpf")
    cgroup = ContainerCgroup.create(f"c{os.getpid()}", _device_limits([]), layout=layout)
    try:
        path = cgroup.paths["devices"]
        assert path.startswith(UNIFIED + "/")
        assert outcomes(path, nodes, [("fuse", "r"), ("null", "r")]) == {("fuse", "r"): "EPERM", ("null", "r"): "ok"}
    finally:
        assert cgroup.destroy() == []
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_a_program_that_cannot_be_loaded_fails_the_create_naming_the_field(nodes, monkeypatch):
    """A program the verifier refuses (one that exits without setting r0) stands for any load or
    attach failure: the create fails with one line naming the field and the errno, and leaves
    no cgroup behind."""
    monkeypatch.setenv("HARDRUN_CGROUP_PARENT", f"hardrun-test-devbpf-{os.getpid()}")
    layout = Layout((Hierarchy(UNIFIED, 2),), device_cgroup="bpf")
    monkeypatch.setattr(device_bpf, "program", lambda writes: device_bpf._insn(device_bpf.EXIT))
    with pytest.raises(LimitError) as raised:
        ContainerCgroup.create("refused", _device_limits([DENY_ALL]), layout=layout)
    message = str(raised.value)
    assert message.startswith("linux.resources.devices cannot be applied: cannot load the BPF device program: "
                              "Permission denied (EACCES); the verifier said: "), message
    assert "\n" not in message
    assert not os.path.exists(os.path.join(UNIFIED, f"hardrun-test-devbpf-{os.getpid()}"))
    # the control: the real program on the same layout is attached
    monkeypatch.undo()
    monkeypatch.setenv("HARDRUN_CGROUP_PARENT", f"hardrun-test-devbpf-{os.getpid()}")
    accepted = ContainerCgroup.create("accepted", _device_limits([DENY_ALL]), layout=layout)
    assert accepted.destroy() == []


def test_a_refused_program_brings_the_verifiers_words(monkeypatch):
    require_root()
    monkeypatch.setattr(device_bpf, "program", lambda writes: device_bpf._insn(device_bpf.EXIT))  # r0 unset
    with pytest.raises(device_bpf.DeviceProgramError) as raised:
        device_bpf.load(())
    assert "(EACCES)" in str(raised.value.strerror) and "the verifier said" in raised.value.strerror
    assert "R0" in raised.value.strerror


def test_the_seam_counts_the_programs_attached(unified_cgroup):
    fd = os.open(unified_cgroup.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert syscalls.bpf_prog_query(fd, syscalls.BPF_CGROUP_DEVICE) == []
        device_bpf.attach(unified_cgroup.path, cgroup_v1_writes([]))
        assert len(syscalls.bpf_prog_query(fd, syscalls.BPF_CGROUP_DEVICE)) == 1
    finally:
        os.close(fd)


def test_device_rules_that_narrow_are_never_best_effort():
    """Where no device cgroup can hold the rules (no v1 controller, programs not allowed), a
    list that narrows access fails even under --limits best-effort; the control: `hardrun run
    --device` nodes given rw (the node's own access either way) are only warned about."""
    nowhere = Layout((), device_cgroup="v1")
    narrowing = _device_limits([DENY_ALL])
    narrowing.devices_flag = "--device"
    with pytest.raises(LimitError, match=r"^--device cannot be applied: the devices cgroup controller"):
        ContainerCgroup.create("narrowing", narrowing, layout=nowhere, strict=False)
    warnings: list = []
    loose = _device_limits([DENY_ALL])
    loose.devices_flag, loose.devices_required = "--device", False
    cgroup = ContainerCgroup.create("loose", loose, layout=nowhere, strict=False, warn=warnings.append)
    assert cgroup.skipped == ["--device"] and warnings[0].startswith("--device not applied (--limits best-effort)")
