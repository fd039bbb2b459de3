"""The checks run inside the cgroup v2 virtual machine (tests/vm/machine.py), by this
checkout's Python, as root: each prints one line `CHECK <name> ok` or `CHECK <name> FAIL
<what was seen>`, which tests/vm/test_cgroup2_vm.py turns into one test per check.

`python inside.py full` runs the checks of a machine with every controller on v2;
`python inside.py reduced` those of a machine booted with `cgroup_disable=memory,pids`.
Every check of a protection runs the same probe with the protection loosened (the control).
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARDRUN = [sys.executable, "-m", "hardrun"]
HARDRUN_OCI = os.path.join(os.path.dirname(sys.executable), "hardrun-oci")
# a node anyone may open (mode 0666) that none of runc's default rules allows (10:229): opening
# it for reading or writing is up to the --device rule alone
NODE = "/dev/fuse"
OPEN_BOTH = ("(exec 3</dev/z) 2>/dev/null && echo READ; (exec 3>/dev/z) 2>/dev/null && echo WROTE; "
             "echo done")
DEFAULT_NODES = ("for node in null zero full random urandom; do (exec 3<>/dev/$node) && echo $node; done; "
                 "echo done")
CHECKS: dict[str, list] = {"full": [], "reduced": []}


def check(*machines: str):
    def register(function):
        for machine in machines:
            CHECKS[machine].append(function)
        return function
    return register


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=CHECKOUT)
    return subprocess.run([*HARDRUN, "run", "--rootfs", ROOTFS, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def inside(script: str, *flags: str) -> str:
    done = run(*flags, "--", "sh", "-c", script)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr.strip()}"
    return done.stdout


def expect(seen, wanted, what: str = "") -> None:
    assert seen == wanted, f"{what} {seen!r}, expected {wanted!r}".strip()


def cgroup_directories() -> set[str]:
    return {root for root, _, _ in os.walk("/sys/fs/cgroup")}


# ------------------------------------------------------------------ the layout

@check("full", "reduced")
def pure_v2_layout():
    from hardrun.runtime import cgroups
    versions = [hierarchy.version for hierarchy in cgroups.detect_layout().hierarchies]
    expect(versions, [2], "cgroup hierarchies:")
    assert {"cpu", "io"} <= controllers(), controllers()


@check("full")
def every_controller_on_v2():
    assert {"cpu", "cpuset", "io", "memory", "pids"} <= controllers(), controllers()


def controllers() -> set[str]:
    with open("/sys/fs/cgroup/cgroup.controllers") as handle:
        return set(handle.read().split())


# ------------------------------------------------------------------ devices

@check("full", "reduced")
def device_read_only():
    expect(inside(OPEN_BOTH, "--device", f"{NODE}:/dev/z:r").split(), ["READ", "done"])


@check("full")
def device_write_only():
    expect(inside(OPEN_BOTH, "--device", f"{NODE}:/dev/z:w").split(), ["WROTE", "done"])


@check("full")
def device_mknod_only_cannot_be_opened():
    expect(inside(OPEN_BOTH, "--device", f"{NODE}:/dev/z:m").split(), ["done"])


@check("full")
def device_control_read_write():
    """The control of the three above: the same node, the rule giving rw, opens both ways."""
    expect(inside(OPEN_BOTH, "--device", f"{NODE}:/dev/z:rw").split(), ["READ", "WROTE", "done"])


@check("full")
def device_program_is_attached_to_the_container_cgroup():
    """The container's own v2 cgroup (seen as its root through its cgroup namespace) holds a
    device program: listed by BPF_PROG_QUERY from the host while it runs."""
    script = "cat /proc/self/cgroup; sleep 30"
    process = subprocess.Popen([*HARDRUN, "run", "--rootfs", ROOTFS, "--device", f"{NODE}:/dev/z:r", "--",
                                "sh", "-c", script], stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=CHECKOUT))
    try:
        assert process.stdout is not None
        process.stdout.readline()
        before = cgroup_directories()
        programs = {path: _device_programs(path) for path in sorted(before)}
        attached = [path for path, count in programs.items() if count]
        expect(len(attached), 1, "cgroups with a device program:")
        assert os.path.basename(os.path.dirname(attached[0])) == "hardrun", attached
    finally:
        process.kill()
        process.wait()


def _device_programs(path: str) -> int:
    return len(_device_program_ids(path))


@check("full")
def default_device_rules_hold():
    """runc's defaults under the device program: /dev/null and the others open read-write,
    while the --device node given `m` alone does not open (above)."""
    expect(inside(DEFAULT_NODES, "--device", f"{NODE}:/dev/z:m").split(),
           ["null", "zero", "full", "random", "urandom", "done"])


DISK = "/dev/ram0"     # a RAM disk (brd), block 1:0, owned by root: opened with --userns host


@check("full")
def disk_device_opens_only_as_its_rule_says():
    """A block device under runc's defaults (which allow making any node, opening none):
    given `m` it does not open, given `r` it opens for reading only."""
    host = ("--userns", "host")
    expect(inside(OPEN_BOTH, *host, "--device", f"{DISK}:/dev/z:m").split(), ["done"])
    expect(inside(OPEN_BOTH, *host, "--device", f"{DISK}:/dev/z:r").split(), ["READ", "done"])


@check("full")
def disk_device_control_read_write():
    """The control: the same disk given rw opens both ways (so root's access to the node
    itself is not what refused it above)."""
    expect(inside(OPEN_BOTH, "--userns", "host", "--device", f"{DISK}:/dev/z:rw").split(),
           ["READ", "WROTE", "done"])


# ------------------------------------------------------------------ limits

@check("full")
def limits_written_and_seen_inside():
    out = inside("cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max",
                 "--memory", "64m", "--pids-limit", "40", "--cpus", "0.5")
    expect(out.split(), [str(64 << 20), "40", "50000", "100000"])


# only shell builtins after the bomb (forks fail while it runs): wait until pids.events counts
# a refused fork, then say how many processes there are and how many forks were refused
BOMB = """bomb() { bomb | bomb & }; bomb 2>/dev/null
i=0
while [ $i -lt 200000 ]; do
    read -r _ refused < /sys/fs/cgroup/pids.events; [ "$refused" != 0 ] && break; i=$((i+1))
