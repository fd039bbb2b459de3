"""Compose files (compose.yaml, docker-compose*.yml, legacy v1) -> one RunSpec per service.

Conventions: `kind="compose"`, `subject` = service name, `line` = the service key's
line; `lines[field]` = the line of the compose key that set a RunSpec field
(`cap_add:NAME` for one capability, `namespace:pid` for a namespace mode).
Values are interpolated with `${VAR…}` rules against the `env` mapping the caller
gives (none by default; the auditing machine's environment is never read).
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Mapping

from ..errors import HardrunError, ParseError
from ..spec.run import EnvVar, Mount, Port, RunSpec, Ulimit
from ..parsing import runvalues as rv
from ..parsing.interpolate import has_unresolved, interpolate
from ..parsing.yamlsafe import MarkedList, MarkedMap, load_all
from ..userfiles import decode, outside_audited_root, read_bytes

# Top-level keys of the current format that are not services (for legacy v1 files).
_TOP_LEVEL = {"version", "services", "networks", "volumes", "secrets", "configs", "name",
              "include", "models"}
# Sequences that `extends` concatenates instead of replacing.
_CONCATENATED = {"cap_add", "cap_drop", "security_opt", "ports", "expose", "dns",
                 "dns_search", "tmpfs", "env_file", "devices", "volumes", "external_links",
                 "links", "extra_hosts", "group_add", "device_cgroup_rules"}
# Compose keys -> RunSpec fields they set (for `lines` and `unresolved`).
_FIELD_OF = {
    "image": "image", "user": "user", "privileged": "privileged", "cap_add": "cap_add",
    "cap_drop": "cap_drop", "read_only": "read_only_root", "volumes": "mounts",
    "devices": "devices", "network_mode": "network", "net": "network",
    "mem_limit": "memory", "memswap_limit": "memory_swap", "pids_limit": "pids_limit",
    "cpus": "cpus", "cpu_shares": "cpu_shares", "hostname": "hostname",
    "working_dir": "workdir", "init": "init", "command": "command", "ulimits": "ulimits",
    "ports": "ports", "environment": "env", "env_file": "env_files",
    "container_name": "name", "tmpfs": "mounts", "group_add": "group_add",
    "oom_score_adj": "oom_score_adj",
}
_NAMESPACE_KEYS = {"pid": "pid", "ipc": "ipc", "uts": "uts", "userns_mode": "user",
                   "cgroup": "cgroup"}
MAX_EXTENDS_DEPTH = 32
MAX_EXTENDS_FILE_BYTES = 8 * 1024 * 1024


def parse_compose(text: str, path: str, env: Mapping[str, str] | None = None) -> list[RunSpec]:
    """One RunSpec per service of the compose file `text` (read from `path`)."""
    document = _load_document(text, path, env)
    services = _services(document, path)
    resolver = _Extends(env)
    has_variables = "$" in text
    return [_service_spec(name, resolver.resolve(name, services, path, ()),
                          services.line_of(name), path, has_variables)
            for name in services]


def _load_document(text: str, path: str, env) -> MarkedMap | None:
    documents = [doc for doc in load_all(text, path) if doc is not None]
    if not documents:
        return None
    if len(documents) > 1:
        raise ParseError("a compose file holds one YAML document, found several", path=path)
    document = documents[0]
    if not isinstance(document, MarkedMap):
        raise ParseError("a compose file must be a mapping (services: …)", path=path,
                         line=getattr(document, "line", 1))
    if "$" not in text:
        return document
    try:
        return _interpolate(document, env or {}, document.line)
    except ParseError as error:
        error.path = path
        raise


def _interpolate(value, env, line: int | None):
    """`value` with every string interpolated, lines kept; unchanged parts are reused.
    `line`: where `value` was written, for the error of a string that cannot be."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        try:
            return interpolate(value, env)
        except ParseError as error:
            error.line = line
            raise
    if isinstance(value, MarkedMap):
        # only strings holding `$` and containers can change: the other values (most of a
        # file) are passed over without a call
        changed = {key: new for key, item in value.items()
                   if ("$" in item if isinstance(item, str) else isinstance(item, (dict, list)))
                   and (new := _interpolate(item, env, value.line_of(key, value.line))) is not item}
        if not changed:
            return value
        out = MarkedMap(value.line, value.column)
        out.key_lines = value.key_lines
        for key, item in value.items():
            out[key] = changed.get(key, item)
        return out
    if isinstance(value, MarkedList):
        items = [_interpolate(item, env, value.line_at(index, value.line))
                 if ("$" in item if isinstance(item, str) else isinstance(item, (dict, list)))
                 else item for index, item in enumerate(value)]
        if all(new is old for new, old in zip(items, value)):
            return value
        interpolated = MarkedList(value.line, value.column)
        interpolated.item_lines = value.item_lines
        interpolated.extend(items)
        return interpolated
    return value


