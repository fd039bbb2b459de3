"""The built-in profile as it leaves hardrun (`export --seccomp-out`, the OCI config) means
under libseccomp, which runc, crun, Docker and Podman build their filters with, what it
means under hardrun. Each case is run for real under both filters; the control builds the
profile unrewritten with libseccomp and shows the difference the rewrite removes."""
from __future__ import annotations

import errno
import os
import tempfile

import pyseccomp
import pytest

from hardrun.errors import UsageError
from hardrun.policy.export import default_seccomp_profile, oci_seccomp
from hardrun.runtime.seccomp import compile_profile, default_profile
from hardrun.spec.seccomp_portable import for_libseccomp
from tests.runtime.test_seccomp import AF_ALG, AF_UNIX, AF_VSOCK, CLONE_NEWUSER, NR, SIGCHLD, SOCK_STREAM, \
    TIOCSTI, errno_of

pytestmark = pytest.mark.runtime

AF_INET, ADDR_NO_RANDOMIZE, HIGH = 2, 0x0040000, 1 << 32
CASES = {  # name: (syscall, args)
    "fork": ("clone", SIGCHLD, 0, 0, 0, 0),
    "clone a user namespace": ("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "personality query": ("personality", 0xFFFFFFFF),
    "personality linux": ("personality", 0),
    "personality linux32": ("personality", 8),
    "personality no-randomize": ("personality", ADDR_NO_RANDOMIZE),
    "socket unix": ("socket", AF_UNIX, SOCK_STREAM, 0),
    "socket inet": ("socket", AF_INET, SOCK_STREAM, 0),
    "socket alg": ("socket", AF_ALG, 5, 0),
    "socket alg high bits": ("socket", AF_ALG | HIGH, 5, 0),
    "socket vsock": ("socket", AF_VSOCK, SOCK_STREAM, 0),
    "socket unknown family": ("socket", 200, SOCK_STREAM, 0),
    "ioctl tiocsti": ("ioctl", 0, TIOCSTI, 0),
    "ioctl tiocsti high bits": ("ioctl", 0, TIOCSTI | HIGH, 0),
    "ioctl other": ("ioctl", 0, 0x541B, 0),  # FIONREAD on stdin
}
REFUSED = {errno.EPERM, errno.ENOSYS}


def libseccomp_bpf(profile: dict, capabilities=()) -> bytes:
    """The filter runc builds from this profile's OCI `linux.seccomp` (with libseccomp)."""
    config = oci_seccomp(profile, capabilities)
    default = _action(config["defaultAction"], config.get("defaultErrnoRet"))
    seccomp_filter = pyseccomp.SyscallFilter(default)
    for rule in config["syscalls"]:
        action = _action(rule["action"], rule.get("errnoRet"))
        if action == default:
            continue  # runc skips these: libseccomp refuses them
        args = [pyseccomp.Arg(a["index"], getattr(pyseccomp, a["op"][len("SCMP_CMP_"):]), a["value"],
                              a.get("valueTwo", 0)) for a in rule.get("args") or ()]
        for name in rule["names"]:
            try:
                seccomp_filter.add_rule(action, name, *args)
            except (RuntimeError, ValueError, OSError):
                pass  # a name this libseccomp does not know, as runc ignores it
    with tempfile.TemporaryFile() as handle:
        seccomp_filter.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def _action(name: str, errno_ret):
    if name == "SCMP_ACT_ERRNO":
        return pyseccomp.ERRNO(errno_ret if errno_ret is not None else errno.EPERM)
    return {"SCMP_ACT_ALLOW": pyseccomp.ALLOW, "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS,
            "SCMP_ACT_KILL": pyseccomp.KILL, "SCMP_ACT_KILL_THREAD": pyseccomp.KILL}[name]


def outcome(bpf, case) -> str:
    """"refused" (EPERM or ENOSYS), or the errno the kernel answered (0: it ran)."""
    name, *args = case
    err = errno_of(bpf, NR[name], *args)
    return "refused" if err in REFUSED else f"errno {err}"


@pytest.fixture(scope="module")
def hardrun_bpf():
    return compile_profile(default_profile(), set())


@pytest.fixture(scope="module")
def exported_bpf():
    return libseccomp_bpf(for_libseccomp(default_seccomp_profile()))


@pytest.mark.parametrize("case", CASES)
def test_libseccomp_decides_as_hardrun_does(hardrun_bpf, exported_bpf, case):
    assert outcome(exported_bpf, CASES[case]) == outcome(hardrun_bpf, CASES[case])


def test_control_the_raw_profile_under_libseccomp_refuses_fork_and_allows_vsock(hardrun_bpf):
    raw = libseccomp_bpf(default_seccomp_profile())
    assert outcome(hardrun_bpf, CASES["fork"]) == "errno 0"
    assert outcome(raw, CASES["fork"]) == "refused"
    assert outcome(raw, CASES["personality linux"]) == "refused"
    assert outcome(hardrun_bpf, CASES["socket vsock"]) == "refused"
    assert outcome(raw, CASES["socket vsock"]) != "refused"


def test_refused_errnos_that_stay_eperm():
    # the refusals by argument value keep their own errno; only the dropped unconditional
    # refusals (clone, personality) fall to the default errno
    bpf = libseccomp_bpf(for_libseccomp(default_seccomp_profile()))
    assert errno_of(bpf, NR["socket"], AF_VSOCK, SOCK_STREAM, 0) == errno.EPERM
    assert errno_of(bpf, NR["clone"], CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) == errno.ENOSYS


def test_the_export_keeps_clone_for_sys_admin():
    bpf = libseccomp_bpf(for_libseccomp(default_seccomp_profile()), {"SYS_ADMIN"})
    assert outcome(bpf, CASES["fork"]) == "errno 0"


def test_export_pfc_shows_the_allow_rules_libseccomp_keeps(tmp_path):
    def pfc(profile):
        config = oci_seccomp(profile, ())
        seccomp_filter = pyseccomp.SyscallFilter(pyseccomp.ERRNO(config["defaultErrnoRet"]))
        for rule in config["syscalls"]:
            if rule["names"] != ["personality"]:
                continue
            args = [pyseccomp.Arg(a["index"], pyseccomp.EQ, a["value"]) for a in rule.get("args") or ()]
            seccomp_filter.add_rule(_action(rule["action"], rule.get("errnoRet")), "personality", *args)
        with open(tmp_path / "pfc", "w+") as handle:
            seccomp_filter.export_pfc(handle)
            handle.seek(0)
            return handle.read()
    raw, exported = pfc(default_seccomp_profile()), pfc(for_libseccomp(default_seccomp_profile()))
    assert "ALLOW" not in raw and "ERRNO(1)" in raw
    assert exported.count("ALLOW") == 5 and "ERRNO(1)" not in exported


@pytest.mark.parametrize("rules, message", [
    ([{"names": ["kill"], "action": "SCMP_ACT_ALLOW"},
      {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_GT"}]}],
     "'kill'.*SCMP_CMP_GT"),
    ([{"names": ["kill"], "action": "SCMP_ACT_ERRNO"},
      {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
      {"names": ["kill"], "action": "SCMP_ACT_KILL", "args": [{"index": 1, "value": 8, "op": "SCMP_CMP_EQ"}]}],
     "'kill'.*mix actions"),
])
def test_shapes_that_cannot_be_rewritten_exactly_are_errors(rules, message):
    with pytest.raises(UsageError, match=message):
        for_libseccomp({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules})


def test_an_unconditional_refusal_over_an_allowing_default_is_an_error():
    rules = [{"names": ["kill"], "action": "SCMP_ACT_ERRNO"},
             {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]
    with pytest.raises(UsageError, match="'kill'.*default action allows"):
        for_libseccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})


def test_a_profile_without_such_rules_is_left_alone():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    assert for_libseccomp(profile) is profile


# ------------------------------------------------------------------ under runc itself

RUNC = "/usr/sbin/runc"
SOCKET_PROBE = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int fd = socket(atoi(argv[1]), SOCK_STREAM, 0);
    printf("%d\n", fd < 0 ? errno : 0);
    return 0;
}
"""


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    from tests.rootfs import compile_static
    directory = tmp_path_factory.mktemp("probe")
    compile_static(SOCKET_PROBE, directory / "socket")
    return directory


def run_under_runc(tmp_path, rootfs, probe_dir, linux_seccomp: dict, script: str):
    """(exit status, stdout, stderr) of `sh -c script` in a runc container with this seccomp config."""
    import json
    import subprocess

    from hardrun.spec import oci as writer
    from hardrun.spec.defaults import MASKED_PATHS, READONLY_PATHS
    bundle = tmp_path / "bundle"
    bundle.mkdir(parents=True)
    probe_mount = {"destination": "/probe", "type": "bind", "source": str(probe_dir), "options": ["bind", "ro"]}
    document = writer.config(
        args=["/bin/sh", "-c", script], env=["PATH=/bin:/probe"], cwd="/", user={"uid": 0, "gid": 0},
        capability_sets=writer.capabilities(["CHOWN"], False), no_new_privileges=True, root=str(rootfs),
        read_only=True, hostname="probe", namespaces={"mount", "pid", "ipc", "uts", "network"},
        mounts=[probe_mount], masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS,
        linux_extra={"seccomp": linux_seccomp})
    (bundle / "config.json").write_text(json.dumps(document))
    state = tmp_path / "runc-state"
    name = f"hardrun-seccomp-{os.getpid()}-{len(list(tmp_path.iterdir()))}"
    try:
        done = subprocess.run([RUNC, "--root", str(state), "run", "--bundle", str(bundle), name],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run([RUNC, "--root", str(state), "delete", "--force", name], capture_output=True)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def exported_linux_seccomp():
    """`linux.seccomp` of the OCI config `hardrun export --to oci` writes for the default policy."""
    from hardrun.policy import load_policy
    from hardrun.policy.export import export_spec, to_oci
    return to_oci(export_spec(load_policy("default")))["linux"]["seccomp"]


def test_runc_with_the_exported_profile_forks_and_refuses_what_hardrun_refuses(
        tmp_path, busybox_rootfs, probe_dir, exported_linux_seccomp):
    assert os.path.exists(RUNC), "runc (the runc package) is needed"
    status, output, errors = run_under_runc(tmp_path, busybox_rootfs, probe_dir, exported_linux_seccomp,
                                            "true & wait && echo forked; unshare -U true || echo no-userns; "
                                            f"socket {AF_VSOCK}; socket {AF_UNIX}")
    assert status == 0, errors
    assert output.split() == ["forked", "no-userns", str(errno.EPERM), "0"], output + errors


def test_control_runc_with_the_raw_profile_cannot_fork_and_opens_vsock(tmp_path, busybox_rootfs, probe_dir):
    assert os.path.exists(RUNC), "runc (the runc package) is needed"
    raw = oci_seccomp(default_seccomp_profile(), ["CHOWN"])
    status, output, errors = run_under_runc(tmp_path / "fork", busybox_rootfs, probe_dir, raw,
                                            "true & wait && echo forked")
    assert status != 0 and "forked" not in output and "fork" in errors.lower(), output + errors
    # exec: no fork needed to run the probe
    status, output, errors = run_under_runc(tmp_path / "vsock", busybox_rootfs, probe_dir, raw,
                                            f"exec socket {AF_VSOCK}")
    assert status == 0 and output.split() != [str(errno.EPERM)], output + errors
