"""Every entry of every security table, through the whole engine.

A table entry no test tries can be dropped without anything failing. The expected
entries are written here from independent sources (capabilities(7) and Docker's
"Runtime privilege and Linux capabilities", moby daemon/pkg/oci/caps/defaults.go, the
services' IANA ports), never imported from the code under test; each table has
controls that must not fire.
"""
import json

import pytest

from hardrun.audit.engine import AuditOptions, audit_text
from tests.helpers import run_hardrun

IMAGE = "alpine:3.20"

# Capabilities that break isolation (severity), and the ones confined to the
# container's own namespaces under the default seccomp profile (a warning).
DANGEROUS_CAPABILITIES = {
    "ALL": "error", "SYS_ADMIN": "error", "SYS_MODULE": "error", "SYS_RAWIO": "error",
    "DAC_READ_SEARCH": "error", "SYS_TIME": "error", "BPF": "error", "MAC_ADMIN": "error",
    "MAC_OVERRIDE": "error", "NET_ADMIN": "warning", "SYS_PTRACE": "warning", "SYS_BOOT": "warning",
    "LINUX_IMMUTABLE": "warning",
}
# Docker's default set (moby daemon/pkg/oci/caps/defaults.go) plus other unremarkable ones.
ORDINARY_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                         "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                         "AUDIT_WRITE", "IPC_LOCK", "SYS_NICE", "WAKE_ALARM")
SENSITIVE_HOST_PATHS = ("/", "/etc", "/proc", "/sys", "/var/run", "/run", "/root", "/boot", "/dev",
                        "/var/lib/docker", "/var/lib/kubelet", "/var/lib/etcd")
ORDINARY_HOST_PATHS = ("/srv/data", "/etcetera", "/home/app/conf", "/opt/run", "/var/lib/app")
RUNTIME_SOCKETS = ("/var/run/docker.sock", "/run/containerd/containerd.sock", "/var/run/crio/crio.sock",
                   "/run/podman/podman.sock")
# Remote administration: SSH, Telnet, the Docker API (2375 without TLS: an error), RDP, VNC, WinRM
SENSITIVE_PORTS = {22: "warning", 23: "warning", 2375: "error", 2376: "warning", 3389: "warning",
                   5900: "warning", 5901: "warning", 5985: "warning", 5986: "warning"}
# How the findings name each service: (a published port, a Dockerfile's EXPOSE), the
# wording each rule has always had.
SENSITIVE_PORT_NAMES = {22: ("SSH", "SSH"), 23: ("Telnet", "Telnet"),
                        2375: ("the unencrypted Docker API", "Docker API without TLS"),
                        2376: ("the Docker API", "Docker API"), 3389: ("RDP", "RDP"),
                        5900: ("VNC", "VNC"), 5901: ("VNC", "VNC"), 5985: ("WinRM", "WinRM"),
                        5986: ("WinRM", "WinRM over TLS")}
ORDINARY_PORTS = (80, 443, 8080, 21, 2377, 5432)
SECRET = "hunter2-Xk9qLm"
# Names that hold a secret: whole words, endings glued to a word, `<qualifier>_KEY`.
SECRET_NAMES = (
    ["APP_" + word for word in ("PASSWORD", "PASSWORDS", "PASSWD", "PWD", "PASS", "PASSPHRASE", "SECRET",
                                "SECRETS", "TOKEN", "TOKENS", "CREDENTIAL", "CREDENTIALS", "CREDS",
                                "APIKEY", "PRIVATEKEY", "ACCESSKEY", "SECRETKEY", "AUTHTOKEN", "AUTHKEY",
                                "HTPASSWD")]
    + ["GITHUB_PAT"]
    + ["MY" + ending for ending in ("PASSWORD", "PASSWD", "TOKEN", "SECRET", "APIKEY", "PRIVATEKEY")]
    + [qualifier + "_KEY" for qualifier in ("API", "PRIVATE", "ACCESS", "SECRET", "ENCRYPTION", "ENCRYPT",
                                            "CRYPT", "SIGNING", "SIGN", "MASTER", "SESSION", "AUTH", "APP",
                                            "LICENSE", "LICENCE", "CLIENT", "SHARED", "HMAC", "JWT",
                                            "FERNET", "CONSUMER", "WEBHOOK")]
)
NOT_SECRET_NAMES = ("KEY", "GPG_KEY", "PUBLIC_KEY", "SSH_PUB_KEY", "PWD", "OLDPWD", "APP_PASSWORD_FILE",
                    "TOKEN_URL", "SECRET_PATH", "PASSWORD_LENGTH", "APP_NAME")
# Docker's masked and read-only kernel paths (moby daemon/pkg/oci/defaults.go)
DOCKER_MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                       "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                       "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"]
DOCKER_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def found(text, practice, kind="docker-run", path="run.sh"):
    return [f for f in audit_text(text, kind, path, AuditOptions()) if f.practice == practice]