def _services(document: MarkedMap | None, path: str) -> MarkedMap:
    """The services mapping; for a legacy v1 file, its top-level service entries."""
    if document is None:
        return MarkedMap(1, 1)
    if "services" in document:
        services = document["services"]
        if services is None:
            return MarkedMap(document.line_of("services"), 1)
        if not isinstance(services, MarkedMap):
            raise ParseError("`services` must be a mapping of service names",
                             path=path, line=document.line_of("services"))
        return services
    if "version" in document:
        return MarkedMap(1, 1)
    legacy = MarkedMap(document.line, document.column)
    for name, value in document.items():
        if name in _TOP_LEVEL or name.startswith("x-"):
            continue
        if isinstance(value, MarkedMap) and ({"image", "build", "extends"} & value.keys()):
            legacy[name] = value
            legacy.key_lines[name] = document.line_of(name)
    return legacy


# ---------------------------------------------------------------- extends

class _Extends:
    """Resolves `extends:` (same file or `file:`), guarding against loops."""

    def __init__(self, env):
        self.env = env
        self.loaded: dict[str, MarkedMap] = {}

    def resolve(self, name: str, services: MarkedMap, path: str, chain: tuple) -> MarkedMap:
        raw = services.get(name)
        if raw is None:
            return MarkedMap(services.line_of(name), 1)
        if not isinstance(raw, MarkedMap):
            raise ParseError(f"service {name!r} must be a mapping", path=path,
                             line=services.line_of(name))
        if "extends" not in raw:
            return raw
        line = raw.line_of("extends")
        base_name, base_file = self._target(raw["extends"], path, line)
        base_path = self._other_path(base_file, path) if base_file else path
        where = (os.path.normpath(os.path.abspath(base_path)), base_name)
        here = (os.path.normpath(os.path.abspath(path)), name)
        chain = chain + (here,)
        if where in chain or len(chain) > MAX_EXTENDS_DEPTH:
            raise ParseError(f"service {name!r} extends {base_name!r} in a loop",
                             path=path, line=line)
        if base_file:
            base_services = self._load_other(base_path, path, line)
        else:
            base_services = services
        if base_name not in base_services:
            where_text = f" in {base_file}" if base_file else ""
            raise ParseError(f"service {name!r} extends {base_name!r}, which does not exist"
                             f"{where_text}", path=path, line=line)
        try:
            base = self.resolve(base_name, base_services, base_path, chain)
        except ParseError as error:
            if not base_file:
                raise
            raise _in_other_file(error, base_path, path, line) from None
        if base_file:
            # Lines of another file mean nothing here: point at the `extends:` key.
            base = _relocate(base, line)
        return _merge_service(base, raw)

    @staticmethod
    def _target(extends, path: str, line: int | None) -> tuple[str, str | None]:
        if isinstance(extends, str):
            return extends, None
        if isinstance(extends, MarkedMap) and isinstance(extends.get("service"), str):
            base_file = extends.get("file")
            if base_file is not None and not isinstance(base_file, str):
                raise ParseError("`extends.file` must be a file name", path=path,
                                 line=extends.line_of("file", line))
            return extends["service"], base_file
        raise ParseError("`extends` needs a service name or {service:, file:}", path=path,
                         line=line)

    @staticmethod
    def _other_path(base_file: str, path: str) -> str:
        if os.path.isabs(base_file):
            return base_file
        directory = os.path.dirname(path) if path and not path.startswith("<") else ""
        return os.path.join(directory, base_file)

    def _load_other(self, other: str, path: str, line: int | None) -> MarkedMap:
        if other in self.loaded:
            return self.loaded[other]
        text = _read_small(other, path, line)
        try:
            document = _load_document(text, other, self.env)
            services = _services(document, other)
        except ParseError as error:
            raise _in_other_file(error, other, path, line) from None
        self.loaded[other] = services
        return services


