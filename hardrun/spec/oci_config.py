"""The one decoder of an OCI runtime `config.json`: `decode(document, locate)` -> the frozen
`OciConfig` record that both readers map (docs/architecture.md, "One OCI reader"): the
audit's (hardrun/frontends/oci.py: a RunSpec with lines) and hardrun-oci's
(hardrun/runtime/bundle.py: the runtime plan), so that `hardrun-oci create` decodes once
for its policy gate and its loader.

`OciFields` is the typed access, with one wording for what is wrong with a field, named by
its JSON path (`linux.namespaces[2].type: expected a string`). Plain JSON values only (what
`json`/`hardrun.jsonlite` decode, or the YAML loader's marked dicts and lists): no `json`,
no `re`, so that hardrun-oci's `create` imports nothing more for it.
"""
from __future__ import annotations

from .oci import CAPABILITY_SETS
from .record import dataclass, field, replace

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any, Callable, Collection, NoReturn

    from .json_lines import JsonLocator

# An unsupported key set to one of these asks for nothing (`"intelRdt": {}`, `"domainname": ""`).
EMPTY_VALUES: tuple = (None, "", [], {}, 0, False)
EXPECTED = {dict: "an object", list: "an array", str: "a string", bool: "true or false"}


class OciFieldError(ValueError):
    """A field of config.json that is malformed, unknown or not supported (`where`: its JSON path)."""

    def __init__(self, where: str, message: str, line: int | None = None):
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
        self.line = line        # in the text decoded, when the decoder was given a locator


def json_path(where: str, document: Any) -> tuple:
    """`where` (`linux.namespaces[2].type`) as the parts of a JSON path into `document`
    (`("linux", "namespaces", 2, "type")`). Keys may hold dots (`annotations.io.k8s.x`):
    the longest key of the object at hand that fits is taken. Stops at what the document
    does not hold (a line of the nearest enclosing value is then the best there is)."""
    parts: list = []
    node, rest = document, where
    while rest:
        if rest.startswith("[") and isinstance(node, list):
            index, _, rest = rest[1:].partition("]")
            if not index.isdigit() or int(index) >= len(node):
                break
            parts.append(int(index))
            node = node[int(index)]
        elif isinstance(node, dict):
            keys = [key for key in node if isinstance(key, str) and
                    (rest == key or rest.startswith((key + ".", key + "[")))]
            if not keys:
                break
            key = max(keys, key=len)
            parts.append(key)
            node, rest = node[key], rest[len(key):]
        else:
            break
        rest = rest[1:] if rest.startswith(".") else rest
    return tuple(parts)


class TextLocator:
    """`locate` for a document decoded by `json`: the line of a JSON path in the text it was
    decoded from (None without one: a config taken from a container's state). The text is
    read on the first call only, which a reader makes only for a field at fault."""

    def __init__(self, document: dict, text: str | None):
        self.document, self.text = document, text
        self.found: JsonLocator | None = None

    def __call__(self, where: str) -> int | None:
        if self.text is None:
            return None
        if self.found is None:
            from .json_lines import JsonLocator
            self.found = JsonLocator(self.text)
        return self.found.line_of(json_path(where, self.document))


def child_path(where: str, key: str) -> str:
    """The JSON path of `key` inside the object at `where` ("" is the document)."""
    return f"{where}.{key}" if where else key


def key_refusal(key: str, value: Any, allowed: Collection[str], unsupported: Collection[str]) -> str | None:
    """Why an object's `key` is refused (None: it is not): unknown, or known but not
    applicable by hardrun and set to more than an empty value."""
    if key in allowed or (key in unsupported and value in EMPTY_VALUES):
        return None
    return "not supported by hardrun" if key in unsupported else "unknown field"


