"""The seccomp profile model and its loaders (Docker's JSON profile format, or the same data as YAML).

A profile is validated completely when it is loaded: an unknown action, operator,
architecture or capability, or a value of the wrong type, is a `UsageError` naming the
file, the line and the JSON path of the entry (`syscalls[12].action`). Nothing here
imports libseccomp: resolving a profile for a container's capabilities is plain Python,
so a cached filter can be found without loading the compiler.
"""
from __future__ import annotations

import os

from ..errors import UsageError
from ..spec.capabilities import known_capability as capability_name
from ..spec.record import dataclass
from .seccomp_platform import ARCHITECTURES, kernel_version, native_arch, normalized_capabilities

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any, Iterable

# Action names of the profile format and their seccomp return values (errno/trace data is
# or-ed in later). SCMP_ACT_KILL is libseccomp's old name for killing the thread.
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_ACTIONS_WITH_DATA = {"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"}
_EPERM = 1

OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")

# Go-style architecture names accepted by includes/excludes.arches.
_FILTER_ARCH_NAMES = set(ARCHITECTURES.values()) | {"386", "loongarch64"}

# Flags of seccomp(SECCOMP_SET_MODE_FILTER). TSYNC is accepted and ignored: the filter is
# loaded by a single-threaded child.
LOAD_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 0, "SECCOMP_FILTER_FLAG_LOG": 2,
              "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}


@dataclass(frozen=True)
class ArgCondition:
    """One comparison on a syscall argument. For MASKED_EQ, `value` is the mask."""
    index: int
    value: int
    value_two: int
    op: str


@dataclass(frozen=True)
class Condition:
    """The `includes`/`excludes` of a rule: capabilities, Go architecture names, kernel."""
    caps: tuple = ()
    arches: tuple = ()
    min_kernel: tuple | None = None


@dataclass(frozen=True)
class SyscallRule:
    names: tuple
    action: str
    errno_ret: int | None
    args: tuple
    includes: Condition
    excludes: Condition
    where: str                  # the JSON path of the rule, e.g. "syscalls[3]"
    comment: str = ""           # the rule's own comment, for explanations

    def applies(self, caps: frozenset, arch: str, kernel: tuple) -> bool:
        """Docker's rule selection: every `includes` must hold, no `excludes` may."""
        exc, inc = self.excludes, self.includes
        if exc.arches and arch in exc.arches:
            return False
        if any(cap in caps for cap in exc.caps):
            return False
        if exc.min_kernel is not None and kernel >= exc.min_kernel:
            return False
        if inc.arches and arch not in inc.arches:
            return False
        if not all(cap in caps for cap in inc.caps):
            return False
        return inc.min_kernel is None or kernel >= inc.min_kernel


@dataclass(frozen=True)
class ResolvedRule:
    """A rule for one syscall after includes/excludes: what libseccomp is given."""
    name: str
    action: int
    args: tuple
    where: str


