"""The plan cache of `hardrun run`: a repeated start skips the flag parser and resolution.

A start whose command line hardrun has resolved before, in the same circumstances, reads
the resolved plan (the RunSpec and config.resolve_fixed's fields) from here instead of
importing and running the flag parser and the resolver. The plan is then completed and
applied by the very code a first start uses (config.complete, parent.run): the cache
holds data, never a second way of applying it.

Key: the sha256 of this format's version, the Python version, hardrun's own location,
the caller's ids and umask, the current directory, the command line and the whole
environment but a shell's OLDPWD, _ and SHLVL. An entry also records what its plan was
resolved from, checked on every read: each hardrun module the resolution loaded (path,
size, times, inode: an edited or upgraded hardrun misses), the root file system as named
and as resolved (its inode and times), the container's /etc/passwd and /etc/group as the
resolver opens them, each bind source and a seccomp profile file. config.complete still
computes on every start the container's id, host name, environment and id range and
what it reads from the host (sysctls, the thermal paths); the policy file (.hardrun.yaml)
is looked for on every start and, when there is one, the plan is not used.

Only plans that nothing else decides are stored (`storable`): no image, run config,
policy, env file, device, sysctl, LSM option, OOM score, shared user namespace, bridge
network, --dry-run or seccomp watch. Entries are trusted as seccomp_cache trusts its
files (a directory chain only we can write, our own regular file, mode 0600, never
through a symbolic link, the key and sha256 of the body in the header), and the body is a
closed format: marshal of plain values in which records are tagged with the name of one
of the types _record_types() lists and carry exactly its fields, checked on read. Anything else misses.

At most MAX_ENTRIES entries are kept: storing one more removes the oldest.
HARDRUN_PLAN_CACHE: `off` disables the cache; a directory puts it there.
"""
from __future__ import annotations

import marshal
import os
import sys

from . import seccomp_cache
from .seccomp_cache import sha256

FORMAT = b"hardrun-run-plan 1"
ENV = "HARDRUN_PLAN_CACHE"
_MAX_ENTRY = 1 << 20
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cache_dir() -> str | None:
    """Where entries live (None: the cache is off)."""
    chosen = os.environ.get(ENV)
    if chosen == "off":
        return None
    if chosen:
        return chosen
    return os.path.join(os.path.dirname(seccomp_cache.default_cache_dir()), "plans")


def key_of(argv) -> str | None:
    """The entry name of this command line in these circumstances (None: not cacheable)."""
    try:
        circumstances = (FORMAT, sys.version, _PACKAGE, os.getuid(), os.geteuid(), os.getgid(),
                         os.getegid(), tuple(os.getgroups()), _umask(), os.getcwd(), tuple(argv),
                         tuple(sorted(item for item in os.environ.items() if item[0] not in _SHELL_NOISE)))
        return sha256(marshal.dumps(circumstances)).hexdigest()
    except (OSError, ValueError):   # a removed current directory, an unencodable word
        return None


# variables a shell changes between two identical commands, which nothing in hardrun reads
_SHELL_NOISE = frozenset({"OLDPWD", "_", "SHLVL"})


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# -- reading ---------------------------------------------------------------------------

class Entry:
    __slots__ = ("spec", "fixed", "options")

    def __init__(self, spec, fixed: dict, options: dict):
        self.spec, self.fixed, self.options = spec, fixed, options


def lookup(directory: str, key: str) -> Entry | None:
    """The plan stored under `key`, if it passes every check and is still current."""
    data = _read_entry(directory, key)
    if data is None:
        return None
    try:
        body = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    if not (isinstance(body, tuple) and len(body) == 4 and isinstance(body[0], list)):
        return None
    depends, spec, fixed, options = body
    try:
        if not all(_still(item) for item in depends):
            return None
    except (OSError, ValueError):   # e.g. a path the system refuses: not current
        return None
    try:
        spec, fixed, options = decode(spec), decode(fixed), decode(options)
    except ValueError:
        return None
    if not (type(spec).__name__ == "RunSpec" and isinstance(fixed, dict) and _fixed_fields_fit(fixed)
            and isinstance(options, dict) and set(options) == set(OPTION_NAMES)):
        return None
    fixed["spec"] = spec
    return Entry(spec, fixed, options)