class OciFields:
    """The typed access of a config.json reader; `fail` is where a reader's own error is raised."""

    def fail(self, where: str, message: str) -> NoReturn:
        raise OciFieldError(where, message)

    def take(self, parent: Any, where: str, allowed: Collection[str], unsupported: Collection[str] = ()) -> dict:
        """`parent` checked to be an object with only known keys; a key hardrun knows but
        cannot apply is an error when set to anything but an empty value."""
        if not isinstance(parent, dict):
            self.fail(where, "expected an object")
        for key, value in parent.items():
            refusal = key_refusal(key, value, allowed, unsupported)
            if refusal is not None:
                self.fail(child_path(where, key), refusal)
        return parent

    def typed(self, value: Any, kind: type, where: str) -> Any:
        """`value` checked to be of `kind` (int excludes true and false), or None when absent."""
        if value is None:
            return None
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(where, "expected an integer")
        if kind is not int and not isinstance(value, kind):
            self.fail(where, f"expected {EXPECTED.get(kind, kind.__name__)}")
        return value

    def strings(self, value: Any, where: str) -> list[str]:
        """An array of strings (none holding a NUL byte), or [] when absent."""
        items = self.typed(value, list, where) or []
        for item in items:
            if not isinstance(item, str) or "\0" in item:
                self.fail(where, "expected strings without NUL bytes")
        return items

    def paths(self, value: Any, where: str) -> list[str]:
        """An array of absolute paths, or [] when absent."""
        items = self.strings(value, where)
        for item in items:
            if not item.startswith("/"):
                self.fail(where, f"{item!r} is not an absolute path")
        return items


# -- the record ---------------------------------------------------------------------------
# What a reader of config.json reads, in OCI's terms. Each value is checked for its type
# only (the typed access above); what a value may be (an absolute cwd, a known capability,
# a namespace type) is each reader's to judge. `where` is the JSON path of an entry in an
# array, for its line (`locate`) and its errors. None: the field is absent.

@dataclass(frozen=True)
class OciUser:
    uid: int | None
    gid: int | None
    additional_gids: tuple | None       # raw items (the runtime checks each)
    umask: int | None


@dataclass(frozen=True)
class OciRlimit:
    where: str
    type: str | None
    soft: int | None
    hard: int | None


@dataclass(frozen=True)
class OciProcess:
    terminal: Any                       # as written: true makes a terminal
    user: OciUser | None
    args: tuple | None                  # raw items: the audit reads any, the runtime strings only
    env: tuple
    cwd: str | None
    capabilities: dict | None           # set name -> raw items, for the sets present; None: no object
    rlimits: tuple                      # OciRlimit
    no_new_privileges: bool | None
    oom_score_adj: int | None
    apparmor_profile: str | None
    selinux_label: str | None


@dataclass(frozen=True)
class OciMount:
    where: str
    destination: str | None
    type: str | None
    source: str | None
    options: tuple                      # raw items, as `args`


@dataclass(frozen=True)
class OciNamespace:
    where: str
    type: Any                           # raw: an unknown type is each reader's to judge
    path: str | None


@dataclass(frozen=True)
class OciIdMapping:
    where: str
    container_id: int | None
    host_id: int | None
    size: int | None


@dataclass(frozen=True)
class OciDevice:
    where: str
    path: str | None
    type: Any
    major: Any
    minor: Any


@dataclass(frozen=True)
class OciResources:
    devices: tuple                      # the device cgroup's rules, raw objects (each reader reads its own)
    memory_limit: int | None
    memory_swap: int | None
    cpu_shares: int | None
    cpu_quota: int | None
    cpu_period: int | None
    pids_limit: int | None
    block_io: dict | None               # raw: the runtime's cgroup code knows its throttles


@dataclass(frozen=True)
class OciLinux:
    namespaces: tuple | None            # OciNamespace; None: no `namespaces` key
    uid_mappings: tuple                 # OciIdMapping
    gid_mappings: tuple
    cgroups_path: str | None
    resources: OciResources
    rootfs_propagation: str | None
    seccomp: dict | None                # raw: the seccomp reader's
    masked_paths: tuple | None          # None: no such key
    readonly_paths: tuple | None
    devices: tuple                      # OciDevice
    sysctl: dict


@dataclass(frozen=True)
class OciHook:
    where: str
    path: str | None
    args: tuple
    env: tuple
    timeout: int | None


@dataclass(frozen=True)
class OciConfig:
    """A config.json decoded once: what both the audit (frontends/oci.py) and hardrun-oci
    (runtime/bundle.py) read of it. `document` is the decoded object itself (for a
    reader's own judgements of the raw values), `locate(where)` the line of a JSON path,
    `problems` the values of the wrong type (left out of the record, in the order read),
    `unknown` the keys hardrun does not know or cannot apply (OciFieldErrors without a line,
    in the order read): hardrun-oci refuses them, the audit ignores them."""
    document: dict = field(compare=False)
    locate: Callable = field(compare=False)
    version: str | None
    process: OciProcess | None
    root: dict | None                   # {"path", "readonly"} typed; None: no root object
    hostname: str | None
    mounts: tuple | None                # OciMount; None: no `mounts` key
    hooks: dict                         # kind -> tuple of OciHook
    annotations: dict
    linux: OciLinux                     # empty when the document has no `linux` object
    unknown: tuple = ()
    problems: tuple = ()                # values of the wrong type, left out (OciFieldErrors with lines)


