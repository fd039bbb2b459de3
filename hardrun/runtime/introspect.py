"""What confines a running process, read from /proc (for `hardrun inspect` and tests).

Works for any process the caller may read, inside or outside a container: the five
capability sets decoded to names, no_new_privs, seccomp mode, each namespace compared
with PID 1's and the caller's, and the user namespace's id maps.
"""
from __future__ import annotations

import os

from ..display import printable
from ..errors import HardrunError
from .caps import names_of

CAP_SETS = (("CapInh", "inheritable"), ("CapPrm", "permitted"), ("CapEff", "effective"),
            ("CapBnd", "bounding"), ("CapAmb", "ambient"))
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time")
SECCOMP_MODES = {"0": "disabled", "1": "strict", "2": "filter"}


def inspect_process(pid: str | int = "self") -> dict:
    base = f"/proc/{pid}"
    status = read_status(pid)
    report = {
        "pid": int(status.get("Pid", "0") or 0),
        "command": _cmdline(base),
        "uid": [int(value) for value in status.get("Uid", "").split()],
        "gid": [int(value) for value in status.get("Gid", "").split()],
        "groups": [int(value) for value in status.get("Groups", "").split()],
        "capabilities": {name: names_of(int(status.get(key, "0"), 16)) for key, name in CAP_SETS},
        "no_new_privs": status.get("NoNewPrivs", "0").strip() == "1",
        "seccomp": SECCOMP_MODES.get(status.get("Seccomp", "").strip(), "unknown"),
        "seccomp_filters": int(status["Seccomp_filters"]) if status.get("Seccomp_filters", "").isdigit() else None,
        "namespaces": _namespaces(base),
        "uid_map": _id_map(f"{base}/uid_map"),
        "gid_map": _id_map(f"{base}/gid_map"),
        "root": _root(base),
    }
    return report


def _root(base: str) -> dict | None:
    """The file system at the process's root: for a hardrun image container an overlay of
    its layers, idmapped (hardrun/runtime/image_root.py names those mounts idmapped-N)."""
    try:
        with open(f"{base}/mountinfo", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/" and " - " in line:
            fstype, _, options = line.split(" - ", 1)[1].split(" ", 2)
            report = {"fstype": fstype, "read_only": "ro" in fields[5].split(",")}
            if fstype == "overlay":
                lowers = next((o[len("lowerdir="):] for o in options.split(",") if o.startswith("lowerdir=")), "")
                layers = [layer for layer in lowers.split(":") if layer]
                report["image_layers"] = len([layer for layer in layers if not layer.endswith(("/scaffold", "/empty"))])
                report["layer_ownership"] = ("idmapped" if any("/idmapped-" in layer for layer in layers)
                                             else "a chown'ed copy" if any("/shifted-" in layer for layer in layers)
                                             else "as stored (no user namespace)")
            return report
    return None


def read_status(pid: str | int = "self") -> dict:
    """The fields of /proc/PID/status, values stripped; HardrunError when unreadable."""
    path = f"/proc/{pid}/status"
    try:
        # the command name is the process's own choice of bytes, not always UTF-8
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise HardrunError(f"no process {pid}") from None
    except OSError as error:
        raise HardrunError(f"cannot read {path}: {error.strerror}") from None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _cmdline(base: str) -> list[str]:
    try:
        with open(f"{base}/cmdline", "rb") as handle:
            return [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _namespaces(base: str) -> dict:
    result = {}
    for name in NAMESPACES:
        own = _link(f"{base}/ns/{name}")
        if own is None:
            continue
        host = _link(f"/proc/1/ns/{name}")
        caller = _link(f"/proc/self/ns/{name}")
        result[name] = {
            "id": own,
            "shared_with_pid1": None if host is None else own == host,
            "shared_with_caller": None if caller is None else own == caller,
        }
    return result


def _id_map(path: str) -> list[list[int]]:
    try:
        with open(path) as handle:
            return [[int(value) for value in line.split()] for line in handle if line.strip()]
    except OSError:
        return []


def format_text(report: dict) -> str:
    lines = [f"pid {report['pid']}: {' '.join(printable(arg) for arg in report['command'])}",
             f"  uid {report['uid']}  gid {report['gid']}  groups {report['groups']}"]
    for _, name in CAP_SETS:
        caps = report["capabilities"][name]
        lines.append(f"  {name + ':':<13}{', '.join(caps) if caps else '(none)'}")
    lines.append(f"  no_new_privs: {'yes' if report['no_new_privs'] else 'no'}")
    filters = report["seccomp_filters"]
    lines.append(f"  seccomp:      {report['seccomp']}" + (f" ({filters} filter(s))" if filters else ""))
    lines.append("  namespaces:")
    for name, info in report["namespaces"].items():
        if info["shared_with_pid1"]:
            where = "shared with PID 1 (host)"
        elif info["shared_with_caller"]:
            where = "shared with the caller"
        else:
            where = "private"
        lines.append(f"    {name:<7}{info['id']:<24}{where}")
    for key in ("uid_map", "gid_map"):
        ranges = "; ".join(" ".join(str(value) for value in entry) for entry in report[key])
        lines.append(f"  {key}: {ranges or '(none)'}")
    root = report.get("root")
    if root and "image_layers" in root:
        lines.append(f"  root:         an overlay of {root['image_layers']} image layer(s), "
                     f"{'read-only' if root['read_only'] else 'writable'}, layers {root['layer_ownership']}")
    elif root:
        lines.append(f"  root:         {root['fstype']}, {'read-only' if root['read_only'] else 'writable'}")
    run = report.get("container")
    if run:
        image = f", image {printable(run['image'])} ({printable(run['image_digest'])})" if "image" in run else ""
        lines.append(f"  hardrun container {printable(run['id'])}{image}")
    container = report.get("oci_container")
    if container:
        lines.append(f"  hardrun-oci container {printable(container['id'])} ({container['status']})")
        lines.append("  floor raised: " + ("; ".join(printable(item) for item in container["floor"]) or "nothing"))
        if "denials" in container:    # hardrun-oci --explain
            lines.append(f"  seccomp refused: {len(container['denials'])} system call(s)"
                         + (" (the record is incomplete: its holder could not write it; the engine's log says why)"
                            if container.get("denials_incomplete") else ""))
            for denial in container["denials"]:
                who = f"pid {denial.get('pid')} ({printable(str(denial.get('comm')))})"
                lines.append(f"    {printable(str(denial.get('syscall')))}: {denial.get('count')} time(s), first by "
                             f"{who}: {denial.get('errno_name')} from {printable(str(denial.get('rule')))}")
    return "\n".join(lines) + "\n"