def _fixed_fields_fit(fixed: dict) -> bool:
    """Every field RuntimeConfig needs from resolve_fixed, and no other."""
    from .config import PER_START_FIELDS, RuntimeConfig
    from ..spec.record import fields
    own = {item.name: item for item in fields(RuntimeConfig)
           if item.name not in PER_START_FIELDS and item.name != "spec"}
    # a field without a default has neither (both are the same 'missing' marker)
    required = {name for name, item in own.items() if item.default is item.default_factory}
    return required <= fixed.keys() <= own.keys()


def _read_entry(directory: str, key: str) -> bytes | None:
    data = seccomp_cache.read_entry(os.path.join(directory, key + ".plan"), _MAX_ENTRY)
    if data is None:
        return None
    # the directory last: a file of ours in a directory others could write is not ours
    if not seccomp_cache.usable_cache_dir(directory):
        return None
    header, newline, body = data.partition(b"\n")
    if not newline or header != b" ".join((FORMAT, key.encode(), sha256(body).hexdigest().encode())):
        return None
    return body


def _still(item) -> bool:
    """Is this recorded fact of the resolution still true?"""
    if not (isinstance(item, tuple) and len(item) == 3 and isinstance(item[1], str)):
        return False
    kind, path, recorded = item
    if kind == "file":
        return _file_stamp(path) == recorded
    if kind == "realpath":
        return os.path.realpath(path) == recorded
    if kind == "in-root":
        root, _, inside = path.partition("\0")
        return _in_root_stamp(root, inside) == recorded
    return False


def _file_stamp(path: str):
    try:
        return _stamp(os.stat(path))
    except OSError:
        return None