# The keys of each object hardrun reads (allowed) and those it knows but cannot apply
# (unsupported: refused unless set to an empty value).
DOCUMENT_KEYS = ({"ociVersion", "root", "process", "hostname", "mounts", "hooks", "annotations", "linux"},
                 {"domainname", "solaris", "windows", "vm", "zos"})
LINUX_KEYS = ({"namespaces", "uidMappings", "gidMappings", "cgroupsPath", "resources", "rootfsPropagation",
               "seccomp", "maskedPaths", "readonlyPaths", "devices", "sysctl"},
              {"mountLabel", "intelRdt", "personality", "timeOffsets"})
PROCESS_KEYS = ({"terminal", "consoleSize", "user", "args", "env", "cwd", "capabilities", "rlimits",
                 "noNewPrivileges", "oomScoreAdj", "apparmorProfile", "selinuxLabel"},
                {"ioPriority", "scheduler", "execCPUAffinity", "commandLine"})
USER_KEYS = ({"uid", "gid", "additionalGids", "umask"}, {"username"})
MOUNT_KEYS = ({"destination", "type", "source", "options"}, {"uidMappings", "gidMappings"})
RESOURCES_KEYS = ({"devices", "memory", "cpu", "pids", "blockIO"}, {"hugepageLimits", "network", "rdma", "unified"})
MEMORY_KEYS = ({"limit", "swap"}, {"reservation", "kernel", "kernelTCP", "swappiness", "disableOOMKiller",
                                   "useHierarchy", "checkBeforeUpdate"})
CPU_KEYS = ({"shares", "quota", "period"}, {"realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle", "burst"})
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
# Hooks that run in the container's namespaces: hardrun would have to run them from inside.
CONTAINER_HOOKS = ("createContainer", "startContainer")


def decode(document: dict, locate: Callable, numbers: Callable | None = None) -> OciConfig:
    """`document` (a config.json decoded: by `json`, or as marked YAML values) as an
    OciConfig. Nothing is raised: a value of the wrong type is left out of the record
    (absent, or an array item skipped) and listed in `problems` (an OciFieldError naming
    its JSON path, with its line from `locate(where)`); unknown and unsupported keys are
    listed in `unknown`. Each reader decides which of them it refuses. `numbers`: how a
    number as read becomes an integer (the audit reads JSON through YAML, where `1e9` is
    text); None takes integers only, as `json` gives them."""
    return _Decoder(locate, numbers).config(document)


def with_linux_decoded(config: OciConfig, locate: Callable) -> OciConfig:
    """`config` after its document's `linux` object was changed in place: that object decoded
    again (its problems and unknown keys in place of the first decode's, which are listed
    last as the decoder reads `linux` last), the rest of the record kept; `locate` the new
    record's."""
    decoder = _Decoder(locate, None)
    linux = decoder.linux(decoder.typed(config.document.get("linux"), dict, "linux") or {})
    return replace(config, locate=locate, linux=linux,
                   unknown=_outside_linux(config.unknown) + tuple(decoder.unknown),
                   problems=_outside_linux(config.problems) + tuple(decoder.problems))


def _outside_linux(errors: tuple) -> tuple:
    return tuple(error for error in errors if error.where != "linux" and not error.where.startswith("linux."))


