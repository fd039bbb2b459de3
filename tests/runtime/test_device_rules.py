"""linux.resources.devices -> the writes of a cgroup v1 devices controller (device_rules)."""
from __future__ import annotations

import pytest

from hardrun.runtime.device_rules import RUNC_DEFAULT_ALLOWED, DeviceRuleError, cgroup_v1_writes

DENY_ALL = {"allow": False, "access": "rwm"}
DEFAULTS = [("devices.allow", f"{kind} {'*' if major is None else major}:{'*' if minor is None else minor} "
                               f"{access}") for kind, major, minor, access in RUNC_DEFAULT_ALLOWED]


def test_runcs_defaults_include_mknod_of_any_node_and_tun():
    assert DEFAULTS[:2] == [("devices.allow", "c *:* m"), ("devices.allow", "b *:* m")]
    assert ("devices.allow", "c 10:200 rwm") in DEFAULTS


def test_no_rules_deny_every_device_but_runcs_defaults():
    """As runc: the cgroup never keeps its parent's allow-all."""
    assert list(cgroup_v1_writes([])) == [("devices.deny", "a")] + DEFAULTS


def test_podmans_list_is_written_in_order_then_runcs_defaults():
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
             {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"}]
    assert list(cgroup_v1_writes(rules)) == [("devices.deny", "a"), ("devices.deny", "a"),
                                             ("devices.allow", "c 10:200 rwm"),
                                             ("devices.allow", "b *:* m")] + DEFAULTS


def test_dockers_privileged_allow_all():
    assert cgroup_v1_writes([{"allow": True, "access": "rwm"}])[:2] == (("devices.deny", "a"), ("devices.allow", "a"))


def test_a_deny_the_kernel_could_not_narrow_is_refused_by_its_index():
    allow_mem = {"allow": True, "type": "c", "major": 1, "access": "rwm"}
    deny_kmsg = {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "r"}
    with pytest.raises(DeviceRuleError) as raised:
        cgroup_v1_writes([DENY_ALL, allow_mem, deny_kmsg])
    assert raised.value.where == "linux.resources.devices[2]"
    # the control: the same deny of exactly the rule that allowed it is what the kernel does
    exact = dict(deny_kmsg, access="rwm")
    assert ("devices.deny", "c 1:11 rwm") in cgroup_v1_writes([DENY_ALL, dict(exact, allow=True), exact])


@pytest.mark.parametrize("rule,where", [
    ({"allow": "yes"}, "linux.resources.devices[0].allow"),
    ({"allow": True, "type": "x"}, "linux.resources.devices[0].type"),
    ({"allow": True, "type": "c", "access": "rwx"}, "linux.resources.devices[0].access"),
    ({"allow": True, "type": "a", "major": 1}, "linux.resources.devices[0]"),
    ({"allow": True, "type": "c", "major": "1"}, "linux.resources.devices[0].major"),
    ({"allow": True, "type": "c", "major": 1, "minor": 1 << 32}, "linux.resources.devices[0].minor"),
])
def test_malformed_rules_are_named(rule, where):
    with pytest.raises(DeviceRuleError) as raised:
        cgroup_v1_writes([rule])
    assert raised.value.where == where
