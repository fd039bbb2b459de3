"""OCI runtime `config.json` -> one RunSpec (kind="oci", subject "config.json process").

An OCI config states everything explicitly and a runtime adds nothing, so absence
means absence: no seccomp object is no filter (`seccomp="unconfined"`), a namespace
type missing from `linux.namespaces` is the host's namespace, missing
`maskedPaths` masks nothing. Capabilities are modelled as a reviewer reads them:
the granted set (the union of the five sets) is `cap_add` on top of
`cap_drop=("ALL",)`, since nothing else can be held. Only when `process.capabilities`
is absent altogether is nothing said about capabilities (the runtime decides).

The fields are decoded by the one OCI decoder (spec/oci_config.decode), which hardrun-oci
shares: `hardrun audit` reads the JSON with the YAML loader (JSON is YAML for these files)
so that every value keeps its line, and `spec_of` is also what hardrun-oci's policy gate
calls with the config it decoded for running. Lenient: unknown keys are ignored, a value
of the wrong type is a ParseError at its line. `lines` follows the RunSpec conventions.
"""
from __future__ import annotations

from ..errors import ParseError
from ..spec.capabilities import NUMBERS as CAP_NUMBERS
from ..spec.oci import (CAPABILITY_SETS, NAMESPACE_TYPES, is_bind, is_engine_file, joined_namespace,
                        ulimit_name)
from ..spec.oci_config import OciConfig, OciFieldError, OciFields, decode, json_path
from ..spec.run import EnvVar, Mount, RunSpec, Ulimit
from ..parsing import runvalues as rv
from ..parsing.yamlsafe import MarkedList, MarkedMap, load_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from ..spec.oci_config import OciLinux, OciProcess

# Namespaces a container must not share with the host (user/cgroup are often shared).
HOST_WHEN_ABSENT = ("network", "pid", "ipc", "uts", "mount")
# Every capability up to CAP_AUDIT_READ: what `docker run --privileged` grants on any engine version.
PRIVILEGED_CAPABILITIES = 38
UNCONFINED_SELINUX_TYPES = ("spc_t", "unconfined_t")
# Fields no run rule judges: hardrun-oci's alone (a wrong type there is its error, not the audit's).
NOT_READ = ("ociVersion", "hooks", "annotations", "process.user.umask", "linux.gidMappings", "linux.cgroupsPath",
            "linux.rootfsPropagation", "linux.sysctl", "linux.resources.blockIO")


def parse_oci(text: str, path: str) -> list[RunSpec]:
    """The RunSpec of an OCI runtime config.json."""
    # A raw tab cannot occur inside a JSON string, and YAML rejects tab indentation.
    documents = [d for d in load_all(text.replace("\t", " "), path) if d is not None]
    if not documents:
        raise ParseError("empty config.json: expected an OCI runtime configuration", path=path)
    if len(documents) > 1 or not isinstance(documents[0], MarkedMap):
        raise ParseError("config.json must be one JSON object", path=path,
                         line=getattr(documents[0], "line", 1))
    document = documents[0]
    return [spec_of(decode(document, _MarkedLocator(document), numbers=_as_int), path)]


def spec_of(config: OciConfig, path: str, lines: bool = True) -> RunSpec:
    """The RunSpec of a decoded config.json (`path`: where it is, which the engine-file
    judgement reads); its lines are `config.locate`'s, or none when `lines` is false (the
    policy gate's verdict names no line, and a JSON text's lines cost a scan of it). A value
    of the wrong type in a field the audit reads is a ParseError at its line; one elsewhere
    is left alone."""
    for error in config.problems:
        if not any(error.where == field or error.where.startswith((field + ".", field + "["))
                   for field in NOT_READ):
            raise _parse_error(error, path, config.locate, config.document)
    return _Config(config, path, config.locate if lines else _no_line).spec()


def _no_line(where: str) -> None:
    return None


class _MarkedLocator:
    """`locate` over marked YAML values: the line where the value at a JSON path was
    written (a key's line, or an array item's); the nearest enclosing one's if absent."""

    def __init__(self, document: MarkedMap):
        self.document = document

    def __call__(self, where: str) -> int | None:
        node, line = self.document, self.document.line
        for part in json_path(where, self.document):
            if isinstance(node, MarkedMap):
                line = node.line_of(part, line)
            elif isinstance(node, MarkedList):
                line = node.line_at(part, line)
            node = node[part]
        return line