done
read -r current < /sys/fs/cgroup/pids.current; echo "$current $refused"
"""


@check("full")
def fork_bomb_stopped_by_pids():
    current, refused = (int(word) for word in inside(BOMB, "--pids-limit", "24").split())
    assert current <= 24 and refused > 0, (current, refused)


@check("full")
def fork_control_under_a_higher_limit():
    """The control: 30 processes under a limit of 100 are never refused."""
    out = inside("for i in $(seq 30); do sleep 1 & done; wait; grep max /sys/fs/cgroup/pids.events",
                 "--pids-limit", "100").split()
    expect(out, ["max", "0"])


HOG = ["--", "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"]


@check("full")
def memory_limit_kills_a_hog():
    done = run("--memory", "64m", *HOG)
    expect(done.returncode, 137, f"exit status ({done.stderr.strip()}):")
    control = run("--memory", "512m", *HOG)
    expect(control.returncode, 0, f"the control's exit status ({control.stderr.strip()}):")


# ------------------------------------------------------------------ hardrun-oci

class Bundle:
    """A hardrun-oci bundle written from `hardrun run --dry-run FLAGS -- sh -c SCRIPT`, with
    `resources` merged into its linux.resources, and the container `c` made from it."""

    def __init__(self, script: str, *flags: str, resources: dict | None = None):
        self.work = tempfile.mkdtemp(prefix="vm-oci-")
        self.bundle = os.path.join(self.work, "bundle")
        os.mkdir(self.bundle)
        config = json.loads(dry_run(script, *flags))
        config["linux"].setdefault("resources", {}).update(resources or {})
        with open(os.path.join(self.bundle, "config.json"), "w") as handle:
            json.dump(config, handle)
        self.oci = [HARDRUN_OCI, "--root", os.path.join(self.work, "state")]

    def call(self, *args: str) -> tuple[int, str]:
        # no pipes: the container keeps create's stdout and stderr open
        with tempfile.TemporaryFile("w+") as errors:
            done = subprocess.run([*self.oci, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=errors, timeout=120)
            errors.seek(0)
            return done.returncode, errors.read().strip()

    def create(self) -> None:
        status, errors = self.call("create", "--bundle", self.bundle, "c")
        assert status == 0, f"create: {errors}"

    def delete(self) -> None:
        self.call("delete", "--force", "c")
        shutil.rmtree(self.work)


@functools.cache
def dry_run(script: str, *flags: str) -> str:
    dry = run("--dry-run", *flags, "--", "sh", "-c", script)
    assert dry.returncode == 0, dry.stderr
    return dry.stdout


def read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as handle:
        return handle.read().strip()


@check("full")
def oci_bundle_with_devices_and_limits_leaves_no_cgroup():
    # hardrun-oci binds linux.devices from the host's node of the same path
    bundle = Bundle(f"(exec 3>{NODE}) && sleep 60", "--memory", "64m", "--pids-limit", "33",
                    "--device", f"{NODE}:{NODE}:w")
    from hardrun.runtime import oci_create
    before = cgroup_directories()
    leaf = ""
    try:
        bundle.create()
        status, errors = bundle.call("start", "c")
        assert status == 0, f"start: {errors}"
        state = json.loads(subprocess.run([*bundle.oci, "state", "c"], capture_output=True, text=True).stdout)
        expect(state["status"], "running", "status (the process opened the node for writing):")
        created = cgroup_directories() - before
        assert created, "the container made no cgroup"
        leaf = max(created, key=len)
        expect(read(leaf, "pids.max"), "33", "pids.max:")
        expect(read(leaf, "memory.max"), str(64 << 20), "memory.max:")
        expect(_device_programs(leaf), 1, "device programs on the container's cgroup:")
    finally:
        bundle.delete()
    left = cgroup_directories() - before
    assert leaf not in left, f"{leaf} left after delete"
    # what may stay is the parent all hardrun-oci containers share, empty (as on cgroup v1)
    expect(sorted(left), [f"/sys/fs/cgroup/{oci_create.CGROUP_PARENT}"][:len(left)], "cgroups left after delete:")
    for directory in left:
        expect(read(directory, "cgroup.procs"), "", f"processes in {directory}:")


@check("full")
def oci_update_replaces_the_device_program():
    """`update` with device rules and a pids limit: the new program attached, the old one
    gone (one program throughout), pids.max rewritten."""
    bundle = Bundle("sleep 60", "--pids-limit", "33", "--device", f"{NODE}:{NODE}:w")
    before = cgroup_directories()
    try:
        bundle.create()
        leaf = max(cgroup_directories() - before, key=len)
        first = _device_program_ids(leaf)
        expect(len(first), 1, "device programs after create:")
        resources = os.path.join(bundle.work, "resources.json")
        with open(resources, "w") as handle:
            json.dump({"pids": {"limit": 44}, "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}]}, handle)
        status, errors = bundle.call("update", "--resources", resources, "c")
        assert status == 0, f"update: {errors}"
        second = _device_program_ids(leaf)
        assert len(second) == 1 and second != first, (first, second)
        expect(read(leaf, "pids.max"), "44", "pids.max after update:")
    finally:
        bundle.delete()


def _device_program_ids(path: str) -> list[int]:
    from hardrun.runtime import device_bpf
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return device_bpf.attached(descriptor)
    finally:
        os.close(descriptor)


def block_io_files(resources: dict, *names: str) -> list[str]:
    """The container cgroup's `names` after creating a bundle with these blockIO settings."""
    bundle = Bundle("true", resources={"blockIO": resources})
    before = cgroup_directories()
    try:
        bundle.create()
        leaf = max(cgroup_directories() - before, key=len)
        return [read(leaf, name) for name in names]
    finally:
        bundle.delete()


