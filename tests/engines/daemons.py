"""The engines the engine tests drive, each started by hand with its state in a temporary directory.

Docker (dockerd and the containerd it manages), Podman (no daemon: conmon per container),
a standalone containerd with its CRI plugin, and the image root they all run: a busybox-static
tree (tests/rootfs.py) imported as `bb:1`. Every daemon is started in the background, waited
for until it answers, stopped by its pid, and then checked for leftovers: processes, mounts
under its directory. bench/engine_bench.py starts the same daemons through this module.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import ROOT

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"        # Debian's client, the one of the docker.io package
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
PODMAN = "/usr/bin/podman"
RUNC = "/usr/sbin/runc"
CRUN = "/usr/bin/crun"
CNI_PLUGINS = "/usr/lib/cni"
PACKAGES = {DOCKERD: "docker.io", DOCKER: "docker.io", CONTAINERD: "containerd", CTR: "containerd",
            PODMAN: "podman", RUNC: "runc", CRUN: "crun", CNI_PLUGINS + "/host-device": "containernetworking-plugins",
            CNI_PLUGINS + "/static": "containernetworking-plugins", "/usr/sbin/ip": "iproute2"}
PACKAGES.update({CNI_PLUGINS + f"/{plugin}": "containernetworking-plugins" for plugin in ("bridge", "host-local")})

IMAGE = "bb:1"
CRI_IMAGE = "docker.io/library/bb:1"
IMAGE_CMD = ["/bin/sleep", "86400"]   # the CRI pod sandbox (pause) runs the image's own command


def hardrun_oci() -> str:
    """hardrun-oci as installed next to the interpreter running the tests (scripts/setup.sh)."""
    return str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "hardrun-oci")


def require(*binaries: str) -> None:
    """The engine tests fail, never skip, when an engine is not installed."""
    assert os.geteuid() == 0, "the engine tests need root (the engines run as root)"
    missing = [path for path in binaries if not os.access(path, os.X_OK)]
    assert not missing, "install " + ", ".join(sorted({PACKAGES.get(p, p) for p in missing})) + \
        " (scripts/setup.sh --test) for the engine tests: missing " + ", ".join(missing)


def short_tempdir(prefix: str) -> Path:
    """A temporary directory with a short path: unix socket paths are limited to 108 bytes."""
    assert prefix.startswith(TEMP_PREFIX)
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def wait_until(answers, what: str, timeout: float = 60.0, process: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    """Poll `answers()` until it is true; fail with the daemon's log tail if it dies or never answers."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not answers():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not answer within {timeout:.0f} s:\n{tail(log)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM by pid, then SIGKILL if it has not exited in time."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def processes_under(path: Path) -> list[str]:
    """Live processes whose command line names `path` or whose root or cwd lies under it."""
    found = []
    prefix = str(path)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            places = [os.readlink(f"/proc/{entry}/{link}") for link in ("root", "cwd")]
        except OSError:
            continue   # gone meanwhile, or a kernel thread
        if prefix in cmdline or any(place.startswith(prefix) for place in places):
            found.append(f"{entry}: {cmdline.strip()}")
    return found


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if line.split()[4].startswith(prefix)]


def cgroups_named(name: str) -> list[str]:
    """cgroup directories (any v1 hierarchy or the v2 one) whose name contains `name`."""
    found = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for directory, subdirs, _files in os.walk(hierarchy):
            found += [os.path.join(directory, d) for d in subdirs if name in d]
    return found