def _parse_error(error: OciFieldError, path: str, config_locate, document: dict) -> ParseError:
    """The audit's wording of a value of the wrong type (`linux.namespaces[].type` must be a
    string), or of an item of the wrong type in an array (`process.env` items have the wrong
    type, at the item's line)."""
    where, message = error.where, error.message
    if where.endswith("]") and message == "expected an object":
        return ParseError(f"`{_generic(where).removesuffix('[]')}` items have the wrong type", path=path,
                          line=config_locate(where))
    if message.startswith("expected strings") or (where == "process.user.additionalGids" and "integer" in message):
        return ParseError(f"`{_generic(where)}` items have the wrong type", path=path,
                          line=config_locate(_first_bad_item(where, document)))
    text = f"must be {message[len('expected '):]}" if message.startswith("expected ") else message
    return ParseError(f"`{_generic(where)}` {text}", path=path, line=config_locate(where))


def _generic(where: str) -> str:
    """`mounts[2].options` -> `mounts[].options`: the field, not the entry."""
    out, inside = [], False
    for char in where:
        if char == "[":
            inside = True
            out.append("[]")
        elif char == "]":
            inside = False
        elif not inside:
            out.append(char)
    return "".join(out)


def _first_bad_item(where: str, document: dict) -> str:
    """The JSON path of the first item of the array at `where` that is not a string (an
    integer for `additionalGids`)."""
    node: Any = document
    for part in json_path(where, document):
        node = node[part]
    for index, item in enumerate(node if isinstance(node, list) else ()):
        if (isinstance(_as_int(item), int) and not isinstance(item, bool)) if where.endswith("Gids") else \
                (isinstance(item, str) and "\0" not in item):
            continue
        return f"{where}[{index}]"
    return where


