"""Docker runs its containers through hardrun-oci (`docker run --runtime=hardrun`), seen from inside."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.engines import daemons
from tests.engines.conftest import (PROBE, Confinement, assert_container_gone, assert_floor, assert_probe_ran,
                                    probe_under, take_kept_explain_records)
from tests.helpers import run_hardrun

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


# Raw sockets from inside: the effective capabilities, then an ICMP echo on the container's
# loopback, which busybox's ping sends through a SOCK_RAW socket (NET_RAW) when it may
RAW_SOCKET = r"""
grep '^CapEff:' /proc/self/status
ping -c 1 -W 2 127.0.0.1 >/dev/null 2>&1 && echo "raw socket opened" || echo "raw socket refused"
"""
NET_RAW_BIT = 1 << 13


def _raw_socket(docker, runtime: str, *flags: str):
    result = docker.docker("run", "--rm", "--network", "none", "--runtime", runtime, *flags, "bb:1",
                           "sh", "-c", RAW_SOCKET, check=False)
    fields = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    return result, int(fields.get("CapEff", "0"), 16), "raw socket opened" in result.stdout


def test_under_baseline_a_plain_docker_run_runs_without_net_raw(docker, hardrun_oci):
    """The floor drops NET_RAW from Docker's default set, so `baseline` (which forbids adding
    NET_RAW, as Kubernetes' baseline does) lets a plain `docker run` through."""
    control, control_caps, control_raw = _raw_socket(docker, "runc")
    assert control_caps & NET_RAW_BIT and control_raw, f"control: runc keeps NET_RAW\n{control.stdout}"
    hardrun, caps, raw = _raw_socket(docker, "hardrun-baseline")
    assert hardrun.returncode == 0 and "refused by policy" not in hardrun.stderr, hardrun.stderr
    assert not caps & NET_RAW_BIT and not raw, hardrun.stdout
    # nothing else of Docker's default set was taken
    assert caps == control_caps & ~NET_RAW_BIT


def test_net_raw_on_a_set_that_is_not_the_default_is_kept_and_judged(docker, hardrun_oci):
    """A set the user changed is the user's: NET_RAW stays (the default policy lets it run) and
    `baseline` judges it (HR3001 naming NET_RAW)."""
    kept, caps, raw = _raw_socket(docker, "hardrun", "--cap-drop", "MKNOD")
    assert caps & NET_RAW_BIT and raw, kept.stdout + kept.stderr
    refused, _, _ = _raw_socket(docker, "hardrun-baseline", "--cap-drop", "MKNOD")
    assert refused.returncode != 0 and "HR3001" in refused.stderr and "NET_RAW" in refused.stderr, refused.stderr


@pytest.mark.parametrize("flags", [("--cap-add", "NET_RAW"), ("--cap-drop", "NET_RAW", "--cap-add", "NET_RAW")])
def test_an_explicit_cap_add_net_raw_is_the_users_and_judged(docker, hardrun_oci, flags):
    """Docker 20.10 appends each --cap-add to its default list, NET_RAW again: the bundle of
    `--cap-add NET_RAW` lists it twice (after `--cap-drop NET_RAW`, last), so it is no default
    set: NET_RAW stays, raw sockets open (also through `docker exec`, whose process repeats the
    container's list), and `baseline` refuses it (HR3001). The control: the plain `docker run`
    of test_under_baseline_a_plain_docker_run_runs_without_net_raw, whose NET_RAW is dropped."""
    kept, caps, raw = _raw_socket(docker, "hardrun", *flags)
    assert kept.returncode == 0 and caps & NET_RAW_BIT and raw, kept.stdout + kept.stderr
    refused, _, _ = _raw_socket(docker, "hardrun-baseline", *flags)
    assert refused.returncode != 0 and "HR3001" in refused.stderr and "NET_RAW" in refused.stderr, refused.stderr
    container = docker.docker("run", "-d", "--network", "none", "--runtime", "hardrun", *flags, "bb:1").stdout.strip()
    try:
        execed = docker.docker("exec", container, "sh", "-c", RAW_SOCKET, check=False)
    finally:
        docker.docker("rm", "-f", container)
    assert "raw socket opened" in execed.stdout, execed.stdout + execed.stderr
    assert_container_gone(container, docker.directory)


