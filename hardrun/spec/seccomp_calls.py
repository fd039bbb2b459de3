"""Why a system call is dangerous in a container: one table for the built-in profile's
refusals (`hardrun run --explain`, `hardrun seccomp show`, `--seccomp-learn`) and for the
calls HR2030 reports a profile file for allowing."""
from __future__ import annotations

# name -> what it gives an attacker, or why the built-in profile refuses it
WHY = {
    "keyctl": "the kernel keyring is not namespaced", "add_key": "the kernel keyring is not namespaced",
    "request_key": "the kernel keyring is not namespaced",
    "bpf": "eBPF reaches kernel internals shared by every container",
    "perf_event_open": "performance counters can observe the host and other containers",
    "userfaultfd": "a classic aid to exploiting kernel races",
    "io_uring_setup": "io_uring has been a steady source of kernel exploits and bypasses seccomp",
    "io_uring_enter": "io_uring has been a steady source of kernel exploits and bypasses seccomp",
    "io_uring_register": "io_uring has been a steady source of kernel exploits and bypasses seccomp",
    "kexec_load": "loads a new kernel", "kexec_file_load": "loads a new kernel",
    "init_module": "loads code into the host's kernel", "finit_module": "loads code into the host's kernel",
    "delete_module": "unloads the host's kernel modules",
    "swapon": "host-wide swap", "swapoff": "host-wide swap",
    "open_by_handle_at": "opens files by handle, outside the container's mounts (the shocker escape)",
    "quotactl": "host-wide disk quotas", "quotactl_fd": "host-wide disk quotas",
    "pivot_root": "changes the container's root", "chroot": "changes the container's root",
    "ptrace": "reads and changes other processes", "process_vm_readv": "reads other processes' memory",
    "process_vm_writev": "writes other processes' memory", "kcmp": "compares other processes' kernel state",
    "pidfd_getfd": "takes file descriptors from other processes",
    "mount": "mounts change the container's view of files", "umount2": "mounts change the container's view of files",
    "unshare": "new namespaces expose kernel surface meant for root",
    "setns": "joins other namespaces",
    "clone": "without a filter on its flags it creates new namespaces, which expose kernel surface meant for root",
    "clone3": "its flags are in memory a filter cannot read: ENOSYS makes libc fall back to clone",
    "reboot": "reboots the host", "settimeofday": "the clock is the host's",
    "clock_settime": "the clock is the host's", "syslog": "the kernel log is the host's",
    "acct": "process accounting is host-wide",
    "personality": "some personalities disable ASLR (allow it only with an argument filter)",
    "socket": "this address family reaches risky kernel code (AF_ALG, AF_VSOCK)",
    "ioctl": "TIOCSTI/TIOCLINUX inject input into a terminal",
    "iopl": "raw I/O ports", "ioperm": "raw I/O ports", "vhangup": "hangs up the terminal",
    "lookup_dcookie": "a removed profiling interface", "uselib": "an obsolete loader call",
    "vm86": "old i386 mode", "vm86old": "old i386 mode", "_sysctl": "a removed interface",
    "nfsservctl": "a removed interface",
}

# The calls HR2030 reports a profile for allowing without a capability or an argument filter
# (the others above are refused for being host-wide, obsolete or needed only with arguments).
DANGEROUS_CALLS = (
    "bpf", "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev",
    "unshare", "setns", "clone", "clone3", "mount", "pivot_root", "userfaultfd", "perf_event_open",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "open_by_handle_at",
    "io_uring_setup", "personality", "iopl", "ioperm", "reboot", "swapon",
)
