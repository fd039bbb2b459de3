"""The runtime's own parsing (mount plans, users from the image's /etc files, capability
names): any input gives a result or hardrun's UsageError, never another exception."""
from __future__ import annotations

import os
import posixpath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardrun.errors import UsageError
from hardrun.runtime import caps, userns
from hardrun.runtime.mounts import plan_mounts
from hardrun.spec.run import Mount

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
OPTION = st.one_of(TEXT, st.sampled_from(["ro", "rw", "exec", "noexec", "size=1m", "size=", "mode=1777",
                                          "mode=99", "tmpfs-size=64", "bind-nonrecursive", "z", "suid"]))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["bind", "tmpfs", "volume", "npipe"]),
       target=st.one_of(TEXT, st.sampled_from(["/data", "/proc", "/proc/sys", "/", "//x", "/a/../proc"])),
       source=st.one_of(st.none(), TEXT, st.sampled_from(["/tmp", "/etc/hostname", "/nonexistent"])),
       options=st.lists(OPTION, max_size=4), read_only=st.booleans())
def test_mount_plans_accept_or_refuse_cleanly(kind, target, source, options, read_only):
    try:
        plans = plan_mounts((Mount(kind, target, source, read_only, tuple(options)),), host_root=False)
    except UsageError as error:
        # a refusal names what is wrong: the destination, the mount by its target, or the source
        normalized = posixpath.normpath(target) if target.startswith("/") else target
        named = ("destination" in error.message or "root /" in error.message
                 or normalized.lstrip("/") and normalized.lstrip("/") in error.message
                 or "bind source" in error.message)
        assert named, (target, source, options, error.message)
        return
    targets = [plan.target for plan in plans]
    assert "/proc" not in targets and not any(t.startswith("/proc/") for t in targets)
    assert all(t.startswith("/") and t != "/" for t in targets)
    assert len(set(targets)) == len(targets) and {"/tmp", "/run"} <= set(targets)
    (plan,) = [plan for plan in plans if plan.target == posixpath.normpath(target).replace("//", "/", 1)]
    assert plan.kind == kind and (kind != "bind" or plan.source == source)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(passwd=TEXT, group=TEXT, user=st.one_of(st.none(), TEXT, st.sampled_from(["app", "1000:2000", "app:extra"])))
def test_users_from_any_etc_files(tmp_path, passwd, group, user):
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("app:x:1000:1000::/home/app:/bin/sh\n" + passwd)
    (etc / "group").write_text("extra:x:2000:app\n" + group)
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        resolved = userns.resolve_user(fd, user)
    except UsageError:
        return
    finally:
        os.close(fd)
    assert resolved.uid >= 0 and resolved.gid >= 0 and resolved.home