class _ContentFree(ParseError):
    """An error about a file reached through `extends` that quotes nothing of it."""


def _in_other_file(error: ParseError, other: str, path: str, line: int | None) -> ParseError:
    """An error in a file reached through `extends`, at the `extends:` line: it names that
    file and where in it, never what it says (it may be any file the audit can read)."""
    where = "" if error.line is None else f" at line {error.line}"
    if error.line is not None and error.column is not None:
        where += f", column {error.column}"
    said = f": {error.message}" if isinstance(error, _ContentFree) else " (not shown)"
    return _ContentFree(f"{other}, named by `extends`, has an error{where}{said}",
                        path=path, line=line)


# Kernel and device trees are never compose files; reading them could block or leak.
_NEVER_READ = ("/proc/", "/sys/", "/dev/")


def _read_small(other: str, path: str, line: int | None) -> str:
    if outside_audited_root(other):
        raise _ContentFree(f"`extends` names {other}, which is outside the audited directory: "
                           "not followed", path=path, line=line)
    real = os.path.realpath(other)
    if real.startswith(_NEVER_READ):
        raise _ContentFree(f"`extends` names {other}, which is not a compose file", path=path,
                           line=line)
    if not os.path.isfile(other):
        raise _ContentFree(f"`extends` names {other}, which is not a file", path=path, line=line)
    try:
        data = read_bytes(other, MAX_EXTENDS_FILE_BYTES)
    except HardrunError as error:
        raise _ContentFree(f"cannot read {other} named by `extends`: {error.message}",
                           path=path, line=line) from None
    try:
        return decode(data)
    except ParseError:  # binary or not UTF-8; said without a byte of its content
        raise _ContentFree(f"{other} named by `extends` is not a UTF-8 text file", path=path,
                           line=line) from None


def _merge_service(base: MarkedMap, override: MarkedMap) -> MarkedMap:
    """Compose's merge: mappings merge, listed sequences concatenate, the rest replaces."""
    out = MarkedMap(override.line, override.column)
    for source in (base, override):
        for key, value in source.items():
            if key == "extends":
                continue
            if key == "environment":
                value = _env_mapping(value)
            if key in out:
                value = _merge_value(key, out[key], value)
            out[key] = value
            out.key_lines[key] = source.key_lines.get(key, source.line)
    return out


def _merge_value(key: str, old, new):
    if isinstance(old, MarkedMap) and isinstance(new, MarkedMap):
        merged = MarkedMap(new.line, new.column)
        for source in (old, new):
            for name, value in source.items():
                if name in merged:
                    value = _merge_value(name, merged[name], value)
                merged[name] = value
                merged.key_lines[name] = source.key_lines.get(name, source.line)
        return merged
    if key in _CONCATENATED and isinstance(old, MarkedList) and isinstance(new, MarkedList):
        concatenated = MarkedList(new.line, new.column)
        concatenated.extend(old)
        concatenated.extend(new)
        concatenated.item_lines = list(old.item_lines) + list(new.item_lines)
        return concatenated
    return new


def _env_mapping(value):
    """`environment` as a mapping (the list form `A=b`/`A` converted), lines kept."""
    if not isinstance(value, MarkedList):
        return value
    out = MarkedMap(value.line, value.column)
    for index, item in enumerate(value):
        name, sep, rest = str(item).partition("=")
        out[name] = rest if sep else None
        out.key_lines[name] = value.line_at(index, value.line)
    return out


