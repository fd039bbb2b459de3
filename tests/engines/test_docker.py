"""Docker runs its containers through hardrun-oci (`docker run --runtime=hardrun`), seen from inside."""
from __future__ import annotations

import re

import pytest

from tests.engines.conftest import (PROBE, Confinement, assert_container_gone, assert_floor, assert_probe_ran,
                                    probe_under)

pytestmark = pytest.mark.runtime

STATUS_LINES = "grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd|Uid|Gid):' {} | tr '\\n' ' '; echo"


@pytest.fixture(scope="module")
def probe(docker, hardrun_oci):
    """PROBE as the container's own process under a runtime: (exit status, what it saw)."""
    return probe_under(lambda runtime: docker.docker("run", "--rm", "--network", "none", "--runtime", runtime,
                                                     "bb:1", "sh", "-c", PROBE, check=False))


def test_the_payload_runs_and_its_exit_status_comes_back(probe):
    assert_probe_ran(*probe("hardrun"))


def test_the_floor_holds_where_runc_alone_leaves_no_new_privs_off(probe):
    hardrun = Confinement.parse(probe("hardrun")[1])
    control = Confinement.parse(probe("runc")[1])
    assert control.no_new_privs == 0, "control: Docker does not ask for no_new_privs by default"
    assert_floor(hardrun, control)
    # Docker's own seccomp profile reaches the container through hardrun too
    assert control.seccomp == 2 and not control.unshare_allowed


def test_run_t_gives_the_container_a_terminal(docker, hardrun_oci):
    with_tty = docker.docker("run", "--rm", "-t", "--network", "none", "--runtime", "hardrun", "bb:1",
                             "sh", "-c", "test -t 0 && test -t 1 && tty")
    assert "/dev/pts/" in with_tty.stdout
    without = docker.docker("run", "--rm", "--network", "none", "--runtime", "hardrun", "bb:1",
                            "sh", "-c", "test -t 1 || echo no-terminal")
    assert "no-terminal" in without.stdout


def test_exec_enters_with_the_same_confinement(docker, hardrun_oci):
    container = docker.docker("run", "-d", "--network", "none", "--runtime", "hardrun", "bb:1").stdout.strip()
    try:
        seen = docker.docker("exec", container, "sh", "-c",
                             STATUS_LINES.format("/proc/1/status") + ";" + STATUS_LINES.format("/proc/self/status"))
        init, entered = seen.stdout.splitlines()
        assert init == entered, "the exec'd process is confined differently from the container's init"
        assert "NoNewPrivs:\t1" in entered and "Seccomp:\t2" in entered
        assert docker.docker("exec", container, "sh", "-c", "exit 5", check=False).returncode == 5
    finally:
        docker.docker("rm", "-f", container)
    assert_container_gone(container, docker.directory)


def test_kill_and_rm_leave_nothing_behind(docker, hardrun_oci):
    killed = docker.docker("run", "-d", "--network", "none", "--runtime", "hardrun", "bb:1").stdout.strip()
    removed = docker.docker("run", "-d", "--network", "none", "--runtime", "hardrun", "bb:1").stdout.strip()
    docker.docker("kill", killed)
    assert docker.docker("wait", killed).stdout.strip() == "137"
    docker.docker("rm", killed)
    docker.docker("rm", "-f", removed)
    for container in (killed, removed):
        assert_container_gone(container, docker.directory)


def test_a_privileged_container_is_refused_with_the_rule_ids_in_dockers_error(docker, hardrun_oci):
    refused = docker.docker("run", "--name", "refused", "--privileged", "--network", "none",
                            "--runtime", "hardrun-baseline", "bb:1", "sh", "-c", "echo ran", check=False)
    try:
        assert refused.returncode != 0
        assert "ran" not in refused.stdout
        # A config.json has no "privileged" field: the OCI front end recognises what Docker makes
        # of --privileged and names HR2001, as `hardrun audit` of the docker run line does
        assert "refused by policy baseline" in refused.stderr, refused.stderr
        named = set(re.findall(r"HR\d{4}", refused.stderr))
        assert "HR2001" in named, refused.stderr
        # Docker's own /etc/hosts, /etc/hostname and /etc/resolv.conf are not host mounts
        assert "HR3002" not in named and "/etc/hosts" not in refused.stderr, refused.stderr
    finally:
        container = docker.docker("inspect", "-f", "{{.Id}}", "refused").stdout.strip()
        docker.docker("rm", "-f", "refused")
    assert_container_gone(container, docker.directory)
    # control: the same request under the `default` policy (whose gate warns, never refuses) is not
    # refused by a policy (it may still fail: root on this host lacks capabilities --privileged asks for)
    unjudged = docker.docker("run", "--rm", "--privileged", "--network", "none", "--runtime", "hardrun", "bb:1",
                             "true", check=False)
    assert "refused by policy" not in unjudged.stderr and "HR3001" not in unjudged.stderr, unjudged.stderr


def test_under_baseline_a_host_etc_bind_is_hr3002_but_dockers_own_files_are_not(docker, hardrun_oci):
    """The control of the engine-file judgement: `-v /etc:/etc` is still a host mount."""
    refused = docker.docker("run", "--rm", "-v", "/etc:/etc:ro", "--network", "none", "--runtime", "hardrun-baseline",
                            "bb:1", "true", check=False)
    assert refused.returncode != 0 and "HR3002" in refused.stderr, refused.stderr
    assert "host path /etc is mounted" in refused.stderr and refused.stderr.count("host path ") == 1, refused.stderr