@pytest.mark.parametrize("user", ["\u00b2", "1000:\u0663", "\u0661\u0662"])
def test_non_ascii_digits_are_not_ids(tmp_path, user):
    """`²` or Arabic-Indic digits pass str.isdigit() but are no uid: a clear usage error."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("app:x:1000:1000::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("app:x:1000:\n")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(UsageError, match="unable to find"):
            userns.resolve_user(fd, user)
    finally:
        os.close(fd)


def test_user_files_are_read_inside_the_root(tmp_path):
    """A symlinked /etc/passwd in the image is resolved in the image, not on the host."""
    host_file = tmp_path / "host-passwd"
    host_file.write_text("root:x:0:0:root:/root:/bin/sh\n")
    image = tmp_path / "image"
    (image / "etc").mkdir(parents=True)
    (image / "etc" / "passwd").symlink_to(host_file)   # absolute: a host path, not the image's
    assert (image / "etc" / "passwd").read_text().startswith("root:")   # the host would follow it
    fd = os.open(image, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(UsageError, match="unable to find user root"):
            userns.resolve_user(fd, "root")
    finally:
        os.close(fd)


@given(st.lists(TEXT, max_size=4), st.lists(TEXT, max_size=4))
def test_capability_names_accept_or_refuse_cleanly(adds, drops):
    try:
        kept = caps.resolve(adds, drops)
    except UsageError:
        return
    assert set(kept) <= set(caps.NAMES)


def test_capability_semantics_follow_docker():
    assert caps.resolve(["net_raw", "CAP_CHOWN"], []) == ("CHOWN", "NET_RAW")
    assert caps.resolve(["ALL"], ["sys_admin"]) == tuple(n for n in caps.NAMES if n != "SYS_ADMIN")
    assert caps.resolve(["NET_RAW"], ["ALL"]) == ("NET_RAW",)
    assert caps.resolve(["NET_RAW"], ["NET_RAW"]) == ("NET_RAW",)   # an add wins, as in Docker
    with pytest.raises(UsageError, match="unknown capability"):
        caps.resolve(["CAP_FLY"], [])
    assert caps.names_of(0x400 | (1 << 40)) == ["NET_BIND_SERVICE", "CHECKPOINT_RESTORE"]
    assert caps.names_of(1 << 41) == ["CAP_41"]


# --- every RunSpec field is applied by `hardrun run` or refused (exit 125) ------------

from hardrun.runtime.config import APPLIED_FIELDS, NOT_APPLIED_FIELDS, resolve  # noqa: E402
from hardrun.spec import PROVENANCE_FIELDS  # noqa: E402
from hardrun.spec.record import fields  # noqa: E402
from hardrun.spec.run import RunSpec  # noqa: E402

# A value for each field the runtime cannot apply, as a compose file, a Kubernetes
# manifest, an OCI config or an audited `docker run` line would set it.
NOT_APPLIED_VALUES = {
    "entrypoint": "/bin/sh",
    "run_as_non_root": True, "masked_paths": (), "readonly_paths": (),
    "volume_types": {"data": "hostPath"}, "unresolved": frozenset({"memory"}),
}


def test_every_runspec_field_is_applied_refused_or_provenance():
    """A field added to RunSpec fails here until the runtime applies or refuses it."""
    names = {item.name for item in fields(RunSpec)}
    groups = (PROVENANCE_FIELDS, APPLIED_FIELDS, set(NOT_APPLIED_FIELDS))
    assert set().union(*groups) == names
    assert sum(len(group) for group in groups) == len(names)     # no field in two groups
    assert set(NOT_APPLIED_VALUES) == set(NOT_APPLIED_FIELDS)


@pytest.mark.parametrize("name", sorted(NOT_APPLIED_VALUES))
def test_settings_the_runtime_cannot_apply_are_refused(name):
    plain = RunSpec(command=("/bin/true",), path="run.yaml", line=1)
    assert resolve(plain).args == ("/bin/true",)                  # control: the bare spec runs
    spec = plain.evolve(**{name: NOT_APPLIED_VALUES[name]}, lines={name: 7})
    with pytest.raises(UsageError) as refused:
        resolve(spec)
    setting = NOT_APPLIED_FIELDS[name][0]
    assert str(refused.value).startswith(f"run.yaml: line 7: {setting}: hardrun run cannot apply")


@pytest.mark.parametrize("name,value,expected", [
    ("hostname", "a\nb", "invalid host name"), ("hostname", "h" * 65, "invalid host name"),
    ("name", "n" * 65, "invalid container name .* at most 64"), ("name", "web\n", "invalid container name"),
    ("user", "1000:", "invalid user"), ("pids_limit", -2, "invalid pids limit"),
])
def test_values_are_checked_whichever_input_set_them(name, value, expected):
    """The checks the flags make when they parse, for a spec from any input."""
    good = {"hostname": "web", "name": "n" * 64, "user": "1000:1000", "pids_limit": -1}
    assert resolve(RunSpec(command=("/bin/true",), **{name: good[name]}))   # control
    with pytest.raises(UsageError, match=f"^{name}: {expected}"):
        resolve(RunSpec(command=("/bin/true",), **{name: value}))


def test_the_resolved_plan_is_frozen_and_the_launch_state_holds_what_the_start_learns():
    """The parent and the hooks cannot change the plan after resolve(): what they learn
    (filters, cgroup fds, a bridge's hosts file, fds 0-2) goes into a LaunchState."""
    from hardrun.runtime.config import LaunchState
    from hardrun.spec.record import FrozenInstanceError
    plan = resolve(RunSpec(command=("/bin/true",)))
    launch = LaunchState(plan)
    launch.mounts = plan.mounts + ("the hosts file",)     # control: the launch state takes it
    assert launch.mounts[-1] == "the hosts file"
    for name, value in (("mounts", ()), ("seccomp", None), ("seccomp_filter", object())):
        with pytest.raises(FrozenInstanceError):
            setattr(plan, name, value)
    assert plan.seccomp == "default" and not hasattr(plan, "seccomp_filter")
    with pytest.raises(AttributeError):                    # slots: no attribute by mistake
        launch.seccomp_profile = object()