def _relocate(value, line: int | None):
    if isinstance(value, MarkedMap):
        out = MarkedMap(line, 1)
        for key, item in value.items():
            out[key] = _relocate(item, line)
            out.key_lines[key] = line
        return out
    if isinstance(value, MarkedList):
        relocated = MarkedList(line, 1)
        relocated.extend(_relocate(item, line) for item in value)
        relocated.item_lines = [line] * len(value)
        return relocated
    return value


# ---------------------------------------------------------------- one service

class _Service:
    """Typed reads of one service mapping, raising ParseError at the key's line."""

    def __init__(self, name: str, raw: MarkedMap, path: str):
        self.name = name
        self.raw = raw
        self.path = path
        self.lines: dict[str, int | None] = {}
        self.unresolved: set[str] = set()

    def line(self, key: str) -> int | None:
        return self.raw.line_of(key, self.raw.line)

    def error(self, key: str, expected: str, line: int | None = None) -> ParseError:
        return ParseError(f"service {self.name!r}: `{key}` {expected}", path=self.path,
                          line=line if line is not None else self.line(key))

    def set_line(self, field: str, key: str) -> None:
        self.lines[field] = self.line(key)

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise self.error(key, "must be a single value")

    def flag(self, key: str) -> bool | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, str) and has_unresolved(value):
            self.unresolved.add(_FIELD_OF.get(key, key))
            return None
        raise self.error(key, "must be true or false")

    def items(self, key: str) -> MarkedList:
        """A list value (a single string counts as a one-item list)."""
        value = self.raw.get(key)
        if value is None:
            return MarkedList(self.line(key), 1)
        if isinstance(value, MarkedList):
            return value
        if isinstance(value, (str, int, float)):
            single = MarkedList(self.line(key), 1)
            single.append(value)
            single.item_lines.append(self.line(key))
            return single
        raise self.error(key, "must be a list")

    def measure(self, key: str, parse, field: str, value=None, line: int | None = None):
        """A size or number parsed by `parse`; an unset `${VAR}` makes it unknown."""
        value = self.raw.get(key) if value is None else value
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as error:
            if isinstance(value, str) and has_unresolved(value):
                self.unresolved.add(field)
                return None
            raise self.error(key, f"is not valid: {error}", line) from None


def _service_spec(name: str, raw: MarkedMap, line: int | None, path: str,
                  has_variables: bool = True) -> RunSpec:
    service = _Service(name, raw, path)
    fields: dict = {"kind": "compose", "path": path, "line": line, "subject": name}
    for key in raw:
        if key in _FIELD_OF and key not in ("volumes", "tmpfs", "net", "network_mode"):
            service.set_line(_FIELD_OF[key], key)
    fields["image"] = service.text("image")
    fields["user"] = service.text("user")
    fields["hostname"] = service.text("hostname")
    fields["workdir"] = service.text("working_dir")
    fields["name"] = service.text("container_name")
    fields["privileged"] = bool(service.flag("privileged"))
    fields["read_only_root"] = service.flag("read_only")
    fields["init"] = bool(service.flag("init"))
    fields["command"] = _command(service)
    fields["cap_add"] = _caps(service, "cap_add")
    fields["cap_drop"] = _caps(service, "cap_drop")
    fields.update(_security_opts(service))
    fields["mounts"] = _mounts(service)
    fields["devices"] = _devices(service)
    fields.update(_network(service))
    fields["namespaces"] = {**fields.get("namespaces", {}), **_namespaces(service)}
    fields["ports"] = _ports(service)
    fields.update(_limits(service))
    fields["ulimits"] = _ulimits(service)
    fields["sysctls"] = _sysctls(service)
    fields["group_add"] = _groups(service)
    fields["oom_score_adj"] = service.measure("oom_score_adj", _oom_score_adj, "oom_score_adj")
    fields["env"] = _environment(service)
    fields["env_files"] = _env_files(service)
    for key, value in raw.items() if has_variables else ():
        if key in _FIELD_OF and _mentions_variable(value):
            service.unresolved.add(_FIELD_OF[key])
    fields["unresolved"] = frozenset(service.unresolved)
    fields["lines"] = service.lines
    return RunSpec(**fields)