RAM0 = {"major": 1, "minor": 0}


@check("full")
def oci_block_io_written_to_io_max_and_io_weight():
    """Throttles into io.max; a weight into io.weight by runc's conversion of blkio's 10-1000
    to 1-10000 (500: 4950)."""
    block_io = {"weight": 500, "throttleReadBpsDevice": [dict(RAM0, rate=1048576)],
                "throttleWriteIOPSDevice": [dict(RAM0, rate=100)]}
    expect(block_io_files(block_io, "io.max", "io.weight"),
           ["1:0 rbps=1048576 wbps=max riops=max wiops=100", "default 4950"])


@check("full")
def oci_block_io_leaf_weight_refused_on_v2():
    """cgroup v2 has no leaf weight: create fails naming the field, nothing is dropped
    (the check above is its control: the same bundle with settings v2 has is created)."""
    bundle = Bundle("true", resources={"blockIO": {"leafWeight": 300}})
    try:
        status, errors = bundle.call("create", "--bundle", bundle.bundle, "c")
    finally:
        bundle.delete()
    expect(status, 1, f"create's exit status ({errors}):")
    assert "linux.resources.blockIO.leafWeight cannot be applied" in errors, errors


# ------------------------------------------------------------------ controllers missing

@check("reduced")
def memory_and_pids_controllers_are_missing():
    assert not {"memory", "pids"} & controllers(), controllers()