def test_the_dropped_net_raw_is_recorded_and_shown_by_hardrun_inspect(docker, hardrun_oci):
    container = docker.docker("run", "-d", "--network", "none", "--runtime", "hardrun-baseline", "bb:1").stdout.strip()
    try:
        pid = docker.docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
        # the shim passes hardrun-oci a --root under Docker's exec-root: where the state is
        oci_root = next((docker.directory / "exec").rglob(f"{container}/state.json")).parent.parent
        inspected = run_hardrun("inspect", "--oci-root", str(oci_root), pid)
        assert inspected.returncode == 0, inspected.stderr
        floor = next(line for line in inspected.stdout.splitlines() if line.strip().startswith("floor raised:"))
        assert "process.capabilities: NET_RAW dropped from the engine's default set" in floor, inspected.stdout
    finally:
        docker.docker("rm", "-f", container)
    assert_container_gone(container, docker.directory)


# A call Docker's profile refuses (EPERM: unshare without CAP_SYS_ADMIN), tried every time
# the container is told to (a line on its stdin), its outcome printed
REFUSED_CALL = r"""
while read line; do
    unshare -U true 2>&1 | tail -n 1
done
"""


def _holder(docker, container: str) -> tuple[dict, Path]:
    state = next((docker.directory / "exec").rglob(f"{container}/state.json"))
    return json.loads(state.read_text()).get("holder"), state.parent


