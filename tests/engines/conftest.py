"""Fixtures of the engine tests: one daemon per engine per session, each registering hardrun-oci.

Every engine also runs runc, the runtime it ships with, as the control of each security claim:
the same container under runc shows what the engine alone gives (under `ctr` and the CRI: no
seccomp filter at all), under hardrun what hardrun's floor and policy add.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engines import daemons

# Runs inside the container: what its own process sees of its confinement, then exit status 7.
PROBE = r"""
grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status
for p in /proc/kcore /proc/keys /proc/timer_list /proc/acpi /sys/firmware; do
    grep -q " $p " /proc/self/mountinfo && echo "masked $p"
done
for p in /proc/sys /proc/sysrq-trigger /proc/irq /proc/bus /proc/fs; do
    grep -q " $p ro," /proc/self/mountinfo && echo "readonly $p"
done
unshare -U true 2>/dev/null && echo "unshare allowed" || echo "unshare refused"
echo ran
exit 7
"""
PROBE_EXIT = 7
# what hardrun's floor promises in every container it runs (README, "hardrun under an engine"),
# of the paths this kernel has (some kernels have no /proc/kcore or /proc/sysrq-trigger)
FLOOR_MASKED = {p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware") if os.path.exists(p)}
FLOOR_READONLY = {p for p in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus") if os.path.exists(p)}


@dataclass(frozen=True)
class Confinement:
    """What PROBE printed."""
    no_new_privs: int
    seccomp: int
    cap_eff: int
    masked: frozenset
    readonly: frozenset
    unshare_allowed: bool
    ran: bool

    @classmethod
    def parse(cls, output: str) -> "Confinement":
        fields = dict(line.split(":\t", 1) for line in output.splitlines() if ":\t" in line)
        lines = output.splitlines()
        assert {"NoNewPrivs", "Seccomp", "CapEff"} <= fields.keys(), f"the probe did not run:\n{output}"
        return cls(no_new_privs=int(fields["NoNewPrivs"]), seccomp=int(fields["Seccomp"]),
                   cap_eff=int(fields["CapEff"], 16),
                   masked=frozenset(line.split()[1] for line in lines if line.startswith("masked ")),
                   readonly=frozenset(line.split()[1] for line in lines if line.startswith("readonly ")),
                   unshare_allowed="unshare allowed" in lines, ran="ran" in lines)


def assert_floor(hardrun: Confinement, control: Confinement) -> None:
    """hardrun's floor is there, and nothing the engine asked to keep closed was opened.

    A seccomp filter the engine passed (Docker's, Podman's) is the one applied: what it allows
    (Podman's allows unshare) stays allowed. Where the engine passes none, see assert_raised_seccomp.
    """
    assert hardrun.ran and control.ran
    assert hardrun.no_new_privs == 1
    assert hardrun.seccomp == 2, "no seccomp filter in the container"
    assert hardrun.cap_eff & ~control.cap_eff == 0, "hardrun gave capabilities the engine did not ask for"
    assert FLOOR_MASKED and FLOOR_MASKED <= hardrun.masked
    assert FLOOR_READONLY and FLOOR_READONLY <= hardrun.readonly
    assert control.masked <= hardrun.masked and control.readonly <= hardrun.readonly


def assert_raised_seccomp(hardrun: Confinement, control: Confinement) -> None:
    """Where the engine passes no seccomp filter, runc runs the container unfiltered, hardrun with its own."""
    assert control.seccomp == 0, "control: the engine passed no seccomp filter and runc adds none"
    assert control.unshare_allowed, "control: without a filter, unshare(CLONE_NEWUSER) works in the container"
    assert hardrun.seccomp == 2
    assert not hardrun.unshare_allowed, "unshare(CLONE_NEWUSER) passed hardrun's filter"


def paths_named(name: str, *directories: Path) -> list[str]:
    """Files or directories under `directories` whose name contains `name` (a container's id)."""
    found = []
    for directory in directories:
        for parent, subdirs, files in os.walk(directory):
            found += [os.path.join(parent, entry) for entry in subdirs + files if name in entry]
    return found


def take_kept_explain_records(container_id: str, state: str | None = None) -> list[dict]:
    """The --explain records hardrun-oci's delete kept for the container in the state root
    (`state`: the one the engine gave hardrun-oci, else hardrun's default), removed as they
    are read (the test's own)."""
    import json
    from hardrun.runtime.oci_explain import KEPT_DIR
    from hardrun.runtime.state import state_root
    directory = os.path.join(state or state_root(), KEPT_DIR)
    records = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        if name.startswith(container_id + "-2"):
            with open(os.path.join(directory, name)) as handle:
                records.append(json.load(handle))
            os.unlink(os.path.join(directory, name))
    return records


def assert_container_gone(container_id: str, *state_directories: Path) -> None:
    """No process, mount, cgroup or state file of the container is left."""
    left = daemons.gone(lambda: daemons.processes_of(container_id))
    assert not left, f"processes of {container_id} left: {left}"
    assert not daemons.mounts_of(container_id), daemons.mounts_of(container_id)
    assert not daemons.cgroups_named(container_id), daemons.cgroups_named(container_id)
    assert not paths_named(container_id, *state_directories), paths_named(container_id, *state_directories)


def runtimes() -> dict:
    """The runtimes every engine registers: hardrun-oci, its `baseline` twin, and runc the control."""
    return {"runc": daemons.RUNC, "hardrun": daemons.hardrun_oci()}


@pytest.fixture(scope="session")
def hardrun_oci() -> str:
    path = daemons.hardrun_oci()
    assert os.access(path, os.X_OK), f"{path} is missing: install hardrun with scripts/setup.sh"
    return path


@pytest.fixture(scope="session")
def docker(busybox_rootfs):
    oci = daemons.hardrun_oci()
    yield from _serving(daemons.Docker(daemons.short_tempdir("hr-docker-"), {
        "hardrun": {"path": oci},
        "hardrun-baseline": {"path": oci, "runtimeArgs": ["--policy", "baseline"]},
        "hardrun-explain": {"path": oci, "runtimeArgs": ["--explain"]},
        "hardrun-keep": {"path": oci, "runtimeArgs": ["--userns", "keep"]},
        "crun": {"path": daemons.CRUN}}), busybox_rootfs)


@pytest.fixture(scope="session")
def podman(busybox_rootfs):
    yield from _serving(daemons.Podman(daemons.short_tempdir("hr-podman-"), runtimes()), busybox_rootfs)


@pytest.fixture(scope="session")
def containerd(busybox_rootfs):
    keep = {"hardrun-keep": (daemons.hardrun_oci(), "--userns", "keep")}     # the CRI's control of auto
    yield from _serving(daemons.Containerd(daemons.short_tempdir("hr-containerd-"), runtimes() | keep), busybox_rootfs,
                        ("default",), ("k8s.io",))


def _serving(engine, rootfs, *imports):
    """Start `engine`, import the busybox image (once per argument tuple of `imports`: the
    containerd namespaces), yield it, and stop it whatever happened."""
    try:
        engine.start()
        for arguments in imports or ((),):
            engine.import_image(rootfs, *arguments)
        yield engine
    finally:
        engine.stop()


def probe_under(run):
    """PROBE under a runtime, run once per module: `run(runtime)` starts it and returns the
    CompletedProcess; the probe gives (exit status, what it saw)."""
    @functools.lru_cache(maxsize=None)
    def under(runtime: str):
        result = run(runtime)
        return result.returncode, result.stdout + result.stderr
    return under


def assert_probe_ran(status: int, output: str) -> None:
    """The payload ran in the container and its exit status came back."""
    assert status == PROBE_EXIT, output
    assert Confinement.parse(output).ran


# module, not session: while a gRPC channel is open, the children other tests fork cannot
# unshare a user namespace (EINVAL, as in a threaded process): close it before they run
@pytest.fixture(scope="module")
def cri(containerd):
    client = daemons.CRI(containerd)
    yield client
    client.close()