@check("reduced")
def memory_limit_refused_without_the_controller():
    refused("--memory", "64m")


@check("reduced")
def pids_limit_refused_without_the_controller():
    refused("--pids-limit", "50")


def refused(*flags: str) -> None:
    """Exit 125 with one line naming the flag, nothing run."""
    done = run(*flags, "--", "echo", "STARTED")
    expect(done.returncode, 125, f"exit status ({done.stderr.strip()}):")
    assert "STARTED" not in done.stdout and "Traceback" not in done.stderr, done.stderr
    assert flags[0] in done.stderr, done.stderr


@check("reduced")
def limits_best_effort_control():
    """The control: asked best-effort, the same start runs without the limits, warning for each."""
    done = run("--limits", "best-effort", "--memory", "64m", "--pids-limit", "50", "--", "echo", "STARTED")
    expect((done.returncode, done.stdout), (0, "STARTED\n"), f"({done.stderr.strip()})")
    assert "--memory not applied" in done.stderr and "--pids-limit not applied" in done.stderr, done.stderr


@check("reduced")
def default_pids_limit_missing_is_a_warning():
    """As documented: the default pids limit (1024, not asked for) that cannot be applied is a
    warning, and the container starts."""
    done = run("--", "echo", "STARTED")
    expect((done.returncode, done.stdout), (0, "STARTED\n"), f"({done.stderr.strip()})")
    assert "the default pids limit" in done.stderr, done.stderr


# ------------------------------------------------------------------ running them

def build_rootfs(root: str) -> str:
    """A busybox root (the VM's own /tmp is a tmpfs): /bin with every applet, /etc/passwd."""
    os.makedirs(os.path.join(root, "bin"))
    for name in ("etc", "proc", "sys", "dev", "tmp", "run", "root"):
        os.makedirs(os.path.join(root, name))
    os.chmod(root, 0o755)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc", "passwd"), "w") as handle:
        handle.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as handle:
        handle.write("root:x:0:\n")
    return root


def main(machine: str) -> None:
    global ROOTFS
    os.chmod(NODE, 0o666)    # as udev's rule makes it on a Debian host (devtmpfs creates it 0600)
    ROOTFS = build_rootfs(os.path.join(tempfile.mkdtemp(prefix="vm-rootfs-"), "root"))
    for function in CHECKS[machine]:
        started = time.monotonic()
        try:
            function()
            print(f"CHECK {function.__name__} ok {time.monotonic() - started:.1f} s", flush=True)
        except Exception as error:   # one failed check must not hide the others
            detail = f"{type(error).__name__}: {error}" if str(error) else traceback.format_exc()
            print(f"CHECK {function.__name__} FAIL {' '.join(detail.split())}", flush=True)


ROOTFS = ""

if __name__ == "__main__":
    main(sys.argv[1])
