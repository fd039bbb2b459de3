"""Value syntaxes of the run front ends, one parser per syntax: `docker run`/`hardrun run`
flags (through frontends/docker_runspec.py), compose, Kubernetes and OCI all call these.

Each function takes the text a user wrote and returns plain values or models, raising
ValueError with a short reason when the text is not in the syntax; the caller turns
that into a ParseError or UsageError with the line. The semantics are Docker's (compose
hands these strings to the same daemon code); what `hardrun run` refuses on top is
checked in frontends/docker_runspec.py.

This module is on `hardrun run`'s start-up path: standard library only, and `re` only
inside the functions that need it.
"""
from __future__ import annotations

from ..spec.capabilities import normalize_capability  # noqa: F401  (re-exported)
from ..spec.run import Mount, Port

# --------------------------------------------------------------------------- scalars

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool, as Docker reads booleans; None for anything else."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def is_unresolved(text: str | None) -> bool:
    """A value holding a shell expansion the auditor does not resolve (`$MEM`, `$(id -u)`)."""
    return text is not None and "$" in text


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text) -> int:
    """Docker's RAMInBytes: `512m`, `1g`, `1.5GB`, `100k`, `1024` -> bytes (binary
    multiples). A YAML number is already bytes."""
    if isinstance(text, bool):
        raise ValueError("expected a size like 512m or 1g")
    if isinstance(text, int):
        return text
    if isinstance(text, float):
        return int(text)
    parts = _split_size(str(text).strip())
    if parts is None:
        raise ValueError(f"expected a size like 512m or 1g, got {text!r}")
    number, unit = parts
    return int(float(number) * _SIZE_UNITS[unit])


def _split_size(text: str) -> tuple[str, str] | None:
    """`DIGITS[.DIGITS][ ][K|M|G|T|P][i][B]` (letters in either case) -> (number, unit in
    lower case), else None. Read by hand, from the end (each part is a different
    character): `re` costs milliseconds on `hardrun run`'s start-up (`-m 512m`)."""
    rest = text
    for suffix in ("b", "i"):
        if rest[-1:].lower() == suffix:
            rest = rest[:-1]
    unit = rest[-1:].lower()
    if unit not in _SIZE_UNITS:
        unit = ""
    rest = rest[:len(rest) - len(unit)]
    if rest[-1:] == " ":
        rest = rest[:-1]
    whole, dot, fraction = rest.partition(".")
    if not whole.isdecimal() or (dot and not fraction.isdecimal()):
        return None
    return rest, unit


_QUANTITY = r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)\s*$"
_QUANTITY_UNITS = {
    None: 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40,
    "Pi": 2 ** 50, "Ei": 2 ** 60,
}


def parse_quantity(text) -> float:
    """A Kubernetes quantity: `128Mi`, `1G`, `500m`, `1e3`, `2` -> a number."""
    if isinstance(text, bool):
        raise ValueError("expected a quantity like 128Mi or 500m")
    if isinstance(text, (int, float)):
        return float(text)
    import re
    match = re.match(_QUANTITY, str(text))
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


# --------------------------------------------------------------------------- ports

PROTOCOLS = ("tcp", "udp", "sctp")


def host_port_or_range(text: str) -> str | None:
    """A host port or range `8000-8010`, validated; None when empty (0 too: a host port
    of 0 asks for any free port)."""
    return port_range(text, allow_zero=True) if text else None


def port_range(text: str, *, allow_zero: bool = False) -> str:
    """A port or range `8000-8010`, validated (`allow_zero`: a host port, where 0 asks for
    any free port)."""
    if not text:
        raise ValueError("missing port")
    low, dash, high = text.partition("-")
    for part in (low, high) if dash else (low,):
        if not part.isdigit() or not 0 < int(part) <= 65535:
            if not (allow_zero and part == "0"):
                raise ValueError(f"invalid port {text!r}")
    if dash and int(low) > int(high):
        raise ValueError(f"invalid port range {text!r}")
    return text


def parse_publish(text: str, line: int | None = None, *, lenient: bool = False) -> list[Port]:
    """`[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` (`-p`, compose `ports:`), split as Docker's
    nat.ParsePortSpec does: the last two `:` fields are the ports, anything before is the
    address (IPv6 as `[::1]:80:80` or `::1:80:80`). lenient keeps an unresolved `$VAR`
    port as written instead of rejecting it."""
    spec, slash, proto = text.rpartition("/") if "/" in text else (text, "", "tcp")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise ValueError(f"invalid protocol {proto!r}")
    parts = spec.split(":")
    container = parts[-1]
    host_port = host_ip = None
    if len(parts) == 2:
        host_port = parts[0]
    elif len(parts) >= 3:
        host_ip, host_port = ":".join(parts[:-2]), parts[-2]
    if host_ip is not None:
        if host_ip.startswith("[") and host_ip.endswith("]"):
            host_ip = host_ip[1:-1]
        host_ip = host_ip or None
    if lenient and (is_unresolved(container) or is_unresolved(host_port)):
        return [Port(container, host_port or None, host_ip, proto, line)]
    container = port_range(container)
    host_port = host_port_or_range(host_port or "")
    return [Port(container, host_port, host_ip, proto, line)]