@dataclass(frozen=True)
class ResolvedFilter:
    """A profile applied to one set of capabilities on one architecture."""
    default_action: int
    arches: tuple               # libseccomp names, the native one first
    rules: tuple

    def canonical(self) -> str:
        """A stable text of everything that decides the compiled BPF."""
        import json

        rules = [[r.name, r.action, [[a.index, a.value, a.value_two, a.op] for a in r.args]]
                 for r in self.rules]
        return json.dumps({"default": self.default_action, "arches": list(self.arches),
                           "rules": rules}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class SeccompProfile:
    """A loaded, validated profile (Docker's format): resolve it for a container's caps."""
    default_action: str
    default_errno_ret: int | None
    architectures: tuple
    arch_map: tuple
    syscalls: tuple
    flags: tuple = ()
    source: str | None = None

    def canonical(self) -> str:
        """A stable text of the profile's meaning (JSON and YAML forms of it give the same)."""
        import json

        def condition(c):
            return [list(c.caps), list(c.arches), list(c.min_kernel or ())]
        rules = [[list(r.names), r.action, r.errno_ret,
                  [[a.index, a.value, a.value_two, a.op] for a in r.args],
                  condition(r.includes), condition(r.excludes)] for r in self.syscalls]
        return json.dumps([self.default_action, self.default_errno_ret, list(self.architectures),
                           [[arch, list(subs)] for arch, subs in self.arch_map], rules,
                           list(self.flags)], separators=(",", ":"))

    @property
    def load_flags(self) -> int:
        """The flags to pass to seccomp(SECCOMP_SET_MODE_FILTER) for this profile."""
        value = 0
        for flag in self.flags:
            value |= LOAD_FLAGS[flag]
        return value

    def filter_arches(self, native: str) -> tuple:
        """The native architecture first, then the ones the profile adds (Docker's archMap)."""
        arches = [native]
        if self.architectures:
            extra = list(self.architectures)
        else:
            extra = [sub for arch, subs in self.arch_map if arch == native for sub in subs]
        for arch in extra:
            if arch not in arches:
                arches.append(arch)
        return tuple(arches)

    def resolve(self, capabilities: Iterable[str] = (), arch: str = "native",
                kernel: tuple | None = None) -> ResolvedFilter:
        """The rules that apply to a container with these effective capabilities."""
        native = native_arch() if arch == "native" else arch
        caps = frozenset(normalized_capabilities(capabilities))
        kernel = kernel_version() if kernel is None else kernel
        go_arch = ARCHITECTURES[native]
        rules: dict = {}
        for rule in self.syscalls:
            if not rule.applies(caps, go_arch, kernel):
                continue
            action = action_value(rule.action, rule.errno_ret)
            for name in rule.names:
                rules.setdefault((name, action, rule.args), ResolvedRule(name, action, rule.args, rule.where))
        default = action_value(self.default_action, self.default_errno_ret)
        # by name, each call's rules in the profile's order (the first unconditional one wins)
        ordered = sorted(rules.values(), key=lambda r: r.name)
        return ResolvedFilter(default, self.filter_arches(native), tuple(ordered))


def action_value(action: str, errno_ret: int | None) -> int:
    """The seccomp return value of an action; ERRNO without errnoRet means EPERM (as runc)."""
    value = ACTIONS[action]
    if action in _ACTIONS_WITH_DATA:
        value |= (_EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


# ---------------------------------------------------------------- parsing and validation


class _Invalid(Exception):
    """A validation failure at a JSON path; turned into a located UsageError by the loader."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


def parse_profile(text: str, *, path: str = "<profile>", fmt: str | None = None) -> SeccompProfile:
    """A profile from JSON or YAML text (`fmt` "json"/"yaml"; None guesses from the text)."""
    from ..parsing.seccomp_file import parse_profile_text
    return _validated(*parse_profile_text(text, path=path, fmt=fmt), path)


def load_profile(path: str | os.PathLike) -> SeccompProfile:
    """Read a profile file; `.yaml`/`.yml` are YAML, anything else is sniffed."""
    from ..parsing.seccomp_file import read_profile
    name = os.fspath(path)
    return _validated(*read_profile(name), name)


def _validated(data, locate, path: str) -> SeccompProfile:
    try:
        return _profile_from_data(data, path)
    except _Invalid as error:
        json_path = _format_path(error.path)
        raise UsageError(f"{json_path}: {error.message}" if json_path else error.message,
                         path=path, line=locate(error.path)) from None


def _format_path(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


_PROFILE_KEYS = {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls",
                 "flags", "comment", "listenerPath", "listenerMetadata"}
_RULE_KEYS = {"names", "name", "action", "errnoRet", "args", "includes", "excludes", "comment"}
_ARG_KEYS = {"index", "value", "valueTwo", "op"}
_CONDITION_KEYS = {"caps", "arches", "minKernel"}
_ARCHMAP_KEYS = {"architecture", "subArchitectures"}


def _profile_from_data(data: Any, source: str) -> SeccompProfile:
    root = _mapping(data, (), _PROFILE_KEYS)
    for key in ("listenerPath", "listenerMetadata"):
        if root.get(key):
            raise _Invalid((key,), "seccomp user notification (a listener) is not supported")
    default_action = _action(root.get("defaultAction"), ("defaultAction",), required=True)
    default_errno = _optional_int(root, "defaultErrnoRet", (), 0, 0xFFFF)
    architectures = tuple(_arch(a, ("architectures", i))
                          for i, a in enumerate(_list(root.get("architectures"), ("architectures",))))
    arch_map = tuple(_arch_map_entry(entry, ("archMap", i))
                     for i, entry in enumerate(_list(root.get("archMap"), ("archMap",))))
    if architectures and arch_map:
        raise _Invalid(("archMap",), "use either architectures or archMap, not both")
    flags = tuple(_flag(f, ("flags", i)) for i, f in enumerate(_list(root.get("flags"), ("flags",))))
    rules = tuple(_rule(rule, ("syscalls", i))
                  for i, rule in enumerate(_list(root.get("syscalls"), ("syscalls",))))
    return SeccompProfile(default_action, default_errno, architectures, arch_map, rules, flags, source)


def _mapping(value: Any, path: tuple, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise _Invalid(path, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            raise _Invalid(path + (str(key),), f"unknown key {key!r} (expected one of: {expected})")
    return value


def _list(value: Any, path: tuple) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(path, f"expected a list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _string(value: Any, path: tuple) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"expected a string, got {_kind(value)}")
    return value


def _int(value: Any, path: tuple, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(path, f"expected an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise _Invalid(path, f"{value} is out of range {low}..{high}")
    return value


def _optional_int(mapping: dict, key: str, path: tuple, low: int, high: int) -> int | None:
    if mapping.get(key) is None:
        return None
    return _int(mapping[key], path + (key,), low, high)


def _action(value: Any, path: tuple, required: bool = False) -> str:
    if value is None and required:
        raise _Invalid(path, "missing action")
    name = _string(value, path)
    if name not in ACTIONS:
        if name == "SCMP_ACT_NOTIFY":
            raise _Invalid(path, "SCMP_ACT_NOTIFY (user notification) is not supported")
        raise _Invalid(path, f"unknown action {name!r} (expected one of: {', '.join(ACTIONS)})")
    return name


def _arch(value: Any, path: tuple) -> str:
    name = _string(value, path)
    if name not in ARCHITECTURES:
        raise _Invalid(path, f"unknown architecture {name!r} (expected SCMP_ARCH_X86_64, SCMP_ARCH_X86, …)")
    return name


def _arch_map_entry(value: Any, path: tuple) -> tuple[str, tuple[str, ...]]:
    entry = _mapping(value, path, _ARCHMAP_KEYS)
    arch = _arch(entry.get("architecture"), path + ("architecture",))
    subs = _list(entry.get("subArchitectures"), path + ("subArchitectures",))
    return arch, tuple(_arch(sub, path + ("subArchitectures", i)) for i, sub in enumerate(subs))


def _flag(value: Any, path: tuple) -> str:
    name = _string(value, path)
    if name not in LOAD_FLAGS:
        raise _Invalid(path, f"unsupported flag {name!r} (expected one of: {', '.join(LOAD_FLAGS)})")
    return name


def _rule(value: Any, path: tuple) -> SyscallRule:
    rule = _mapping(value, path, _RULE_KEYS)
    names = _rule_names(rule, path)
    action = _action(rule.get("action"), path + ("action",), required=True)
    errno_ret = _optional_int(rule, "errnoRet", path, 0, 0xFFFF)
    if errno_ret is not None and action not in _ACTIONS_WITH_DATA:
        raise _Invalid(path + ("errnoRet",),
                       f"errnoRet only applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {action}")
    args = tuple(_arg(arg, path + ("args", i))
                 for i, arg in enumerate(_list(rule.get("args"), path + ("args",))))
    includes = _condition(rule.get("includes"), path + ("includes",))
    excludes = _condition(rule.get("excludes"), path + ("excludes",))
    comment = rule.get("comment")
    return SyscallRule(names, action, errno_ret, args, includes, excludes, _format_path(path),
                       comment if isinstance(comment, str) else "")


def _rule_names(rule: dict, path: tuple) -> tuple[str, ...]:
    names = [_string(n, path + ("names", i)) for i, n in enumerate(_list(rule.get("names"), path + ("names",)))]
    if rule.get("name") is not None:
        names.append(_string(rule["name"], path + ("name",)))
    if not names:
        raise _Invalid(path, "a rule needs `names` (or `name`)")
    for i, name in enumerate(names):
        if not name or name[0].isdigit() or not set(name) <= _NAME_CHARACTERS:
            raise _Invalid(path + ("names", i), f"{name!r} is not a syscall name")
    return tuple(names)


_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _arg(value: Any, path: tuple) -> ArgCondition:
    arg = _mapping(value, path, _ARG_KEYS)
    for key in ("index", "value", "op"):
        if arg.get(key) is None:
            raise _Invalid(path, f"missing {key!r}")
    index = _int(arg["index"], path + ("index",), 0, 5)
    number = _int(arg["value"], path + ("value",), 0, 2**64 - 1)
    two = _int(arg.get("valueTwo", 0), path + ("valueTwo",), 0, 2**64 - 1)
    op = _string(arg["op"], path + ("op",))
    if op not in OPERATORS:
        raise _Invalid(path + ("op",), f"unknown operator {op!r} (expected one of: {', '.join(OPERATORS)})")
    return ArgCondition(index, number, two, op)


def _condition(value: Any, path: tuple) -> Condition:
    if value is None:
        return Condition()
    cond = _mapping(value, path, _CONDITION_KEYS)
    caps = []
    for i, cap in enumerate(_list(cond.get("caps"), path + ("caps",))):
        name = capability_name(_string(cap, path + ("caps", i)))
        if name is None:
            raise _Invalid(path + ("caps", i), f"unknown capability {cap!r}")
        caps.append(name)
    arches = []
    for i, arch in enumerate(_list(cond.get("arches"), path + ("arches",))):
        name = _string(arch, path + ("arches", i))
        if name not in _FILTER_ARCH_NAMES:
            raise _Invalid(path + ("arches", i), f"unknown architecture {name!r} (expected amd64, x86, arm64, …)")
        arches.append("loong64" if name == "loongarch64" else "x86" if name == "386" else name)
    min_kernel = None
    if cond.get("minKernel") is not None:
        text = _string(cond["minKernel"], path + ("minKernel",))
        parts = text.split(".")
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
            raise _Invalid(path + ("minKernel",), f"expected a kernel version like \"4.8\", got {text!r}")
        min_kernel = (int(parts[0]), int(parts[1]))
    return Condition(tuple(caps), tuple(arches), min_kernel)
