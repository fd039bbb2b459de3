"""Value syntaxes shared by the run front ends (compose, docker run, Kubernetes, OCI).

Each function takes the text a user wrote and returns plain values, raising
ValueError with a short reason when the text is not in the syntax; the caller turns
that into a ParseError with the line.
"""
from __future__ import annotations

import re

from ..spec.run import Mount

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([bkmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)\s*$")
_QUANTITY_UNITS = {
    None: 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40,
    "Pi": 2 ** 50, "Ei": 2 ** 60,
}
_HOST_PATH = re.compile(r"^(?:[/.~$\\]|[A-Za-z]:[\\/])")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
# Mode words of the `-v`/compose short volume syntax that are not mount options.
_VOLUME_MODES = {"ro", "rw", "readonly"}


def normalize_cap(name: str) -> str:
    """`cap_sys_admin`, `CAP_SYS_ADMIN`, ` sys_admin ` -> `SYS_ADMIN`; `all` -> `ALL`."""
    name = str(name).strip().upper()
    return name[4:] if name.startswith("CAP_") else name


def parse_size(text) -> int:
    """Docker's memory sizes: `512m`, `1g`, `1.5G`, `1024kb`, plain bytes -> bytes."""
    if isinstance(text, bool):
        raise ValueError("expected a size like 512m or 1g")
    if isinstance(text, int):
        return text
    if isinstance(text, float):
        return int(text)
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"expected a size like 512m or 1g, got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_quantity(text) -> float:
    """A Kubernetes quantity: `128Mi`, `1G`, `500m`, `1e3`, `2` -> a number."""
    if isinstance(text, bool):
        raise ValueError("expected a quantity like 128Mi or 500m")
    if isinstance(text, (int, float)):
        return float(text)
    match = _QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"expected a quantity like 128Mi or 500m, got {text!r}")
    number = float(match.group(1))
    if match.group(2):
        return number * 10 ** int(match.group(2)[1:])
    return number * _QUANTITY_UNITS[match.group(3)]


def parse_cpus(text) -> float:
    """Compose/docker `cpus`: `0.5`, `2`."""
    if isinstance(text, bool):
        raise ValueError("expected a number of CPUs like 0.5")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of CPUs like 0.5, got {text!r}") from None


def parse_port(text) -> tuple[str | None, str | None, str, str]:
    """`[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` -> (host_ip, host_port, container, proto).

    Handles ranges (`8000-8010:80-90`), an empty host port (`127.0.0.1::80`) and IPv6
    host addresses with or without brackets (`[::1]:80:80`, `::1:80:80`).
    """
    spec = str(text).strip()
    if not spec:
        raise ValueError("empty port")
    protocol = "tcp"
    if "/" in spec:
        spec, protocol = spec.rsplit("/", 1)
        protocol = protocol.lower() or "tcp"
    host_ip = None
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            raise ValueError(f"unclosed [ in port {text!r}")
        host_ip = spec[1:end]
        rest = spec[end + 1:]
        if not rest.startswith(":"):
            raise ValueError(f"expected [IP]:HOST:CONTAINER, got {text!r}")
        parts = rest[1:].split(":")
        if len(parts) == 1:
            parts = ["", parts[0]]
        if len(parts) != 2:
            raise ValueError(f"expected [IP]:HOST:CONTAINER, got {text!r}")
        host_port, container = parts
    else:
        parts = spec.split(":")
        if len(parts) == 1:
            host_port, container = None, parts[0]
        elif len(parts) == 2:
            host_port, container = parts
        else:
            # IPv6 without brackets: everything before the last two fields is the address.
            host_ip = ":".join(parts[:-2])
            host_port, container = parts[-2:]
    if not _is_port_or_range(container):
        raise ValueError(f"expected a container port or range, got {text!r}")
    if host_port and not _is_port_or_range(host_port):
        raise ValueError(f"expected a host port or range, got {text!r}")
    return (host_ip or None, host_port or None, container, protocol)


def _is_port_or_range(text: str) -> bool:
    first, _, last = text.partition("-")
    return first.isdigit() and (not last or last.isdigit())


def is_host_path(source: str) -> bool:
    """True when a volume source is a host path rather than a named volume."""
    return bool(_HOST_PATH.match(source)) or "/" in source


def parse_volume(text, line: int | None = None) -> Mount:
    """The short volume syntax `[SRC:]DST[:MODE[,MODE…]]` (docker `-v`, compose)."""
    spec = str(text).strip()
    if not spec:
        raise ValueError("empty volume")
    drive = ""
    if _WINDOWS_DRIVE.match(spec):   # `C:\data:/data`: the first colon belongs to the path
        drive, spec = spec[:2], spec[2:]
    parts = spec.split(":")
    parts[0] = drive + parts[0]
    if len(parts) == 1:
        return Mount("volume", parts[0], None, False, (), line)   # anonymous volume
    if len(parts) > 3:
        raise ValueError(f"expected SOURCE:TARGET[:MODE], got {text!r}")
    source, target = parts[0], parts[1]
    if not target:
        raise ValueError(f"volume {text!r} has no target")
    modes = [word for word in (parts[2].split(",") if len(parts) == 3 else []) if word]
    read_only = any(word in ("ro", "readonly") for word in modes)
    options = tuple(word for word in modes if word not in _VOLUME_MODES)
    kind = "bind" if is_host_path(source) else "volume"
    return Mount(kind, target, source or None, read_only, options, line)


SELINUX_OPTION_KEYS = ("user", "role", "type", "level")


def parse_security_opt(text) -> tuple[str, str | bool] | None:
    """One `security_opt`/`--security-opt` item -> (RunSpec field, value), or None if
    it says nothing rules judge. `no-new-privileges` alone means true."""
    spec = str(text).strip()
    name, sep, value = _split_opt(spec)
    name = name.lower()
    if name == "no-new-privileges":
        if not sep:
            return ("no_new_privileges", True)
        return ("no_new_privileges", value.strip().lower() in ("true", "1", "yes", "on"))
    if name == "seccomp" and sep:
        return ("seccomp", "unconfined" if value.lower() == "unconfined" else value)
    if name == "apparmor" and sep:
        return ("apparmor", "unconfined" if value.lower() == "unconfined" else value)
    if name == "label" and sep and value.lower() == "disable":
        return ("selinux_disabled", True)
    if name == "label" and sep:
        key, colon, setting = value.partition(":")
        if colon and key.lower() in SELINUX_OPTION_KEYS:
            return ("selinux_options", {key.lower(): setting})
    if name == "systempaths" and sep and value.lower() == "unconfined":
        return ("masked_paths", ())
    return None


def _split_opt(spec: str) -> tuple[str, str, str]:
    """Split `name=value` or the older `name:value` at the first separator."""
    equal, colon = spec.find("="), spec.find(":")
    cuts = [i for i in (equal, colon) if i >= 0]
    if not cuts:
        return spec, "", ""
    cut = min(cuts)
    return spec[:cut], spec[cut], spec[cut + 1:]
