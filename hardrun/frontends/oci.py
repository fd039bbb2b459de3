"""OCI runtime `config.json` -> one RunSpec (kind="oci", subject "config.json process").

An OCI config states everything explicitly and a runtime adds nothing, so absence
means absence: no seccomp object is no filter (`seccomp="unconfined"`), a namespace
type missing from `linux.namespaces` is the host's namespace, missing
`maskedPaths` masks nothing. Capabilities are modelled as a reviewer reads them:
the granted set (the union of the five sets) is `cap_add` on top of
`cap_drop=("ALL",)`, since nothing else can be held. Only when `process.capabilities`
is absent altogether is nothing said about capabilities (the runtime decides).

JSON is read with the YAML loader (JSON is YAML for these files) so every value
keeps its line; `lines` follows the RunSpec conventions.
"""
from __future__ import annotations

from ..errors import ParseError
from ..spec.capabilities import NUMBERS as CAP_NUMBERS
from ..spec.oci import (CAPABILITY_SETS, NAMESPACE_TYPES, is_bind, is_engine_file, joined_namespace,
                        ulimit_name)
from ..spec.run import EnvVar, Mount, RunSpec, Ulimit
from ..parsing import runvalues as rv
from ..parsing.yamlsafe import MarkedList, MarkedMap, load_all

# Namespaces a container must not share with the host (user/cgroup are often shared).
HOST_WHEN_ABSENT = ("network", "pid", "ipc", "uts", "mount")
# Every capability up to CAP_AUDIT_READ: what `docker run --privileged` grants on any engine version.
PRIVILEGED_CAPABILITIES = 38
UNCONFINED_SELINUX_TYPES = ("spc_t", "unconfined_t")


def parse_oci(text: str, path: str) -> list[RunSpec]:
    """The RunSpec of an OCI runtime config.json."""
    # A raw tab cannot occur inside a JSON string, and YAML rejects tab indentation.
    documents = [d for d in load_all(text.replace("\t", " "), path) if d is not None]
    if not documents:
        raise ParseError("empty config.json: expected an OCI runtime configuration", path=path)
    if len(documents) > 1 or not isinstance(documents[0], MarkedMap):
        raise ParseError("config.json must be one JSON object", path=path,
                         line=getattr(documents[0], "line", 1))
    return [_Config(documents[0], path).spec()]


