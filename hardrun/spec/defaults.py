"""hardrun's hardened defaults and Docker's reference lists, written down once.

Every part that needs one of these facts reads it from here: the runtime's plan
(runtime/config.py, runtime/userns.py), the OCI writer (spec/oci.py), the exporter
(policy/export.py) and the audit checks (audit/checks/). Constants only, standard
library only: the auditor and the exporter import this module without importing the
runtime or its C module, and `hardrun run` reads it on its start-up path.
"""
from __future__ import annotations

# The environment's PATH when the command does not set one (Docker's and runc's).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's masked kernel paths (moby's daemon/pkg/oci/defaults.go): bind-mounted over
# with an empty, read-only file or directory. The runtime adds each CPU's thermal_throttle.
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
)
# Docker's read-only kernel paths: remounted read-only inside the container.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# The namespaces a container gets its own of, unless it shares one with the host
# (hardrun's names are OCI's namespace types; in the order OCI configs list them).
NAMESPACES = ("mount", "pid", "ipc", "uts", "network", "cgroup", "user")

# The fixed user-namespace range: real root's container when no range of its own is leased
# for it (runtime.resolve without an id_lease) and in exported configs; container ids
# 0..65535 are host ids 100000..165535 (START, COUNT).
DEFAULT_REMAP = (100000, 65536)
# Each container of real root gets a range of its own (hardrun.runtime.userns.lease_id_range):
# DEFAULT_RANGE_SIZE ids, the lowest free ones of root's /etc/subuid and /etc/subgid
# entries, else of this pool (host ids 100000..100000+65536*4096-1, START, COUNT).
DEFAULT_RANGE_SIZE = 65536
DEFAULT_ID_POOL = (100000, 65536 * 4096)

# Every container's pids limit unless the user asks otherwise (`--pids-limit -1`): a fork
# bomb stays inside its box.
DEFAULT_PIDS_LIMIT = 1024

# Docker's default capability set (moby's daemon/pkg/oci/caps/defaults.go): what a
# Docker container keeps unless it drops them (hardrun's own default is none).
DOCKER_DEFAULT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW",
                               "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE",
                               "SYS_CHROOT", "KILL", "AUDIT_WRITE")

# Capabilities whose grant the audit reports (`ALL` included): each reaches past the
# container's own namespaces or defeats a protection hardrun relies on.
DANGEROUS_CAPABILITIES = ("ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "SYS_RAWIO",
                          "DAC_READ_SEARCH", "SYS_BOOT", "SYS_TIME", "BPF", "MAC_ADMIN",
                          "MAC_OVERRIDE", "LINUX_IMMUTABLE")

# Remote-administration ports (IANA's assignments) the audit reports when exposed or
# published: port -> (the service as a Dockerfile's EXPOSE finding names it, as a run
# config's published-port finding names it; each rule's wording as users know it).
SENSITIVE_PORTS = {22: ("SSH", "SSH"), 23: ("Telnet", "Telnet"),
                   2375: ("Docker API without TLS", "the unencrypted Docker API"),
                   2376: ("Docker API", "the Docker API"), 3389: ("RDP", "RDP"),
                   5900: ("VNC", "VNC"), 5901: ("VNC", "VNC"),
                   5985: ("WinRM", "WinRM"), 5986: ("WinRM over TLS", "WinRM")}

# The tmpfs every container gets on /tmp and /run (target, mode), unless it mounts
# something there, and the size of a tmpfs that does not give one (the kernel's default
# is half of RAM, each; size=0 asks for the kernel's unlimited tmpfs).
DEFAULT_TMPFS = (("/tmp", "1777"), ("/run", "755"))
DEFAULT_TMPFS_SIZE = "64m"

# The container's own /dev (a small tmpfs), its devpts and /dev/shm: mount data.
DEV_TMPFS_DATA = "mode=755,size=64k"
DEVPTS_DATA = "newinstance,ptmxmode=0666,mode=0620"
SHM_TMPFS_DATA = "mode=1777,size=65536k"