def _stamp(info: os.stat_result) -> tuple:
    """What tells a file changed or replaced: its device, inode, mode, size and times."""
    return (info.st_dev, info.st_ino, info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _in_root_stamp(root: str, path: str):
    """The stamp of `path` as the resolver opens it: inside `root`, never above it."""
    from .syscalls import O_PATH, RESOLVE_IN_ROOT, openat2
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        where = openat2(root_fd, path, O_PATH | os.O_CLOEXEC, RESOLVE_IN_ROOT)
    except OSError:
        return None
    else:
        info = os.fstat(where)
        os.close(where)
        return _stamp(info)
    finally:
        os.close(root_fd)


# -- writing ---------------------------------------------------------------------------

def storable(spec, options, fixed: dict) -> bool:
    """Is the plan decided by the command line, the files stamped and the environment
    alone (nothing else read at resolution that the entry could not check)?"""
    return (not (options.dry_run or options.help or options.config or options.policy
                 or options.seccomp_learn or options.explain or options.explain_json)
            and not (spec.image and not spec.rootfs) and not spec.env_files and not spec.devices
            and not spec.privileged and not spec.sysctls and spec.apparmor is None
            and not spec.selinux_options and spec.oom_score_adj is None
            and "user" in fixed["namespaces"] and fixed["network"] in ("none", "host"))


def store(directory: str, key: str, spec, options, fixed: dict) -> bool:
    """Record the plan (best effort: False when it cannot be written)."""
    if not seccomp_cache.usable_cache_dir(directory):
        return False
    try:
        body = marshal.dumps((_depends(spec, fixed), encode(spec),
                              encode({name: value for name, value in fixed.items() if name != "spec"}),
                              encode({name: getattr(options, name) for name in OPTION_NAMES})))
    except (ValueError, OSError):
        return False
    header = b" ".join((FORMAT, key.encode(), sha256(body).hexdigest().encode()))
    if not seccomp_cache.write_entry(directory, key + ".plan", header + b"\n" + body):
        return False
    _prune(directory)
    return True


MAX_ENTRIES = 512   # a script starting containers with ever new words must not fill the disk


def _prune(directory: str, keep: int = MAX_ENTRIES) -> None:
    """Remove the oldest entries beyond `keep` (a removed entry only means one slower start)."""
    try:
        entries = [entry for entry in os.scandir(directory) if entry.name.endswith(".plan")]
        if len(entries) <= keep:
            return
        entries.sort(key=lambda entry: entry.stat(follow_symlinks=False).st_mtime_ns)
        for entry in entries[:len(entries) - keep]:
            os.unlink(entry.path)
    except OSError:
        pass


# hardrun run's own options a stored plan keeps (storable() refuses the others when set)
OPTION_NAMES = ("limits", "tty", "interactive", "dry_run", "seccomp_learn", "explain", "explain_json")


def _depends(spec, fixed: dict) -> list:
    """What the resolution read, each as a fact _still() checks."""
    facts = [("file", path, _file_stamp(path)) for path in _loaded_modules()]
    root = fixed["rootfs"] or "/"
    if spec.rootfs:
        facts.append(("realpath", spec.rootfs, fixed["rootfs"] or "/"))
    facts.append(("file", root, _file_stamp(root)))
    for inside in ("/etc/passwd", "/etc/group"):
        facts.append(("in-root", f"{root}\0{inside}", _in_root_stamp(root, inside)))
    for plan in fixed["mounts"]:
        if plan.kind == "bind":
            facts.append(("file", plan.source, _file_stamp(plan.source)))
    if fixed["seccomp"] not in (None, "default"):
        facts.append(("file", fixed["seccomp"], _file_stamp(fixed["seccomp"])))
    return facts


def _loaded_modules() -> list[str]:
    """The source files of every hardrun module loaded so far (the resolution's code)."""
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(_PACKAGE + os.sep):
            found.append(path)
    return sorted(found)


# -- the closed format -----------------------------------------------------------------
# A value is None, a bool, int, float or str, or a tagged tuple: ("t", [values]) a tuple,
# ("l", [values]) a list, ("f", [values]) a frozenset, ("d", [(str, value)…]) a dict,
# ("r", name, [(field, value)…]) a record of RECORD_TYPES with exactly its fields.

def _record_types() -> dict:
    from ..spec.run import EnvVar, Mount, Port, RunSpec, Ulimit
    from .mounts import MountPlan
    from .userns import User
    return {cls.__name__: cls for cls in (RunSpec, Mount, Port, EnvVar, Ulimit, MountPlan, User)}


def _field_names(cls) -> tuple:
    names = getattr(cls, "__record_names__", None)
    return tuple(names) if names is not None else cls.__slots__


def encode(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return ("t", [encode(item) for item in value])
    if isinstance(value, list):
        return ("l", [encode(item) for item in value])
    if isinstance(value, frozenset):
        return ("f", sorted((encode(item) for item in value), key=repr))
    if isinstance(value, dict):
        return ("d", [(key, encode(item)) for key, item in value.items() if _is_str(key)])
    cls = type(value)
    if _record_types().get(cls.__name__) is not cls:
        raise ValueError(f"not storable: {cls.__name__}")
    return ("r", cls.__name__, [(name, encode(getattr(value, name))) for name in _field_names(cls)])


def _is_str(key) -> bool:
    if not isinstance(key, str):
        raise ValueError("dict keys must be strings")
    return True


def decode(value, types=None):
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is not tuple or not value or value[0] not in ("t", "l", "f", "d", "r"):
        raise ValueError("unknown value")
    tag = value[0]
    if tag == "r":
        return _decode_record(value, types if types is not None else _record_types())
    if len(value) != 2 or type(value[1]) is not list:
        raise ValueError("malformed container")
    if tag == "d":
        if not all(type(pair) is tuple and len(pair) == 2 and type(pair[0]) is str for pair in value[1]):
            raise ValueError("malformed dict")
        return {key: decode(item, types) for key, item in value[1]}
    items = [decode(item, types) for item in value[1]]
    return tuple(items) if tag == "t" else items if tag == "l" else frozenset(items)


def _decode_record(value, types: dict):
    if len(value) != 3 or type(value[1]) is not str or type(value[2]) is not list:
        raise ValueError("malformed record")
    cls = types.get(value[1])
    if cls is None:
        raise ValueError(f"unknown record {value[1]!r}")
    pairs = value[2]
    if not all(type(pair) is tuple and len(pair) == 2 for pair in pairs) \
            or tuple(pair[0] for pair in pairs) != _field_names(cls):
        raise ValueError(f"{value[1]}: fields differ")
    return cls(**{name: decode(item, types) for name, item in pairs})