class _Config:
    def __init__(self, config: MarkedMap, path: str):
        self.config = config
        self.path = path
        self.lines: dict[str, int | None] = {}

    # typed access --------------------------------------------------------

    def get(self, parent: MarkedMap, key: str, kind, where: str):
        """`parent[key]` if present, checked to be of `kind` (a ParseError at its line)."""
        value = parent.get(key)
        if value is None:
            return None
        if kind is int:
            value = _as_int(value)
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            expected = {MarkedMap: "an object", MarkedList: "an array", str: "a string",
                        bool: "true or false", int: "an integer"}.get(kind, "another type")
            raise ParseError(f"`{where}{key}` must be {expected}", path=self.path,
                             line=parent.line_of(key, parent.line))
        return value

    def section(self, parent: MarkedMap | None, key: str, where: str = "") -> MarkedMap:
        if parent is None:
            return MarkedMap()
        return self.get(parent, key, MarkedMap, where) or MarkedMap()

    def items(self, parent: MarkedMap, key: str, where: str, kind=MarkedMap) -> MarkedList:
        values = self.get(parent, key, MarkedList, where) or MarkedList()
        for index, value in enumerate(values):
            if not isinstance(value, kind):
                raise ParseError(f"`{where}{key}` items have the wrong type", path=self.path,
                                 line=values.line_at(index, values.line))
        return values

    # the model -----------------------------------------------------------

    def spec(self) -> RunSpec:
        config = self.config
        process = self.section(config, "process")
        root = self.section(config, "root")
        linux_present = isinstance(config.get("linux"), MarkedMap)
        linux = self.section(config, "linux")
        other_platform = any(key in config for key in ("windows", "solaris", "vm", "freebsd", "zos"))
        judge_linux = linux_present or not other_platform
        fields: dict = {"kind": "oci", "path": self.path, "subject": "config.json process",
                        "line": config.line_of("process", config.line or 1)}
        fields.update(self.identity(process))
        fields.update(self.capabilities(process))
        fields["command"] = tuple(str(a) for a in self.items(process, "args", "process.", object))
        cwd = self.get(process, "cwd", str, "process.")
        if cwd is not None:
            fields["workdir"] = cwd
        fields["env"] = self.env(process)
        fields["ulimits"] = self.rlimits(process)
        no_new_privileges = self.get(process, "noNewPrivileges", bool, "process.")
        if no_new_privileges is not None:
            fields["no_new_privileges"] = no_new_privileges
            self.lines["no_new_privileges"] = process.line_of("noNewPrivileges")
        fields.update(self.lsm(process))
        fields.update(self.oom_score_adj(process))
        read_only = self.get(root, "readonly", bool, "root.")
        if read_only is not None:
            fields["read_only_root"] = read_only
            self.lines["read_only_root"] = root.line_of("readonly")
        root_path = self.get(root, "path", str, "root.")
        if root_path is not None:
            fields["rootfs"] = root_path
        hostname = self.get(config, "hostname", str, "")
        if hostname is not None:
            fields["hostname"] = hostname
        fields["mounts"] = self.mounts()
        if judge_linux and self.privileged(process, linux):
            fields["privileged"] = True
            self.lines["privileged"] = config.line_of("process", config.line or 1)
        if judge_linux:
            fields["namespaces"], fields["network"] = self.namespaces(linux, linux_present)
            fields.update(self.seccomp(linux, linux_present))
            fields.update(self.kernel_paths(linux))
            fields["devices"] = self.devices(linux)
            fields.update(self.resources(linux))
            fields.update(self.user_mapping(linux))
        fields["lines"] = self.lines
        return RunSpec(**fields)

    def identity(self, process: MarkedMap) -> dict:
        user = self.section(process, "user", "process.")
        uid = self.get(user, "uid", int, "process.user.")
        gid = self.get(user, "gid", int, "process.user.")
        if uid is None:
            return {}
        self.lines["user"] = user.line_of("uid")
        identity: dict = {"user": f"{uid}:{gid}" if gid is not None else str(uid)}
        groups = self.items(user, "additionalGids", "process.user.", int)
        if groups:
            identity["group_add"] = tuple(str(group) for group in groups)
            self.lines["group_add"] = user.line_of("additionalGids")
        return identity

    def oom_score_adj(self, process: MarkedMap) -> dict:
        value = self.get(process, "oomScoreAdj", int, "process.")
        if value is None:
            return {}
        self.lines["oom_score_adj"] = process.line_of("oomScoreAdj")
        return {"oom_score_adj": value}

    def capabilities(self, process: MarkedMap) -> dict:
        capabilities = self.get(process, "capabilities", MarkedMap, "process.")
        if capabilities is None:
            return {}
        line = process.line_of("capabilities")
        granted: list[str] = []
        for name in CAPABILITY_SETS:
            values = self.items(capabilities, name, "process.capabilities.", str)
            for index, value in enumerate(values):
                cap = rv.normalize_capability(value)
                if cap not in granted:
                    granted.append(cap)
                    self.lines[f"cap_add:{cap}"] = values.line_at(index, line)
        self.lines["cap_add"] = self.lines["cap_drop"] = line
        self.lines["cap_drop:ALL"] = line
        return {"cap_add": tuple(granted), "cap_drop": ("ALL",)}

    def env(self, process: MarkedMap) -> tuple[EnvVar, ...]:
        values = self.items(process, "env", "process.", str)
        out = []
        for index, item in enumerate(values):
            name, sep, value = item.partition("=")
            line = values.line_at(index)
            out.append(EnvVar(name, value if sep else "", line))
            self.lines[f"env:{name}"] = line
        return tuple(out)

    def rlimits(self, process: MarkedMap) -> tuple[Ulimit, ...]:
        out = []
        for item in self.items(process, "rlimits", "process."):
            kind = self.get(item, "type", str, "process.rlimits.") or ""
            soft = self.get(item, "soft", int, "process.rlimits.")
            hard = self.get(item, "hard", int, "process.rlimits.")
            out.append(Ulimit(ulimit_name(kind), soft or 0, hard or 0))
        return tuple(out)

    def lsm(self, process: MarkedMap) -> dict:
        out: dict = {}
        profile = self.get(process, "apparmorProfile", str, "process.")
        if profile:
            out["apparmor"] = "unconfined" if profile == "unconfined" else profile
            self.lines["apparmor"] = process.line_of("apparmorProfile")
        label = self.get(process, "selinuxLabel", str, "process.")
        if label and any(f":{t}:" in f":{label}:" for t in UNCONFINED_SELINUX_TYPES):
            out["selinux_disabled"] = True
            self.lines["selinux_disabled"] = process.line_of("selinuxLabel")
        return out

    def mounts(self) -> tuple[Mount, ...]:
        out = []
        values = self.items(self.config, "mounts", "")
        for index, item in enumerate(values):
            line = values.line_at(index)
            destination = self.get(item, "destination", str, "mounts[].")
            if destination is None:
                raise ParseError("each mount needs a `destination`", path=self.path, line=line)
            options = tuple(str(o) for o in self.items(item, "options", "mounts[].", object))
            kind = self.get(item, "type", str, "mounts[].") or ""
            source = self.get(item, "source", str, "mounts[].")
            if is_bind(kind, options):
                kind = "bind"
            rest = tuple(o for o in options if o not in ("ro", "rw", "bind", "rbind"))
            if kind == "bind" and self.engine_file(destination, source):
                kind = "engine-file"     # not a host path the user asked for (HR2010, HR2011, HR3002)
            out.append(Mount(kind or "bind", destination, source, "ro" in options, rest, line))
            self.lines[f"mount:{index}"] = line
        if out:
            self.lines["mounts"] = self.config.line_of("mounts")
        return tuple(out)

    def namespaces(self, linux: MarkedMap, linux_present: bool) -> tuple[dict[str, str], str | None]:
        entries = self.items(linux, "namespaces", "linux.")
        declared: dict[str, str] = {}
        for index, entry in enumerate(entries):
            namespace = self.get(entry, "type", str, "linux.namespaces[].")
            if namespace not in NAMESPACE_TYPES:
                continue
            joined = self.get(entry, "path", str, "linux.namespaces[].")
            declared[namespace] = joined_namespace(joined) if joined else "private"
            self.lines[f"namespace:{namespace}"] = entries.line_at(index)
        where = linux.line_of("namespaces") if "namespaces" in linux else (
            self.config.line_of("linux") if linux_present else None)
        for namespace in HOST_WHEN_ABSENT:
            if namespace not in declared:
                declared[namespace] = "host"
                if where is not None:
                    self.lines[f"namespace:{namespace}"] = where
        network = {"host": "host", "private": "none"}.get(declared["network"])
        if network is not None and "namespace:network" in self.lines:
            self.lines["network"] = self.lines["namespace:network"]
        return declared, network

    def user_mapping(self, linux: MarkedMap) -> dict:
        """Where container uid 0 lands on the host (`userns_remap`), if it is mapped."""
        mappings = self.items(linux, "uidMappings", "linux.")
        for index, mapping in enumerate(mappings):
            container_id = self.get(mapping, "containerID", int, "linux.uidMappings[].")
            host_id = self.get(mapping, "hostID", int, "linux.uidMappings[].")
            size = self.get(mapping, "size", int, "linux.uidMappings[].")
            if container_id == 0 and host_id is not None and size:
                self.lines["userns_remap"] = mappings.line_at(index)
                return {"userns_remap": (host_id, size)}
        return {}

    def seccomp(self, linux: MarkedMap, linux_present: bool) -> dict:
        seccomp = self.get(linux, "seccomp", MarkedMap, "linux.")
        if seccomp is None:
            # No filter at all: every syscall is allowed.
            if linux_present:
                self.lines["seccomp"] = self.config.line_of("linux")
            return {"seccomp": "unconfined"}
        self.lines["seccomp"] = linux.line_of("seccomp")
        action = self.get(seccomp, "defaultAction", str, "linux.seccomp.") or ""
        rules = self.items(seccomp, "syscalls", "linux.seccomp.")
        if action == "SCMP_ACT_ALLOW" and not rules:
            return {"seccomp": "unconfined"}
        return {"seccomp": f"inline:{action or 'unknown'}"}

    def engine_file(self, destination: str, source: str | None) -> bool:
        return is_engine_file(destination, source, self.path, self.config.get("annotations"))

    def privileged(self, process: MarkedMap, linux: MarkedMap) -> bool:
        """What `docker run --privileged` makes of a container: every capability, no seccomp
        filter, every device allowed, /sys writable (masked and read-only paths are not
        looked at: hardrun's floor adds them back before the gate judges)."""
        capabilities = process.get("capabilities")
        if not isinstance(capabilities, MarkedMap) or linux.get("seccomp"):
            return False
        granted = {rv.normalize_capability(str(value)) for name in CAPABILITY_SETS
                   for value in (capabilities.get(name) or []) if isinstance(capabilities.get(name), MarkedList)}
        if not {name for name, bit in CAP_NUMBERS.items() if bit < PRIVILEGED_CAPABILITIES} <= granted:
            return False
        resources = linux.get("resources")
        rules = resources.get("devices") if isinstance(resources, MarkedMap) else None
        all_devices = isinstance(rules, MarkedList) and any(
            isinstance(rule, MarkedMap) and rule.get("allow") is True and rule.get("type", "a") == "a"
            and rule.get("major") is None and rule.get("minor") is None for rule in rules)
        mounts = self.config.get("mounts")
        sys_writable = isinstance(mounts, MarkedList) and any(
            isinstance(m, MarkedMap) and m.get("destination") == "/sys" and "ro" not in (m.get("options") or [])
            for m in mounts)
        return all_devices and sys_writable

    def kernel_paths(self, linux: MarkedMap) -> dict:
        out = {}
        for key, field in (("maskedPaths", "masked_paths"), ("readonlyPaths", "readonly_paths")):
            values = self.items(linux, key, "linux.", str)
            out[field] = tuple(values)
            if key in linux:
                self.lines[field] = linux.line_of(key)
        return out

    def devices(self, linux: MarkedMap) -> tuple[str, ...]:
        devices: list[str] = []
        values = self.items(linux, "devices", "linux.")
        for index, item in enumerate(values):
            device = self.get(item, "path", str, "linux.devices[].")
            if device is None:
                raise ParseError("each device needs a `path`", path=self.path,
                                 line=values.line_at(index))
            self.lines[f"device:{len(devices)}"] = values.line_at(index)
            devices.append(device)
        resources = self.section(linux, "resources", "linux.")
        rules = self.items(resources, "devices", "linux.resources.")
        for index, rule in enumerate(rules):
            # An allow rule naming no device type or number opens every device node
            # (what `--privileged` does); it is recorded in the `--device` form.
            if rule.get("allow") is True and rule.get("type", "a") == "a" \
                    and rule.get("major") is None and rule.get("minor") is None:
                self.lines[f"device:{len(devices)}"] = rules.line_at(index)
                devices.append(f"/dev/*:/dev/*:{rule.get('access') or 'rwm'}")
        return tuple(devices)

    def resources(self, linux: MarkedMap) -> dict:
        resources = self.section(linux, "resources", "linux.")
        out: dict = {}
        memory = self.section(resources, "memory", "linux.resources.")
        for key, field in (("limit", "memory"), ("swap", "memory_swap")):
            value = self.get(memory, key, int, "linux.resources.memory.")
            if value is not None and (value > 0 or field == "memory_swap"):
                out[field] = value
                self.lines[field] = memory.line_of(key)
        pids = self.section(resources, "pids", "linux.resources.")
        limit = self.get(pids, "limit", int, "linux.resources.pids.")
        if limit is not None and limit > 0:
            out["pids_limit"] = limit
            self.lines["pids_limit"] = pids.line_of("limit")
        cpu = self.section(resources, "cpu", "linux.resources.")
        shares = self.get(cpu, "shares", int, "linux.resources.cpu.")
        if shares is not None:
            out["cpu_shares"] = shares
            self.lines["cpu_shares"] = cpu.line_of("shares")
        quota = self.get(cpu, "quota", int, "linux.resources.cpu.")
        period = self.get(cpu, "period", int, "linux.resources.cpu.")
        if quota is not None and quota > 0 and period:
            out["cpus"] = quota / period
            self.lines["cpus"] = cpu.line_of("quota")
        return out


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