def processes_of(name: str) -> list[str]:
    """Live processes whose command line or cgroup names `name` (a container's id)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroups = Path(f"/proc/{entry}/cgroup").read_text()
        except OSError:
            continue
        if name in cmdline or name in cgroups:
            found.append(f"{entry}: {cmdline.strip()}")
    return found


def mounts_of(name: str) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.strip() for line in mountinfo if name in line]


def gone(processes, timeout: float = 15.0) -> list[str]:
    """The processes `processes()` lists once they had `timeout` seconds to exit (shims and
    conmon exit on their own, a moment after the engine's command returns)."""
    deadline = time.monotonic() + timeout
    while (left := processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def tear_down(directory: Path, problems: list[str] | None = None) -> None:
    """Remove a stopped engine's directory. Whatever it left (processes naming the directory:
    its shims, conmon, containers; mounts under it) is reported as a failure, and cleaned up
    all the same so that a failed test leaves nothing behind either."""
    problems = list(problems or [])
    left = gone(lambda: processes_under(directory))
    if left:
        problems.append(f"processes left under {directory}: {left}")
        for line in left:
            try:
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        gone(lambda: processes_under(directory))
    mounts = mounts_under(directory)
    if mounts:
        problems.append(f"mounts left under {directory}: {mounts}")
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    remove_tree(directory)
    assert not problems, "\n".join(problems)


TEMP_PREFIX = "hr-"


def remove_tree(directory: Path) -> None:
    """Remove a directory short_tempdir made, once nothing is mounted there; anything else is refused."""
    directory = Path(directory)
    assert directory.parent == Path("/tmp") and directory.name.startswith(TEMP_PREFIX), \
        f"refusing to remove {directory}: not a temporary directory of the engine tests"
    assert not mounts_under(directory), f"mounts left under {directory}: {mounts_under(directory)}"
    shutil.rmtree(directory)


def run(argv: list[str], *, env: dict | None = None, input: bytes | str | None = None, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, env=env, input=input, capture_output=True, timeout=timeout,
                            text=not isinstance(input, bytes))
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


# ---------------------------------------------------------------- the image

def rootfs_tar(rootfs: Path) -> bytes:
    """The image root as one uncompressed layer (owners and modes kept, links relative as built)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(rootfs.iterdir()):
            archive.add(entry, arcname=entry.name)
    return buffer.getvalue()


def image_archive(rootfs: Path, tag: str, cmd: list[str]) -> bytes:
    """A `docker save` archive of the busybox root (one layer, CMD `cmd`) for `ctr images import`."""
    layer = rootfs_tar(rootfs)
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_digest]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": [layer_digest + "/layer.tar"]}]).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in ((layer_digest + "/layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ---------------------------------------------------------------- Docker

@dataclass
class Docker:
    """dockerd with its own managed containerd, all state under `directory`."""
    directory: Path
    runtimes: dict
    process: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.directory / "docker.sock"

    @property
    def log(self) -> Path:
        return self.directory / "dockerd.log"

    def start(self) -> "Docker":
        require(DOCKERD, DOCKER, CONTAINERD)
        config = {
            "data-root": str(self.directory / "data"),
            "exec-root": str(self.directory / "exec"),
            "pidfile": str(self.directory / "docker.pid"),
            "hosts": ["unix://" + str(self.socket)],
            # no bridge, no iptables: the tests run --network none and touch no host network
            "iptables": False, "ip6tables": False, "ip-forward": False, "ip-masq": False, "bridge": "none",
            "storage-driver": "overlay2",
            "runtimes": self.runtimes,
        }
        config_file = self.directory / "daemon.json"
        config_file.write_text(json.dumps(config, indent=1))
        self.env = {**os.environ, "DOCKER_HOST": "unix://" + str(self.socket),
                    "DOCKER_CONFIG": str(self.directory / "client")}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([DOCKERD, "--config-file", str(config_file)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        wait_until(lambda: self.docker("version", check=False).returncode == 0, "dockerd",
                   process=self.process, log=self.log)
        return self

    def docker(self, *args: str, check: bool = True, input=None, timeout: float = 120) -> subprocess.CompletedProcess:
        return run([DOCKER, *args], env=self.env, check=check, input=input, timeout=timeout)

    def import_image(self, rootfs: Path, tag: str = IMAGE) -> None:
        self.docker("import", "--change", "CMD " + json.dumps(IMAGE_CMD), "-", tag, input=rootfs_tar(rootfs))

    def stop(self) -> None:
        """Remove every container, stop dockerd (it stops its containerd), check nothing is left."""
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
        if self.process is not None:
            stop_process(self.process, timeout=60)
        tear_down(self.directory)


# ---------------------------------------------------------------- Podman

@dataclass
class Podman:
    """Podman with a temporary containers.conf and storage; there is no daemon to start."""
    directory: Path
    runtimes: dict
    env: dict = field(default_factory=dict)

    def start(self) -> "Podman":
        require(PODMAN)
        directory = self.directory
        for name in ("root", "runroot", "tmp", "networks", "volumes"):
            (directory / name).mkdir()
        runtimes = "\n".join(f'{name} = [{json.dumps(path)}]' for name, path in self.runtimes.items())
        (directory / "containers.conf").write_text(f"""\
[containers]
# this host's hard RLIMIT_NOFILE is 20000 (and RLIMIT_NPROC bounded); Podman asks for more than both
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{directory}/events.log"
tmp_dir = "{directory}/tmp"
volume_path = "{directory}/volumes"

[engine.runtimes]
{runtimes}

[network]
network_config_dir = "{directory}/networks"
""")
        (directory / "storage.conf").write_text(f"""\
[storage]
driver = "overlay"
graphroot = "{directory}/root"
runroot = "{directory}/runroot"
""")
        self.env = {**os.environ, "CONTAINERS_CONF": str(directory / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(directory / "storage.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(directory / "registries.conf")}
        (directory / "registries.conf").write_text("unqualified-search-registries = []\n")
        return self

    def podman(self, *args: str, check: bool = True, input=None, timeout: float = 120) -> subprocess.CompletedProcess:
        return run([PODMAN, "--root", str(self.directory / "root"), "--runroot", str(self.directory / "runroot"),
                    *args], env=self.env, check=check, input=input, timeout=timeout)

    def import_image(self, rootfs: Path, tag: str = IMAGE) -> None:
        self.podman("import", "--change", "CMD=" + json.dumps(IMAGE_CMD, separators=(",", ":")), "-", tag,
                    input=rootfs_tar(rootfs))

    def stop(self) -> None:
        self.podman("rm", "-af", "-t", "0", check=False)
        # the overlay driver's own private mount of its home, kept until the storage is reset
        subprocess.run(["umount", str(self.directory / "root" / "overlay")], check=False, capture_output=True)
        tear_down(self.directory)


# ---------------------------------------------------------------- containerd and its CRI plugin

@dataclass
class Containerd:
    """containerd --config F, with a CRI runtime handler per entry of `runtimes` (name: binary)."""
    directory: Path
    runtimes: dict
    process: subprocess.Popen | None = None
    device_made: bool = False

    @property
    def socket(self) -> Path:
        return self.directory / "containerd.sock"

    @property
    def log(self) -> Path:
        return self.directory / "containerd.log"

    @property
    def pod_device(self) -> str:
        return "hrpod" + self.directory.name[-6:]

    @property
    def runc_root(self) -> Path:
        """The runtime's --root for every container of this containerd (never the host's /run)."""
        return self.directory / "runtime-root"

    @property
    def hardrun_state(self) -> Path:
        return self.directory / "hardrun-state"

    def runtime_binary(self, name: str, runtime) -> str:
        """A runtime's binary; for (binary, arguments…) a script running it with them (the
        CRI's runc options take no arguments)."""
        if isinstance(runtime, str):
            return runtime
        script = self.directory / f"runtime-{name}"
        script.write_text("#!/bin/sh\nexec " + shlex.join(runtime) + ' "$@"\n')
        script.chmod(0o755)
        return str(script)

    def start(self) -> "Containerd":
        require(CONTAINERD, CTR, CNI_PLUGINS + "/host-device", CNI_PLUGINS + "/static", "/usr/sbin/ip")
        directory = self.directory
        (directory / "cni").mkdir()
        # A pod gets its own network namespace whose eth0 (the CRI plugin wants one with an address)
        # is one end of a veth pair the test made, moved in and back out by the host-device plugin;
        # the other end stays down and without an address: no bridge, no route, no traffic outside
        # the pod. One pod at a time can hold it.
        run(["ip", "link", "add", self.pod_device, "type", "veth", "peer", "name", self.pod_device + "p"])
        self.device_made = True
        (directory / "cni" / "10-pod.conflist").write_text(json.dumps(
            {"cniVersion": "0.4.0", "name": "pod-dummy",
             "plugins": [{"type": "host-device", "device": self.pod_device,
                          "ipam": {"type": "static", "addresses": [{"address": "10.254.254.2/30"}]}}]}))
        handlers = "".join(f"""
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
  BinaryName = "{self.runtime_binary(name, binary)}"
  Root = "{self.runc_root}"
""" for name, binary in self.runtimes.items())
        (directory / "config.toml").write_text(f"""\
version = 2
root = "{directory}/root"
state = "{directory}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{directory}/containerd.ttrpc.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{CRI_IMAGE}"
  # root on this machine lacks CAP_SYS_RESOURCE: do not lower oom_score_adj below the daemon's
  restrict_oom_score_adj = true
  enable_selinux = false
  # net.ipv4.ip_unprivileged_port_start=0 in each pod's network namespace (the sandbox's
  # sysctls): root of a pod in a user namespace of its own has no capability over it
  enable_unprivileged_ports = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{CNI_PLUGINS}"
  conf_dir = "{directory}/cni"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
{handlers}""")
        # hardrun-oci's id leases (its state root) in the temporary directory: the host's is shared
        environment = dict(os.environ, HARDRUN_STATE_DIR=str(self.hardrun_state))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([CONTAINERD, "--config", str(directory / "config.toml")], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env=environment)
        wait_until(lambda: self.ctr("version", check=False).returncode == 0, "containerd",
                   process=self.process, log=self.log)
        return self

    def ctr(self, *args: str, namespace: str = "default", check: bool = True, input=None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return run([CTR, "--address", str(self.socket), "--namespace", namespace, *args], check=check,
                   input=input, timeout=timeout)

    def import_image(self, rootfs: Path, namespace: str) -> None:
        archive = self.directory / "bb.tar"
        archive.write_bytes(image_archive(rootfs, CRI_IMAGE, IMAGE_CMD))
        self.ctr("images", "import", str(archive), namespace=namespace)
        archive.unlink()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=60)
        problems = []
        if not self.device_made:
            pass
        elif run(["ip", "link", "show", self.pod_device], check=False).returncode != 0:
            problems.append(f"the pods' interface {self.pod_device} was not given back to the host")
            # deleting the end left on the host deletes the pair, wherever the other end is
            run(["ip", "link", "del", self.pod_device + "p"], check=False)
        else:
            run(["ip", "link", "del", self.pod_device])
        tear_down(self.directory, problems)


KUBELET_MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"]
KUBELET_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


class CRI:
    """A CRI client over containerd's socket, calling what a kubelet calls (the v1 API)."""

    def __init__(self, containerd: Containerd) -> None:
        import grpc
        from cri_api.v1 import api_pb2, api_pb2_grpc
        self.api = api_pb2
        self.channel = grpc.insecure_channel("unix://" + str(containerd.socket))
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.logs = containerd.directory / "pod-logs"

    def run_pod(self, name: str, handler: str) -> tuple[str, object]:
        """RunPodSandbox with `runtime_handler`, as a kubelet does for a pod of that RuntimeClass."""
        api = self.api
        config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, uid=name + "-uid", namespace="tests"),
            log_directory=str(self.logs / name),
            linux=api.LinuxPodSandboxConfig())
        reply = self.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config, runtime_handler=handler),
                                           timeout=120)
        return reply.pod_sandbox_id, config

    def run_container(self, pod_id: str, pod_config, name: str, command: list[str], binds=()) -> str:
        """CreateContainer then StartContainer in the pod; its output goes to the pod's log directory.
        `binds`: (host path, container path) pairs, read-write."""
        api = self.api
        mounts = [api.Mount(host_path=host, container_path=inside) for host, inside in binds]
        # a kubelet passes the kernel paths to mask and make read-only (procMount: Default)
        security = api.LinuxContainerSecurityContext(masked_paths=KUBELET_MASKED_PATHS,
                                                     readonly_paths=KUBELET_READONLY_PATHS)
        config = api.ContainerConfig(metadata=api.ContainerMetadata(name=name),
                                     image=api.ImageSpec(image=CRI_IMAGE), command=command,
                                     log_path=name + ".log", mounts=mounts,
                                     linux=api.LinuxContainerConfig(security_context=security))
        container_id = self.runtime.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config), timeout=120).container_id
        self.runtime.StartContainer(api.StartContainerRequest(container_id=container_id), timeout=120)
        return container_id

    def wait_exit(self, container_id: str) -> int:
        state = self.api.ContainerState.Value("CONTAINER_EXITED")
        status = {}

        def exited() -> bool:
            status["reply"] = self.runtime.ContainerStatus(
                self.api.ContainerStatusRequest(container_id=container_id), timeout=30).status
            return status["reply"].state == state
        wait_until(exited, f"CRI container {container_id}")
        return status["reply"].exit_code

    def log(self, pod_name: str, container_name: str) -> str:
        """The container's stdout as the CRI log file holds it (`time stream tag message` lines)."""
        lines = (self.logs / pod_name / (container_name + ".log")).read_text().splitlines()
        return "".join(line.split(" ", 3)[3] + ("\n" if line.split(" ", 3)[2] == "F" else "")
                       for line in lines if line.count(" ") >= 3)

    def sandbox_pid(self, pod_id: str) -> int:
        reply = self.runtime.PodSandboxStatus(self.api.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True),
                                              timeout=30)
        return json.loads(reply.info["info"])["pid"]

    def remove_pod(self, pod_id: str) -> None:
        self.runtime.StopPodSandbox(self.api.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        self.runtime.RemovePodSandbox(self.api.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)

    def close(self) -> None:
        self.channel.close()