# --------------------------------------------------------------------------- mounts

# Mode words Docker's Linux `-v` parser accepts.
VOLUME_MODES = frozenset({"ro", "rw", "z", "Z", "nocopy", "copy", "shared", "rshared", "slave",
                          "rslave", "private", "rprivate", "delegated", "cached", "consistent",
                          "U", "O", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "idmap",
                          "bind", "rbind", "nonrecursive"})


def _valid_modes(text: str) -> bool:
    return all(part in VOLUME_MODES or part.startswith("idmap=") for part in text.split(","))


def is_host_path(source: str) -> bool:
    """A volume source that names a host path (not a named volume).

    Docker takes absolute paths, and its CLI and compose make `./x`, `../x`, `~/x`
    absolute; `$VAR` sources are host paths the shell expands (`$PWD/data`, `$(pwd)`);
    `C:\\x` and `\\\\pipe` are Windows paths. Anything else is a volume name.
    """
    return source.startswith(("/", ".", "~", "$", "\\")) or (len(source) > 1 and source[1] == ":")


def _split_drive(spec: str) -> tuple[str, str]:
    """`C:\\data:/data` -> (`C:`, `\\data:/data`): a drive's colon is no separator."""
    if len(spec) > 2 and spec[0].isalpha() and spec[1] == ":" and spec[2] in "\\/":
        return spec[:2], spec[2:]
    return "", spec


def parse_volume(text: str, line: int | None = None, *, check_modes: bool = True) -> Mount:
    """The short volume syntax `[SRC:]DST[:MODES]` of `docker run -v` and compose.

    Split as Docker's Linux parser does; `DST:MODES` (only mode words after the colon)
    is an anonymous volume. check_modes=False keeps unknown mode words as options
    instead of rejecting them (compose ignores them).
    """
    drive, spec = _split_drive(str(text))
    parts = spec.split(":")
    parts[0] = drive + parts[0]
    if len(parts) == 1:
        source, target, modes = None, parts[0], ""
    elif len(parts) == 2:
        if parts[1] and _valid_modes(parts[1]):
            source, target, modes = None, parts[0], parts[1]
        else:
            source, target, modes = parts[0], parts[1], ""
    elif len(parts) == 3:
        source, target, modes = parts
    else:
        raise ValueError("expected [SRC:]DST[:MODES]")
    if not target:
        raise ValueError("the destination must be an absolute path")
    if modes and check_modes and not _valid_modes(modes):
        raise ValueError(f"invalid mode {modes!r}")
    options = tuple(m for m in modes.split(",") if m) if modes else ()
    read_only = "ro" in options
    if source is None:
        return Mount("volume", target, None, read_only, options, line)
    if not source:
        raise ValueError("empty source")
    kind = "bind" if is_host_path(source) else "volume"
    return Mount(kind, target, source, read_only, options, line)


def parse_tmpfs(text: str, line: int | None = None) -> Mount:
    """`DST[:OPTS]` of `--tmpfs` and compose `tmpfs:` (OPTS: size=…, mode=…, ro, noexec…)."""
    target, _, opts = str(text).partition(":")
    if not target:
        raise ValueError("expected DST[:OPTIONS] with an absolute DST")
    options = tuple(o for o in opts.split(",") if o)
    return Mount("tmpfs", target, None, "ro" in options, options, line)


# --------------------------------------------------------------------------- security options

SELINUX_OPTION_KEYS = ("user", "role", "type", "level")
_UNCONFINED_SELINUX_TYPES = ("type:spc_t", "type:unconfined_t")


def security_opt_settings(text: str) -> list[tuple[str, object]]:
    """One `--security-opt`/compose `security_opt` item -> the RunSpec settings it makes,
    as (field, value) pairs; [] for an option no rule judges.

    Docker splits at the first `=`, else at the first `:` (the legacy spelling); names
    and values are case-sensitive. `no-new-privileges` alone means true; with a value
    that is no Go boolean it gives ("no_new_privileges", None): set, to nothing known.
    """
    text = str(text)
    key, sep, arg = text.partition("=")
    if not sep:
        key, sep, arg = text.partition(":")
    key = key.strip()
    if key == "no-new-privileges":
        return [("no_new_privileges", parse_go_bool(arg) if sep else True)]
    if key == "seccomp" and arg:
        return [("seccomp", arg)]
    if key == "apparmor" and arg:
        return [("apparmor", arg)]
    if key == "systempaths" and arg == "unconfined":
        return [("system_paths_unconfined", True)]
    if key == "label":
        return _label_settings(arg)
    return []


def _label_settings(arg: str) -> list[tuple[str, object]]:
    settings: list[tuple[str, object]] = []
    if arg == "disable" or arg in _UNCONFINED_SELINUX_TYPES:
        settings.append(("selinux_disabled", True))
    option, colon, setting = arg.partition(":")
    if colon and option in SELINUX_OPTION_KEYS:
        settings.append(("selinux_options", {option: setting}))
    return settings
