"""Podman runs its containers through hardrun-oci (`podman run --runtime hardrun`), seen from inside."""
from __future__ import annotations

import pytest

from tests.engines.conftest import (PROBE, Confinement, assert_container_gone, assert_floor, assert_probe_ran,
                                    probe_under, take_kept_explain_records)
from tests.engines.test_docker import STATUS_LINES

pytestmark = pytest.mark.runtime

# Podman passes hardrun-oci no --root: its containers' state is under the default root
HARDRUN_OCI_DEFAULT_ROOT = "/run/hardrun-oci"


@pytest.fixture(scope="module")
def probe(podman, hardrun_oci):
    return probe_under(lambda runtime: podman.podman("run", "--rm", "--runtime", runtime, "bb:1", "sh", "-c", PROBE,
                                                     check=False))


def test_the_payload_runs_and_its_exit_status_comes_back(probe):
    assert_probe_ran(*probe("hardrun"))


def test_the_floor_holds_where_runc_alone_leaves_no_new_privs_off(probe):
    hardrun = Confinement.parse(probe("hardrun")[1])
    control = Confinement.parse(probe("runc")[1])
    assert control.no_new_privs == 0, "control: Podman does not ask for no_new_privs by default"
    assert_floor(hardrun, control)


def test_run_t_gives_the_container_a_terminal(podman, hardrun_oci):
    result = podman.podman("run", "--rm", "-t", "--runtime", "hardrun", "bb:1", "sh", "-c",
                           "test -t 0 && test -t 1 && tty")
    assert "/dev/pts/" in result.stdout


def test_exec_enters_with_the_same_confinement_and_rm_leaves_nothing(podman, hardrun_oci):
    container = podman.podman("run", "-d", "--runtime", "hardrun", "bb:1").stdout.strip()
    try:
        seen = podman.podman("exec", container, "sh", "-c",
                             STATUS_LINES.format("/proc/1/status") + ";" + STATUS_LINES.format("/proc/self/status"))
        init, entered = seen.stdout.splitlines()
        assert init == entered, "the exec'd process is confined differently from the container's init"
        assert "NoNewPrivs:\t1" in entered and "Seccomp:\t2" in entered
        assert podman.podman("exec", container, "sh", "-c", "exit 5", check=False).returncode == 5
        podman.podman("kill", container)
    finally:
        podman.podman("rm", "-f", container)
    assert_container_gone(container, podman.directory, HARDRUN_OCI_DEFAULT_ROOT)


def test_explain_records_the_refused_call_and_rm_keeps_it(podman, hardrun_oci, tmp_path):
    """`podman --runtime-flag explain run --rm`: Podman's profile refuses swapon (EPERM), the
    holder records it and delete keeps the record. The control: without the flag, none."""
    kept = {}
    for flags in (("--runtime-flag", "explain"), ()):
        cidfile = tmp_path / f"cid{len(flags)}"
        result = podman.podman(*flags, "run", "--rm", "--cidfile", str(cidfile), "--runtime", "hardrun", "bb:1",
                               "sh", "-c", "swapon /dev/null 2>&1; true")
        assert "Operation not permitted" in result.stdout, result.stdout + result.stderr
        kept[flags] = take_kept_explain_records(cidfile.read_text().strip())
    (record,) = kept[("--runtime-flag", "explain")]
    assert [(d["syscall"], d["errno_name"]) for d in record["denials"]] == [("swapon", "EPERM")], record
    assert kept[()] == []