class _Decoder(OciFields):
    def __init__(self, locate: Callable, numbers: Callable | None):
        self.locate = locate
        self.numbers = numbers
        self.unknown: list[OciFieldError] = []
        self.problems: list[OciFieldError] = []

    def fail(self, where: str, message: str) -> NoReturn:
        raise OciFieldError(where, message, self.locate(where))

    def problem(self, error: OciFieldError) -> None:
        self.problems.append(error)

    def typed(self, value: Any, kind: type, where: str) -> Any:
        if kind is int and self.numbers is not None:
            value = self.numbers(value)
        try:
            return super().typed(value, kind, where)
        except OciFieldError as error:
            self.problem(error)
            return None

    def strings(self, value: Any, where: str) -> list[str]:
        try:
            return super().strings(value, where)
        except OciFieldError as error:
            self.problem(error)
            return []

    def known(self, value: Any, where: str, keys: tuple) -> dict:
        """`value` checked to be an object ({} when absent); its unknown and unsupported keys
        collected."""
        allowed, unsupported = keys
        value = self.typed(value, dict, where) or {}
        for key, item in value.items():
            refusal = key_refusal(key, item, allowed, unsupported)
            if refusal is not None:
                self.unknown.append(OciFieldError(child_path(where, key), refusal))
        return value

    def objects(self, value: Any, where: str, keys: tuple) -> list:
        """(the JSON path, the object) of each item of an array ([] when absent)."""
        found = []
        for index, item in enumerate(self.typed(value, list, where) or []):
            at = f"{where}[{index}]"
            if isinstance(item, dict):
                found.append((at, self.known(item, at, keys)))
            else:
                self.problem(OciFieldError(at, "expected an object", self.locate(at)))
        return found

    def config(self, document: dict) -> OciConfig:
        self.known(document, "", DOCUMENT_KEYS)
        linux = self.typed(document.get("linux"), dict, "linux")
        process = self.typed(document.get("process"), dict, "process")
        root = self.typed(document.get("root"), dict, "root")
        mounts = document.get("mounts")
        return OciConfig(
            document=document, locate=self.locate,
            version=self.typed(document.get("ociVersion"), str, "ociVersion"),
            process=None if process is None else self.process(process),
            root=None if root is None else self.root(root),
            hostname=self.typed(document.get("hostname"), str, "hostname"),
            mounts=None if mounts is None else tuple(self.mount(where, entry) for where, entry in
                                                      self.objects(mounts, "mounts", MOUNT_KEYS)),
            hooks=self.hooks(document.get("hooks")), annotations=self.annotations(document.get("annotations")),
            linux=self.linux(linux or {}), unknown=tuple(self.unknown), problems=tuple(self.problems))

    def root(self, root: dict) -> dict:
        self.known(root, "root", ({"path", "readonly"}, ()))
        return {"path": self.typed(root.get("path"), str, "root.path"),
                "readonly": self.typed(root.get("readonly"), bool, "root.readonly")}

    def process(self, process: dict) -> OciProcess:
        self.known(process, "process", PROCESS_KEYS)
        user = self.typed(process.get("user"), dict, "process.user")
        capabilities = self.typed(process.get("capabilities"), dict, "process.capabilities")
        args = process.get("args")
        return OciProcess(
            terminal=process.get("terminal"), user=None if user is None else self.user(user),
            args=None if args is None else tuple(self.typed(args, list, "process.args") or ()),
            env=tuple(self.strings(process.get("env"), "process.env")),
            cwd=self.typed(process.get("cwd"), str, "process.cwd"),
            capabilities=None if capabilities is None else self.capabilities(capabilities),
            rlimits=tuple(OciRlimit(where, self.typed(entry.get("type"), str, f"{where}.type"),
                                    self.typed(entry.get("soft"), int, f"{where}.soft"),
                                    self.typed(entry.get("hard"), int, f"{where}.hard"))
                          for where, entry in self.objects(process.get("rlimits"), "process.rlimits",
                                                           ({"type", "soft", "hard"}, ()))),
            no_new_privileges=self.typed(process.get("noNewPrivileges"), bool, "process.noNewPrivileges"),
            oom_score_adj=self.typed(process.get("oomScoreAdj"), int, "process.oomScoreAdj"),
            apparmor_profile=self.typed(process.get("apparmorProfile"), str, "process.apparmorProfile"),
            selinux_label=self.typed(process.get("selinuxLabel"), str, "process.selinuxLabel"))

    def user(self, user: dict) -> OciUser:
        self.known(user, "process.user", USER_KEYS)
        groups = self.typed(user.get("additionalGids"), list, "process.user.additionalGids")
        return OciUser(uid=self.typed(user.get("uid"), int, "process.user.uid"),
                       gid=self.typed(user.get("gid"), int, "process.user.gid"),
                       additional_gids=None if groups is None else tuple(
                           group for group in (self.typed(group, int, "process.user.additionalGids")
                                               for group in groups) if group is not None),
                       umask=self.typed(user.get("umask"), int, "process.user.umask"))

    def capabilities(self, capabilities: dict) -> dict:
        self.known(capabilities, "process.capabilities", (set(CAPABILITY_SETS), ()))
        sets = {}
        for name in CAPABILITY_SETS:
            items = self.typed(capabilities.get(name), list, f"process.capabilities.{name}")
            if items is not None:
                sets[name] = tuple(items)
        return sets

    def mount(self, where: str, entry: dict) -> OciMount:
        return OciMount(where, self.typed(entry.get("destination"), str, f"{where}.destination"),
                        self.typed(entry.get("type"), str, f"{where}.type"),
                        self.typed(entry.get("source"), str, f"{where}.source"),
                        tuple(self.typed(entry.get("options"), list, f"{where}.options") or ()))

    def hooks(self, hooks: Any) -> dict:
        hooks = self.known(hooks, "hooks", (set(HOOK_KINDS) - set(CONTAINER_HOOKS), set(CONTAINER_HOOKS)))
        found = {}
        for kind, entries in hooks.items():
            if kind not in HOOK_KINDS:
                continue
            found[kind] = tuple(
                OciHook(where, self.typed(entry.get("path"), str, f"{where}.path"),
                        tuple(self.strings(entry.get("args"), f"{where}.args")),
                        tuple(self.strings(entry.get("env"), f"{where}.env")),
                        self.typed(entry.get("timeout"), int, f"{where}.timeout"))
                for where, entry in self.objects(entries, f"hooks.{kind}", ({"path", "args", "env", "timeout"}, ())))
        return found

    def annotations(self, annotations: Any) -> dict:
        annotations = self.typed(annotations, dict, "annotations") or {}
        for key, value in annotations.items():
            if not isinstance(value, str):
                where = f"annotations.{key}"
                self.problem(OciFieldError(where, "expected a string", self.locate(where)))
        return {key: value for key, value in annotations.items() if isinstance(value, str)}

    def linux(self, linux: dict) -> OciLinux:
        self.known(linux, "linux", LINUX_KEYS)
        namespaces = linux.get("namespaces")
        masked, read_only = linux.get("maskedPaths"), linux.get("readonlyPaths")
        return OciLinux(
            namespaces=None if namespaces is None else tuple(
                OciNamespace(where, entry.get("type"), self.typed(entry.get("path"), str, f"{where}.path"))
                for where, entry in self.objects(namespaces, "linux.namespaces", ({"type", "path"}, ()))),
            uid_mappings=self.id_mappings(linux, "uidMappings"), gid_mappings=self.id_mappings(linux, "gidMappings"),
            cgroups_path=self.typed(linux.get("cgroupsPath"), str, "linux.cgroupsPath"),
            resources=self.resources(linux.get("resources")),
            rootfs_propagation=self.typed(linux.get("rootfsPropagation"), str, "linux.rootfsPropagation"),
            seccomp=self.typed(linux.get("seccomp"), dict, "linux.seccomp"),
            masked_paths=None if masked is None else tuple(self.strings(masked, "linux.maskedPaths")),
            readonly_paths=None if read_only is None else tuple(self.strings(read_only, "linux.readonlyPaths")),
            devices=tuple(OciDevice(where, self.typed(entry.get("path"), str, f"{where}.path"), entry.get("type"),
                                    entry.get("major"), entry.get("minor"))
                          for where, entry in self.objects(linux.get("devices"), "linux.devices", (
                              {"path", "type", "major", "minor", "fileMode", "uid", "gid"}, ()))),
            sysctl=self.typed(linux.get("sysctl"), dict, "linux.sysctl") or {})

    def id_mappings(self, linux: dict, key: str) -> tuple:
        return tuple(OciIdMapping(where, *(self.typed(entry.get(name), int, f"{where}.{name}")
                                           for name in ("containerID", "hostID", "size")))
                     for where, entry in self.objects(linux.get(key), f"linux.{key}",
                                                      ({"containerID", "hostID", "size"}, ())))

    def resources(self, resources: Any) -> OciResources:
        at = "linux.resources"
        resources = self.known(resources, at, RESOURCES_KEYS)
        memory = self.known(resources.get("memory"), f"{at}.memory", MEMORY_KEYS)
        cpu = self.known(resources.get("cpu"), f"{at}.cpu", CPU_KEYS)
        pids = self.known(resources.get("pids"), f"{at}.pids", ({"limit"}, ()))
        return OciResources(
            devices=tuple(self.typed(resources.get("devices"), list, f"{at}.devices") or ()),
            memory_limit=self.typed(memory.get("limit"), int, f"{at}.memory.limit"),
            memory_swap=self.typed(memory.get("swap"), int, f"{at}.memory.swap"),
            cpu_shares=self.typed(cpu.get("shares"), int, f"{at}.cpu.shares"),
            cpu_quota=self.typed(cpu.get("quota"), int, f"{at}.cpu.quota"),
            cpu_period=self.typed(cpu.get("period"), int, f"{at}.cpu.period"),
            pids_limit=self.typed(pids.get("limit"), int, f"{at}.pids.limit"),
            block_io=self.typed(resources.get("blockIO"), dict, f"{at}.blockIO"))
