"""containerd's `ctr run --runc-binary hardrun-oci`, seen from inside: ctr passes no seccomp filter."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.engines import daemons
from tests.engines.conftest import (PROBE, Confinement, assert_container_gone, assert_floor, assert_probe_ran,
                                    assert_raised_seccomp, probe_under, take_kept_explain_records)
from tests.engines.test_docker import STATUS_LINES

pytestmark = pytest.mark.runtime


def runtime_flags(containerd, runtime: str) -> list[str]:
    return ["--runc-binary", containerd.runtimes[runtime], "--runc-root", str(containerd.runc_root)]


@pytest.fixture(scope="module")
def probe(containerd, hardrun_oci):
    return probe_under(lambda runtime: containerd.ctr("run", "--rm", *runtime_flags(containerd, runtime),
                                                      daemons.CRI_IMAGE, "probe-" + runtime, "sh", "-c", PROBE,
                                                      check=False))


def test_the_payload_runs_and_its_exit_status_comes_back(probe):
    assert_probe_ran(*probe("hardrun"))


def test_hardrun_raises_the_floor_where_ctr_passes_no_seccomp(probe):
    hardrun = Confinement.parse(probe("hardrun")[1])
    control = Confinement.parse(probe("runc")[1])
    assert_raised_seccomp(hardrun, control)
    assert_floor(hardrun, control)


def test_run_t_gives_the_container_a_terminal(containerd, hardrun_oci):
    # ctr takes the terminal it runs in: give it one
    controller, terminal = os.openpty()
    try:
        process = subprocess.run(
            [daemons.CTR, "--address", str(containerd.socket), "run", "--rm", "-t",
             *runtime_flags(containerd, "hardrun"), daemons.CRI_IMAGE, "tty-probe", "sh", "-c",
             "test -t 0 && test -t 1 && tty"], stdin=terminal, stdout=terminal, stderr=terminal, timeout=120)
        os.close(terminal)
        terminal = -1
        output = read_all(controller)
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert process.returncode == 0, output
    assert "/dev/pts/" in output


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:   # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_exec_enters_with_the_same_confinement_and_kill_rm_leave_nothing(containerd, hardrun_oci):
    name = "exec-probe"
    containerd.ctr("run", "-d", *runtime_flags(containerd, "hardrun"), daemons.CRI_IMAGE, name)
    try:
        seen = containerd.ctr("task", "exec", "--exec-id", "e1", name, "sh", "-c",
                              STATUS_LINES.format("/proc/1/status") + ";" + STATUS_LINES.format("/proc/self/status"))
        init, entered = seen.stdout.splitlines()
        assert init == entered, "the exec'd process is confined differently from the container's init"
        assert "NoNewPrivs:\t1" in entered and "Seccomp:\t2" in entered
        assert containerd.ctr("task", "exec", "--exec-id", "e2", name, "sh", "-c", "exit 5",
                              check=False).returncode == 5
        containerd.ctr("task", "kill", "-s", "SIGKILL", name)
        daemons.wait_until(lambda: "STOPPED" in containerd.ctr("task", "ls").stdout, "the killed task")
    finally:
        containerd.ctr("task", "rm", "-f", name, check=False)
        containerd.ctr("container", "rm", name, check=False)
    assert_container_gone(name, containerd.directory)


def test_explain_records_the_refused_call_and_rm_keeps_it(containerd, hardrun_oci):
    """`ctr run --rm` through hardrun-oci --explain (ctr passes no runtime options: a wrapper
    adds it). ctr passes no filter, so the floor's allowlist refuses swapon (EPERM); the record
    is kept at delete. The control: hardrun-oci without --explain keeps none."""
    wrapper = containerd.runtime_binary("hardrun-explain", (containerd.runtimes["hardrun"], "--explain"))
    kept = {}
    for name, binary in (("explained", wrapper), ("plain", containerd.runtimes["hardrun"])):
        container = f"{name}-{os.getpid()}"
        result = containerd.ctr("run", "--rm", "--runc-binary", binary, "--runc-root", str(containerd.runc_root),
                                daemons.CRI_IMAGE, container, "sh", "-c", "swapon /dev/null 2>&1; true")
        assert "Operation not permitted" in result.stdout, result.stdout + result.stderr
        kept[name] = take_kept_explain_records(container, str(containerd.hardrun_state))
    (record,) = kept["explained"]
    assert [(d["syscall"], d["errno_name"]) for d in record["denials"]] == [("swapon", "EPERM")], record
    assert kept["plain"] == []