@contextlib.contextmanager
def _explained_container(docker, runtime: str):
    """A running container under `runtime` with REFUSED_CALL on a pipe: (id, the attach process);
    afterwards removed, with any --explain record its delete kept."""
    container = docker.docker("create", "-i", "--network", "none", "--runtime", runtime, "bb:1",
                              "sh", "-c", REFUSED_CALL).stdout.strip()
    attach = subprocess.Popen([daemons.DOCKER, "start", "-a", "-i", container], env=docker.env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield container, attach
    finally:
        attach.stdin.close()
        attach.wait(timeout=60)
        docker.docker("rm", "-f", container)
        take_kept_explain_records(container)


def _try_refused_call(attach) -> str:
    attach.stdin.write("go\n")
    attach.stdin.flush()
    return attach.stdout.readline()


def test_explain_records_the_refused_calls_and_delete_reaps_the_holder(docker, hardrun_oci):
    with _explained_container(docker, "hardrun-explain") as (container, attach):
        assert "Operation not permitted" in _try_refused_call(attach)   # the profile's errno
        holder, state = _holder(docker, container)
        assert holder and holder["pid"] and os.path.exists(f"/proc/{holder['pid']}")
        daemons.wait_until(lambda: (state / "denials.json").exists(), "the denials record")
        pid = docker.docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
        inspected = run_hardrun("inspect", "--oci-root", str(state.parent), pid)
        assert "seccomp refused: 1 system call(s)" in inspected.stdout, inspected.stdout
        assert re.search(r"unshare: 1 time\(s\), first by pid \d+ \(unshare\): EPERM", inspected.stdout), \
            inspected.stdout
        # the holder is not the container's: not in its cgroup, not in its `docker top`
        assert str(holder["pid"]) not in docker.docker("top", container, "-o", "pid").stdout
    assert daemons.gone(lambda: [str(holder["pid"])] if _alive(holder["pid"]) else []) == []
    assert_container_gone(container, docker.directory)


def test_docker_exec_s_refused_calls_are_recorded_too(docker, hardrun_oci):
    """`docker exec` into a container run with --explain: the exec'd process's refused call is
    recorded beside the container's own. The control: before the exec only the container's own
    call is in the record."""
    with _explained_container(docker, "hardrun-explain") as (container, attach):
        assert "Operation not permitted" in _try_refused_call(attach)
        _, state = _holder(docker, container)
        daemons.wait_until(lambda: (state / "denials.json").exists(), "the denials record")
        pid = docker.docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip()

        def refused() -> list[str]:
            record = json.loads((state / "denials.json").read_text())
            return sorted(denial["syscall"] for denial in record["denials"])
        assert refused() == ["unshare"]
        result = docker.docker("exec", container, "swapon", "/dev/null", check=False)
        assert "Operation not permitted" in result.stderr, result.stdout + result.stderr
        daemons.wait_until(lambda: refused() == ["swapon", "unshare"], "the exec's refusal in the record")
        inspected = run_hardrun("inspect", "--oci-root", str(state.parent), pid)
        assert re.search(r"swapon: 1 time\(s\), first by pid \d+ \(swapon\): EPERM", inspected.stdout), \
            inspected.stdout
    assert_container_gone(container, docker.directory)


def test_run_rm_keeps_the_record_in_the_state_root(docker, hardrun_oci, tmp_path):
    """`docker run --rm` deletes the container as it exits: delete keeps its record, named by
    its id. The control: the same container without --explain keeps none."""
    kept = {}
    for runtime in ("hardrun-explain", "hardrun"):
        cidfile = tmp_path / runtime
        docker.docker("run", "--rm", "--cidfile", str(cidfile), "--network", "none", "--runtime", runtime,
                      "bb:1", "sh", "-c", "unshare -U true; true")
        kept[runtime] = take_kept_explain_records(cidfile.read_text().strip())
    (record,) = kept["hardrun-explain"]
    assert [(d["syscall"], d["errno_name"]) for d in record["denials"]] == [("unshare", "EPERM")], record
    assert record["incomplete"] is False
    assert kept["hardrun"] == []


def test_without_explain_nothing_is_recorded_and_the_call_still_fails(docker, hardrun_oci):
    with _explained_container(docker, "hardrun") as (container, attach):
        assert "Operation not permitted" in _try_refused_call(attach)
        holder, state = _holder(docker, container)
        assert holder is None and not (state / "denials.json").exists()


def test_a_dead_holder_fails_the_refused_calls_closed(docker, hardrun_oci):
    """Killed under a running container, the holder leaves the listener closed: the kernel
    fails every notified call (ENOSYS), it never lets one through."""
    with _explained_container(docker, "hardrun-explain") as (container, attach):
        assert "Operation not permitted" in _try_refused_call(attach)
        holder, _ = _holder(docker, container)
        os.kill(holder["pid"], signal.SIGKILL)
        daemons.wait_until(lambda: not _alive(holder["pid"]), "the holder's death")
        after = _try_refused_call(attach)
        assert "Function not implemented" in after, after
    # control: the same call in a container under runc with Docker's profile is refused too
    # (EPERM), and with no filter at all it succeeds: the refusal above is the filter's
    unfiltered = docker.docker("run", "--rm", "--network", "none", "--security-opt", "seccomp=unconfined",
                               "--runtime", "runc", "bb:1", "sh", "-c", "unshare -U true && echo allowed")
    assert "allowed" in unfiltered.stdout


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _blkio_file(container: str, name: str) -> str:
    with open(f"/sys/fs/cgroup/blkio/docker/{container}/{name}") as handle:
        return handle.read()


@pytest.mark.parametrize("runtime", ["hardrun", "runc"])   # runc: the same request, the same file
def test_docker_blkio_requests_reach_the_containers_cgroup(docker, hardrun_oci, runtime):
    from tests.oci.test_block_io import a_block_device
    major, minor = a_block_device()
    node = os.path.realpath(f"/sys/dev/block/{major}:{minor}")
    device = f"/dev/{os.path.basename(node)}"
    # --blkio-weight: Docker keeps it where the kernel has blkio weights and otherwise drops it
    # itself, with a warning, before the runtime is called; either way the container runs
    container = docker.docker("run", "-d", "--network", "none", "--runtime", runtime, "--blkio-weight", "300",
                              "--device-read-bps", f"{device}:1mb", "--device-write-iops", f"{device}:300",
                              "bb:1").stdout.strip().splitlines()[-1]
    try:
        assert f"{major}:{minor} 1048576" in _blkio_file(container, "blkio.throttle.read_bps_device")
        assert f"{major}:{minor} 300" in _blkio_file(container, "blkio.throttle.write_iops_device")
        if os.path.exists("/sys/fs/cgroup/blkio/blkio.weight"):
            assert _blkio_file(container, "blkio.weight").strip() == "300"
    finally:
        docker.docker("rm", "-f", container)
    assert_container_gone(container, docker.directory)