@pytest.mark.parametrize("capability", DANGEROUS_CAPABILITIES)
def test_every_dangerous_capability(capability):
    for spelling in (capability, "CAP_" + capability, capability.lower()):
        if spelling == "CAP_ALL":
            continue
        (finding,) = found(f"docker run --cap-drop ALL --cap-add {spelling} {IMAGE}\n", "cap-add-dangerous")
        assert finding.severity == DANGEROUS_CAPABILITIES[capability], (spelling, finding.severity)


@pytest.mark.parametrize("capability", ORDINARY_CAPABILITIES)
def test_ordinary_capabilities_are_not_dangerous(capability):
    assert not found(f"docker run --cap-drop ALL --cap-add {capability} {IMAGE}\n", "cap-add-dangerous")


@pytest.mark.parametrize("path", SENSITIVE_HOST_PATHS)
def test_every_sensitive_host_path(path):
    """The path and (but for `/`) anything below it; /run and /var/run themselves hold the
    runtime sockets and are reported as socket mounts instead."""
    practice = "socket-mount" if path in ("/run", "/var/run") else "sensitive-host-mount"
    assert found(f"docker run -v {path}:/mnt/x:ro {IMAGE}\n", practice)
    if path != "/":
        assert found(f"docker run -v {path}/sub/dir:/mnt/x:ro {IMAGE}\n", "sensitive-host-mount")


@pytest.mark.parametrize("path", ORDINARY_HOST_PATHS)
def test_ordinary_host_paths_are_not_sensitive(path):
    assert not found(f"docker run -v {path}:/mnt/x:ro {IMAGE}\n", "sensitive-host-mount")


@pytest.mark.parametrize("socket", RUNTIME_SOCKETS)
def test_every_runtime_socket(socket):
    assert found(f"docker run -v {socket}:/sock {IMAGE}\n", "socket-mount")
    assert not found(f"docker run -v /srv/app/{socket.rsplit('/', 1)[1]}.bak:/sock {IMAGE}\n", "socket-mount")


@pytest.mark.parametrize("port", SENSITIVE_PORTS)
def test_every_sensitive_port_published_and_exposed(port):
    (published,) = found(f"docker run -p 127.0.0.1:10000:{port} {IMAGE}\n", "expose-sensitive")
    assert published.severity == SENSITIVE_PORTS[port]
    dockerfile = f"FROM {IMAGE}\nEXPOSE {port}\n"
    (exposed,) = found(dockerfile, "expose-sensitive", kind="dockerfile", path="Dockerfile")
    run_name, expose_name = SENSITIVE_PORT_NAMES[port]
    assert published.message.endswith(f"port {port} ({run_name}) published")
    assert f"opens port {port} ({expose_name}):" in exposed.message


@pytest.mark.parametrize("port", ORDINARY_PORTS)
def test_ordinary_ports_are_not_sensitive(port):
    assert not found(f"docker run -p 127.0.0.1:{port}:{port} {IMAGE}\n", "expose-sensitive")
    assert not found(f"FROM {IMAGE}\nEXPOSE {port}\n", "expose-sensitive", kind="dockerfile", path="Dockerfile")


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_every_secret_name(name):
    assert found(f"docker run -e {name}={SECRET} {IMAGE}\n", "secret"), name
    assert found(f"FROM {IMAGE}\nENV {name}={SECRET}\n", "secret", kind="dockerfile", path="Dockerfile"), name


@pytest.mark.parametrize("name", NOT_SECRET_NAMES)
def test_names_that_are_not_secrets(name):
    assert not found(f"docker run -e {name}={SECRET} {IMAGE}\n", "secret"), name


def test_every_masked_and_read_only_kernel_path_is_in_the_run_plan():
    """The plan `hardrun run` executes (--dry-run) holds Docker's lists, entry by entry,
    including paths this kernel lacks; systempaths=unconfined empties both (the control)."""
    plan = run_hardrun("run", "--dry-run", "--", "true")
    assert plan.returncode == 0, plan.stderr
    linux = json.loads(plan.stdout)["linux"]
    assert set(DOCKER_MASKED_PATHS) <= set(linux["maskedPaths"])
    assert sorted(set(linux["maskedPaths"]) - set(DOCKER_MASKED_PATHS)) == sorted(
        p for p in linux["maskedPaths"] if p.endswith("/thermal_throttle"))
    assert linux["readonlyPaths"] == DOCKER_READONLY_PATHS
    control = json.loads(run_hardrun("run", "--dry-run", "--security-opt", "systempaths=unconfined",
                                     "--", "true").stdout)["linux"]
    assert control["maskedPaths"] == [] and control["readonlyPaths"] == []