def _mentions_variable(value) -> bool:
    if isinstance(value, str):
        return has_unresolved(value)
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return False
    for item in value:     # a loop, not any(): called for every value of every service
        if (has_unresolved(item) if isinstance(item, str)
                else isinstance(item, (dict, list)) and _mentions_variable(item)):
            return True
    return False


def _command(service: _Service) -> tuple[str, ...]:
    value = service.raw.get("command")
    if value is None:
        return ()
    if isinstance(value, MarkedList):
        return tuple(str(item) for item in value)
    if isinstance(value, MarkedMap):
        raise service.error("command", "must be a string or a list")
    try:
        return tuple(shlex.split(str(value)))
    except ValueError:
        return tuple(str(value).split())


def _caps(service: _Service, key: str) -> tuple[str, ...]:
    caps = []
    values = service.items(key)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise service.error(key, "must list capability names", values.line_at(index))
        cap = rv.normalize_capability(value)
        caps.append(cap)
        service.lines.setdefault(f"{key}:{cap}", values.line_at(index, service.line(key)))
    return tuple(caps)


def _groups(service: _Service) -> tuple[str, ...]:
    """`group_add:` names or gids; each under `group_add:NAME`."""
    groups = []
    values = service.items("group_add")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise service.error("group_add", "must list group names or gids", values.line_at(index))
        groups.append(str(value).strip())
        service.lines.setdefault(f"group_add:{groups[-1]}", values.line_at(index, service.line("group_add")))
    return tuple(groups)