class _Config(OciFields):
    """An OciConfig -> RunSpec, with each value's line (`config.locate`). The judgements that
    are the audit's own (`privileged`, the engine's files) read the decoded values, or the
    raw document where a lenient look is what they need."""

    def __init__(self, config: OciConfig, path: str, locate):
        self.config = config
        self.document = config.document
        self.locate = locate
        self.path = path
        self.lines: dict[str, int | None] = {}

    def fail(self, where: str, message: str) -> NoReturn:
        raise _parse_error(OciFieldError(where, message), self.path, self.config.locate, self.document)

    def line(self, where: str) -> int | None:
        return self.locate(where)

    # the model -----------------------------------------------------------

    def spec(self) -> RunSpec:
        config, document = self.config, self.document
        process = config.process
        linux_present = isinstance(document.get("linux"), dict)
        other_platform = any(key in document for key in ("windows", "solaris", "vm", "freebsd", "zos"))
        judge_linux = linux_present or not other_platform
        fields: dict = {"kind": "oci", "path": self.path, "subject": "config.json process",
                        "line": self.line("process") or 1}
        if process is not None:
            fields.update(self.process(process))
        root = config.root or {}
        if root.get("readonly") is not None:
            fields["read_only_root"] = root["readonly"]
            self.lines["read_only_root"] = self.line("root.readonly")
        if root.get("path") is not None:
            fields["rootfs"] = root["path"]
        if config.hostname is not None:
            fields["hostname"] = config.hostname
        fields["mounts"] = self.mounts()
        if judge_linux and self.privileged():
            fields["privileged"] = True
            self.lines["privileged"] = self.line("process") or 1
        if judge_linux:
            linux = config.linux
            fields["namespaces"], fields["network"] = self.namespaces(linux, linux_present)
            fields.update(self.seccomp(linux, linux_present))
            fields.update(self.kernel_paths(linux))
            fields["devices"] = self.devices(linux)
            fields.update(self.resources(linux))
            fields.update(self.user_mapping(linux))
        fields["lines"] = self.lines
        return RunSpec(**fields)

    def process(self, process: OciProcess) -> dict:
        fields: dict = {}
        fields.update(self.identity(process))
        fields.update(self.capabilities(process))
        fields["command"] = tuple(str(arg) for arg in process.args or ())
        if process.cwd is not None:
            fields["workdir"] = process.cwd
        fields["env"] = self.env(process)
        fields["ulimits"] = tuple(Ulimit(ulimit_name(rlimit.type or ""), rlimit.soft or 0, rlimit.hard or 0)
                                  for rlimit in process.rlimits)
        if process.no_new_privileges is not None:
            fields["no_new_privileges"] = process.no_new_privileges
            self.lines["no_new_privileges"] = self.line("process.noNewPrivileges")
        fields.update(self.lsm(process))
        if process.oom_score_adj is not None:
            fields["oom_score_adj"] = process.oom_score_adj
            self.lines["oom_score_adj"] = self.line("process.oomScoreAdj")
        return fields

    def identity(self, process: OciProcess) -> dict:
        user = process.user
        if user is None or user.uid is None:
            return {}
        self.lines["user"] = self.line("process.user.uid")
        identity: dict = {"user": f"{user.uid}:{user.gid}" if user.gid is not None else str(user.uid)}
        if user.additional_gids:
            identity["group_add"] = tuple(str(group) for group in user.additional_gids)
            self.lines["group_add"] = self.line("process.user.additionalGids")
        return identity

    def capabilities(self, process: OciProcess) -> dict:
        if process.capabilities is None:
            return {}
        line = self.line("process.capabilities")
        granted: list[str] = []
        for name in CAPABILITY_SETS:
            for index, value in enumerate(process.capabilities.get(name, ())):
                where = f"process.capabilities.{name}[{index}]"
                if not isinstance(value, str):
                    self.fail(where, "expected an object")      # worded: items have the wrong type
                cap = rv.normalize_capability(value)
                if cap not in granted:
                    granted.append(cap)
                    self.lines[f"cap_add:{cap}"] = self.line(where) or line
        self.lines["cap_add"] = self.lines["cap_drop"] = line
        self.lines["cap_drop:ALL"] = line
        return {"cap_add": tuple(granted), "cap_drop": ("ALL",)}

    def env(self, process: OciProcess) -> tuple[EnvVar, ...]:
        out = []
        for index, item in enumerate(process.env):
            name, sep, value = item.partition("=")
            line = self.line(f"process.env[{index}]")
            out.append(EnvVar(name, value if sep else "", line))
            self.lines[f"env:{name}"] = line
        return tuple(out)

    def lsm(self, process: OciProcess) -> dict:
        out: dict = {}
        profile = process.apparmor_profile
        if profile:
            out["apparmor"] = "unconfined" if profile == "unconfined" else profile
            self.lines["apparmor"] = self.line("process.apparmorProfile")
        label = process.selinux_label
        if label and any(f":{t}:" in f":{label}:" for t in UNCONFINED_SELINUX_TYPES):
            out["selinux_disabled"] = True
            self.lines["selinux_disabled"] = self.line("process.selinuxLabel")
        return out

    def mounts(self) -> tuple[Mount, ...]:
        out = []
        for index, mount in enumerate(self.config.mounts or ()):
            line = self.line(mount.where)
            if mount.destination is None:
                raise ParseError("each mount needs a `destination`", path=self.path,
                                 line=self.config.locate(mount.where))
            options = tuple(str(option) for option in mount.options)
            kind = mount.type or ""
            if is_bind(kind, options):
                kind = "bind"
            rest = tuple(o for o in options if o not in ("ro", "rw", "bind", "rbind"))
            if kind == "bind" and is_engine_file(mount.destination, mount.source, self.path, self.config.annotations):
                kind = "engine-file"     # not a host path the user asked for (HR2010, HR2011, HR3002)
            out.append(Mount(kind or "bind", mount.destination, mount.source, "ro" in options, rest, line))
            self.lines[f"mount:{index}"] = line
        if out:
            self.lines["mounts"] = self.line("mounts")
        return tuple(out)

    def namespaces(self, linux: OciLinux, linux_present: bool) -> tuple[dict[str, str], str | None]:
        declared: dict[str, str] = {}
        for entry in linux.namespaces or ():
            namespace = self.typed(entry.type, str, f"{entry.where}.type")
            if namespace not in NAMESPACE_TYPES:
                continue
            declared[namespace] = joined_namespace(entry.path) if entry.path else "private"
            self.lines[f"namespace:{namespace}"] = self.line(entry.where)
        where = self.line("linux.namespaces") if "namespaces" in (self.document.get("linux") or ()) else (
            self.line("linux") if linux_present else None)
        for namespace in HOST_WHEN_ABSENT:
            if namespace not in declared:
                declared[namespace] = "host"
                if where is not None:
                    self.lines[f"namespace:{namespace}"] = where
        network = {"host": "host", "private": "none"}.get(declared["network"])
        if network is not None and "namespace:network" in self.lines:
            self.lines["network"] = self.lines["namespace:network"]
        return declared, network

    def user_mapping(self, linux: OciLinux) -> dict:
        """Where container uid 0 lands on the host (`userns_remap`), if it is mapped."""
        for mapping in linux.uid_mappings:
            if mapping.container_id == 0 and mapping.host_id is not None and mapping.size:
                self.lines["userns_remap"] = self.line(mapping.where)
                return {"userns_remap": (mapping.host_id, mapping.size)}
        return {}

    def seccomp(self, linux: OciLinux, linux_present: bool) -> dict:
        seccomp = linux.seccomp
        if seccomp is None:
            # No filter at all: every syscall is allowed.
            if linux_present:
                self.lines["seccomp"] = self.line("linux")
            return {"seccomp": "unconfined"}
        self.lines["seccomp"] = self.line("linux.seccomp")
        action = self.typed(seccomp.get("defaultAction"), str, "linux.seccomp.defaultAction") or ""
        rules = self.typed(seccomp.get("syscalls"), list, "linux.seccomp.syscalls") or []
        for index, rule in enumerate(rules):
            if not isinstance(rule, dict):
                self.fail(f"linux.seccomp.syscalls[{index}]", "expected an object")
        if action == "SCMP_ACT_ALLOW" and not rules:
            return {"seccomp": "unconfined"}
        return {"seccomp": f"inline:{action or 'unknown'}"}

    def privileged(self) -> bool:
        """What `docker run --privileged` makes of a container: every capability, no seccomp
        filter, every device allowed, /sys writable (masked and read-only paths are not
        looked at: hardrun's floor adds them back before the gate judges)."""
        process, linux = self.config.process, self.config.linux
        if process is None or process.capabilities is None or linux.seccomp:
            return False
        granted = {rv.normalize_capability(str(value)) for values in process.capabilities.values()
                   for value in values}
        if not {name for name, bit in CAP_NUMBERS.items() if bit < PRIVILEGED_CAPABILITIES} <= granted:
            return False
        all_devices = any(_allows_every_device(rule) for rule in linux.resources.devices)
        sys_writable = any(mount.destination == "/sys" and "ro" not in mount.options
                           for mount in self.config.mounts or ())
        return all_devices and sys_writable

    def kernel_paths(self, linux: OciLinux) -> dict:
        out = {}
        for key, field, values in (("maskedPaths", "masked_paths", linux.masked_paths),
                                   ("readonlyPaths", "readonly_paths", linux.readonly_paths)):
            out[field] = values or ()
            if key in (self.document.get("linux") or ()):     # written, even as null
                self.lines[field] = self.line(f"linux.{key}")
        return out

    def devices(self, linux: OciLinux) -> tuple[str, ...]:
        devices: list[str] = []
        for device in linux.devices:
            if device.path is None:
                raise ParseError("each device needs a `path`", path=self.path,
                                 line=self.config.locate(device.where))
            self.lines[f"device:{len(devices)}"] = self.line(device.where)
            devices.append(device.path)
        for index, rule in enumerate(linux.resources.devices):
            where = f"linux.resources.devices[{index}]"
            if not isinstance(rule, dict):
                self.fail(where, "expected an object")
            # An allow rule naming no device type or number opens every device node
            # (what `--privileged` does); it is recorded in the `--device` form.
            if _allows_every_device(rule):
                self.lines[f"device:{len(devices)}"] = self.line(where)
                devices.append(f"/dev/*:/dev/*:{rule.get('access') or 'rwm'}")
        return tuple(devices)

    def resources(self, linux: OciLinux) -> dict:
        resources = linux.resources
        at = "linux.resources"
        out: dict = {}
        for key, field, value in (("limit", "memory", resources.memory_limit),
                                  ("swap", "memory_swap", resources.memory_swap)):
            if value is not None and (value > 0 or field == "memory_swap"):
                out[field] = value
                self.lines[field] = self.line(f"{at}.memory.{key}")
        if resources.pids_limit is not None and resources.pids_limit > 0:
            out["pids_limit"] = resources.pids_limit
            self.lines["pids_limit"] = self.line(f"{at}.pids.limit")
        if resources.cpu_shares is not None:
            out["cpu_shares"] = resources.cpu_shares
            self.lines["cpu_shares"] = self.line(f"{at}.cpu.shares")
        quota, period = resources.cpu_quota, resources.cpu_period
        if quota is not None and quota > 0 and period:
            out["cpus"] = quota / period
            self.lines["cpus"] = self.line(f"{at}.cpu.quota")
        return out


def _allows_every_device(rule) -> bool:
    """A device cgroup rule allowing every device node (no type, major or minor named)."""
    return isinstance(rule, dict) and rule.get("allow") is True and rule.get("type", "a") == "a" \
        and rule.get("major") is None and rule.get("minor") is None


def _as_int(value):
    """JSON numbers like 1e9 reach us as text (YAML 1.1) or as a float."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value