def _oom_score_adj(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("expected an integer")
    number = int(str(value).strip(), 10)
    if not -1000 <= number <= 1000:
        raise ValueError(f"{number} is out of range (expected -1000..1000)")
    return number


def _security_opts(service: _Service) -> dict:
    out: dict = {}
    values = service.items("security_opt")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise service.error("security_opt", "must list strings", values.line_at(index))
        for field, setting in rv.security_opt_settings(value):
            service.lines[field] = values.line_at(index, service.line("security_opt"))
            if setting is None:   # `no-new-privileges:${NNP}` or no boolean Docker accepts
                service.unresolved.add(field)
                out.pop(field, None)
            elif field == "selinux_options" and isinstance(setting, dict):   # a label=… option
                out[field] = {**out.get(field, {}), **setting}
            else:
                out[field] = setting
    return out


def _sysctls(service: _Service) -> dict[str, str]:
    """`sysctls:` as a mapping or a list of NAME=VALUE; each name's line under `sysctl:NAME`."""
    raw = service.raw.get("sysctls")
    if raw is None:
        return {}
    out: dict[str, str] = {}
    if isinstance(raw, MarkedMap):
        for name, value in raw.items():
            out[str(name)] = "" if value is None else str(value)
            service.lines[f"sysctl:{name}"] = raw.line_of(name, service.line("sysctls"))
    elif isinstance(raw, MarkedList):
        for index, item in enumerate(raw):
            if not isinstance(item, str):
                raise service.error("sysctls", "must list NAME=VALUE strings", raw.line_at(index))
            name, _, value = item.partition("=")
            out[name.strip()] = value.strip()
            service.lines[f"sysctl:{name.strip()}"] = raw.line_at(index, service.line("sysctls"))
    else:
        raise service.error("sysctls", "must be a mapping or a list of NAME=VALUE")
    return out


def _mounts(service: _Service) -> tuple[Mount, ...]:
    mounts: list[Mount] = []
    values = service.items("volumes")
    for index, value in enumerate(values):
        line = values.line_at(index, service.line("volumes"))
        if isinstance(value, MarkedMap):
            mounts.append(_long_volume(service, value, line))
        elif isinstance(value, str):
            try:
                mounts.append(rv.parse_volume(value, line, check_modes=False))
            except ValueError as error:
                raise service.error("volumes", f"item is not valid: {error}", line) from None
        else:
            raise service.error("volumes", "items must be strings or mappings", line)
    tmpfs = service.items("tmpfs")
    for index, value in enumerate(tmpfs):
        line = tmpfs.line_at(index, service.line("tmpfs"))
        try:
            mounts.append(rv.parse_tmpfs(value, line))
        except ValueError as error:
            raise service.error("tmpfs", f"item is not valid: {error}", line) from None
    # A later mount on the same target replaces an earlier one (as `extends` merges).
    by_target = {mount.target: mount for mount in mounts}
    result = tuple(by_target.values())
    for index, mount in enumerate(result):
        if mount.line is not None:
            service.lines[f"mount:{index}"] = mount.line
    if result:
        service.lines["mounts"] = service.line("volumes" if "volumes" in service.raw else "tmpfs")
    return result


def _long_volume(service: _Service, item: MarkedMap, line: int | None) -> Mount:
    kind = item.get("type", "volume")
    target = item.get("target")
    if not isinstance(kind, str) or not isinstance(target, str):
        raise service.error("volumes", "long syntax needs `type` and `target` strings", line)
    source = item.get("source")
    source = None if source is None else str(source)
    read_only = item.get("read_only") in (True, "true")
    options: list[str] = []
    bind = item.get("bind")
    if isinstance(bind, MarkedMap):
        if isinstance(bind.get("propagation"), str):
            options.append(bind["propagation"])
        if bind.get("selinux") in ("z", "Z"):
            options.append(bind["selinux"])
    tmpfs = item.get("tmpfs")
    if isinstance(tmpfs, MarkedMap):
        if tmpfs.get("size") is not None:
            options.append(f"size={tmpfs['size']}")
        if tmpfs.get("mode") is not None:
            options.append(f"mode={tmpfs['mode']}")
    volume = item.get("volume")
    if isinstance(volume, MarkedMap) and volume.get("nocopy") is True:
        options.append("nocopy")
    return Mount(kind, target, source, read_only, tuple(options), line)


def _devices(service: _Service) -> tuple[str, ...]:
    devices: list[str] = []
    values = service.items("devices")
    for index, value in enumerate(values):
        line = values.line_at(index, service.line("devices"))
        if isinstance(value, MarkedMap):
            source = value.get("source")
            if not isinstance(source, str):
                raise service.error("devices", "long syntax needs a `source` path", line)
            target = value.get("target") or source
            permissions = value.get("permissions")
            device = f"{source}:{target}" + (f":{permissions}" if permissions else "")
        elif isinstance(value, str):
            device = value
        else:
            raise service.error("devices", "items must be strings or mappings", line)
        service.lines[f"device:{len(devices)}"] = line
        devices.append(device)
    return tuple(devices)


def _network(service: _Service) -> dict:
    key = "network_mode" if "network_mode" in service.raw else "net" if "net" in service.raw else None
    if key is None:
        return {}
    mode = service.text(key)
    if mode is None:
        return {}
    service.set_line("network", key)
    service.set_line("namespace:network", key)
    out: dict = {"network": mode}
    namespace = _shared_namespace(mode)
    if namespace is not None:
        out["namespaces"] = {"network": namespace}
    return out


def _shared_namespace(mode: str) -> str | None:
    """`host`, `none`, `container:x`, `service:x` -> a RunSpec namespace value."""
    lowered = mode.strip().lower()
    if lowered in ("host", "none", "private"):
        return lowered
    for prefix in ("container:", "service:"):
        if lowered.startswith(prefix):
            return "container:" + mode.strip()[len(prefix):]
    return None


def _namespaces(service: _Service) -> dict[str, str]:
    out = {}
    for key, namespace in _NAMESPACE_KEYS.items():
        mode = service.text(key)
        if mode is None:
            continue
        value = _shared_namespace(mode)
        if value is None:
            continue
        out[namespace] = value
        service.set_line(f"namespace:{namespace}", key)
    return out


def _ports(service: _Service) -> tuple[Port, ...]:
    ports = []
    values = service.items("ports")
    for index, value in enumerate(values):
        line = values.line_at(index, service.line("ports"))
        if isinstance(value, MarkedMap):
            ports.append(_long_port(service, value, line))
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            try:
                ports.extend(rv.parse_publish(str(value), line))
            except ValueError as error:
                if has_unresolved(str(value)):
                    service.unresolved.add("ports")
                    continue
                raise service.error("ports", f"item is not valid: {error}", line) from None
        else:
            raise service.error("ports", "items must be strings, numbers or mappings", line)
        service.lines[f"port:{len(ports) - 1}"] = line
    return tuple(ports)


def _long_port(service: _Service, item: MarkedMap, line: int | None) -> Port:
    target = item.get("target")
    if target is None or isinstance(target, (bool, MarkedMap, MarkedList)):
        raise service.error("ports", "long syntax needs a `target` port", line)
    published = item.get("published")
    host_ip = item.get("host_ip")
    protocol = item.get("protocol") or "tcp"
    return Port(str(target), None if published in (None, "") else str(published),
                None if host_ip in (None, "") else str(host_ip), str(protocol).lower(), line)


def _limits(service: _Service) -> dict:
    out: dict = {}
    limits = _deploy_limits(service)
    for field, key, parse in (("memory", "mem_limit", rv.parse_size),
                              ("memory_swap", "memswap_limit", _swap),
                              ("pids_limit", "pids_limit", _integer),
                              ("cpus", "cpus", rv.parse_cpus),
                              ("cpu_shares", "cpu_shares", _integer)):
        value = service.measure(key, parse, field)
        if value is not None:
            out[field] = value
    for field, key, parse in (("memory", "memory", rv.parse_size),
                              ("pids_limit", "pids", _integer),
                              ("cpus", "cpus", rv.parse_cpus)):
        if limits is None or limits.get(key) is None or field in out:
            continue
        line = limits.line_of(key, limits.line)
        value = service.measure(f"deploy.resources.limits.{key}", parse, field,
                                value=limits[key], line=line)
        if value is not None:
            out[field] = value
            service.lines[field] = line
    return out


def _deploy_limits(service: _Service) -> MarkedMap | None:
    node = service.raw.get("deploy")
    for key in ("resources", "limits"):
        if not isinstance(node, MarkedMap):
            return None
        node = node.get(key)
    return node if isinstance(node, MarkedMap) else None


def _swap(value) -> int:
    if value in (-1, "-1"):
        return -1
    return rv.parse_size(value)


def _integer(value) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None


def _ulimits(service: _Service) -> tuple[Ulimit, ...]:
    raw = service.raw.get("ulimits")
    if raw is None:
        return ()
    if not isinstance(raw, MarkedMap):
        raise service.error("ulimits", "must be a mapping of limit names")
    out = []
    for name, value in raw.items():
        line = raw.line_of(name)
        try:
            if isinstance(value, MarkedMap):
                soft, hard = _integer(value.get("soft")), _integer(value.get("hard"))
            else:
                soft = hard = _integer(value)
        except ValueError as error:
            raise service.error("ulimits", f"{name} is not valid: {error}", line) from None
        out.append(Ulimit(name, soft, hard))
    return tuple(out)


def _environment(service: _Service) -> tuple[EnvVar, ...]:
    raw = _env_mapping(service.raw.get("environment"))
    if raw is None:
        return ()
    if not isinstance(raw, MarkedMap):
        raise service.error("environment", "must be a list of NAME=value or a mapping")
    out = []
    for name, value in raw.items():
        line = raw.line_of(name, raw.line)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif value is not None and not isinstance(value, str):
            raise service.error("environment", f"{name} must be a single value", line)
        out.append(EnvVar(name, value, line))
        service.lines[f"env:{name}"] = line
    return tuple(out)


def _env_files(service: _Service) -> tuple[str, ...]:
    files = []
    values = service.items("env_file")
    for index, value in enumerate(values):
        if isinstance(value, MarkedMap) and isinstance(value.get("path"), str):
            files.append(value["path"])
        elif isinstance(value, str):
            files.append(value)
        else:
            raise service.error("env_file", "must name files", values.line_at(index))
    return tuple(files)
