"""The RunSpec that parsed `docker run` / `hardrun run` options ask for, with Docker's
semantics.

`runspec_from_args` applies each option through the handler its flag's row names
(docker_flags.FLAGS): a handler reads the value and sets RunSpec fields on a `_Builder`,
which remembers the line each setting came from and, when auditing, the fields set to
values it cannot know. The runtime's rules for -v, --mount and --tmpfs are here too;
value syntaxes shared with the other front ends (sizes, ports, -v, --tmpfs,
--security-opt) live in parsing/runvalues.py.

On `hardrun run`'s start-up path: standard library only, and only cheap modules at
import time (no `re`, no `dataclasses` module).
"""
from __future__ import annotations

from ..errors import UsageError
from ..spec.capabilities import NAMES as CAPABILITIES
from ..spec.capabilities import normalize_capability
from ..spec.run import EnvVar, Mount, RunSpec, Ulimit

_runvalues = None


def _values():
    """runvalues.py (the value syntaxes), imported on first use: a command line of only
    path, name and id flags (`hardrun run --rootfs DIR -- CMD`) never needs it."""
    global _runvalues
    if _runvalues is None:
        from ..parsing import runvalues
        _runvalues = runvalues
    return _runvalues


ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
HARDRUN_NETWORKS = ("none", "host", "bridge[:NAME]")


def parse_bool(text: str, name: str, *, strict: bool = True) -> bool | None:
    """Go's strconv.ParseBool, as pflag uses it; None for a non-boolean when not strict."""
    state = _values().parse_go_bool(text)
    if state is None and strict:
        raise UsageError(f"invalid value {text!r} for --{name}: expected true or false")
    return state


def runspec_from_args(parsed, *, kind: str, path: str | None = None,
                      line: int | None = None, subject: str | None = None,
                      hardrun_mode: bool = False, word_lines=None) -> RunSpec:
    """The RunSpec the options of `parsed` (a docker_argv.ParsedRun) ask for, with Docker's
    semantics.

    hardrun_mode: values are checked strictly (UsageError), --env-file files are read,
    and the first positional is the command. Otherwise (auditing) a value that cannot be
    understood or holds an unresolved `$VAR` marks its field as set-but-unknown
    (RunSpec.unresolved) instead of failing. `word_lines[i]` is the source line of argv
    word i, so each setting remembers its line.
    """
    builder = _Builder(path, line, hardrun_mode, word_lines)
    for option in parsed.options:
        handler = option.flag.handler
        if handler is not None:
            builder.applying(option.index, option.flag.name)
            try:
                handler(builder, option.value)
            except ValueError as error:
                builder.invalid(option, str(error))
    if not hardrun_mode and parsed.image is not None and word_lines is not None:
        builder.lines["image"] = _line_at(word_lines, parsed.args_index, line)
    fields = builder.finish()
    if hardrun_mode:
        _check_memory_swap(fields)
    fields.update(kind=kind, path=path, line=line, subject=subject, image=parsed.image,
                  command=tuple(parsed.command))
    return RunSpec(**fields)


def _check_memory_swap(fields: dict) -> None:
    """Docker's rule: --memory-swap needs --memory, and is at least as large."""
    swap, memory = fields.get("memory_swap"), fields.get("memory")
    if swap is None or swap == -1:
        return
    if memory is None:
        raise UsageError("--memory-swap needs --memory (it limits memory plus swap)")
    if swap < memory:
        raise UsageError("--memory-swap must be at least --memory (it limits memory plus swap)")


def _line_at(word_lines, index: int, default: int | None) -> int | None:
    if word_lines is None or index >= len(word_lines):
        return default
    return word_lines[index]


class _Builder:
    """Collects RunSpec fields, their lines and unresolved names while options are applied."""

    def __init__(self, path, line, hardrun_mode, word_lines):
        self.path = path
        self.line = line
        self.hardrun_mode = hardrun_mode
        self.word_lines = word_lines
        self.option_index = 0      # the argv index of the option being applied
        self.flag_name = ""        # and the name of its flag
        self.fields: dict = {}
        self.lists: dict[str, list] = {}
        self.namespaces: dict[str, str] = {}
        self.lines: dict[str, int | None] = {}
        self.unresolved: set[str] = set()

    # --- bookkeeping
    def applying(self, option_index: int, flag_name: str) -> None:
        self.option_index, self.flag_name = option_index, flag_name

    def here(self) -> int | None:
        return _line_at(self.word_lines, self.option_index, self.line)

    def set(self, name: str, value, key: str | None = None) -> None:
        self.fields[name] = value
        self.mark(key or name)

    def mark(self, key: str) -> None:
        line = self.here()
        if line is not None:
            self.lines[key] = line

    def append(self, name: str, value) -> None:
        self.lists.setdefault(name, []).append(value)

    def unknown_value(self, name: str) -> None:
        """`name` was set, but to a value we cannot know (a `$VAR`, or malformed when auditing)."""
        self.unresolved.add(name)
        self.fields.pop(name, None)
        self.mark(name)

    def invalid(self, option, message: str) -> None:
        """A malformed value: an error for `hardrun run`; set-but-unknown when auditing."""
        if self.hardrun_mode:
            raise UsageError(f"invalid value {option.value!r} for {option.spelled}: {message}")
        self.unknown_value(option.flag.field)

    def left_unresolved(self, value: str | None) -> bool:
        """When auditing: whether `value` holds a `$VAR` the auditor does not resolve
        (`hardrun run` gets its words after the shell has expanded them)."""
        return not self.hardrun_mode and _values().is_unresolved(value)

    def boolean(self, value: str | None) -> bool | None:
        return parse_bool(value or "true", self.flag_name, strict=self.hardrun_mode)

    def finish(self) -> dict:
        out = dict(self.fields)
        for name, items in self.lists.items():
            out[name] = tuple(items)
        if self.namespaces:
            out["namespaces"] = dict(self.namespaces)
        out["lines"] = self.lines
        out["unresolved"] = frozenset(self.unresolved)
        if self.hardrun_mode:
            out["env"] = _env_files_first(self, out)
        return out


# ---------------------------------------------------------------------------- handlers
# Named by the rows of docker_flags.FLAGS: `on_*` apply one flag, `*_field` make a handler.

def bool_field(field_name: str, invert: bool = False):
    def handle(b: _Builder, value):
        state = b.boolean(value)
        if state is None:
            b.unknown_value(field_name)
            return
        b.set(field_name, (not state) if invert else state)
    return handle


def capabilities_field(field_name: str):
    def handle(b: _Builder, value):
        if b.left_unresolved(value):
            b.unknown_value(field_name)
            return
        # podman splits on commas; Docker would reject a comma, so splitting loses nothing.
        for raw in (value or "").split(","):
            name = normalize_capability(raw)
            if not name:
                raise ValueError("empty capability name")
            if name != "ALL" and name not in CAPABILITIES and b.hardrun_mode:
                raise ValueError(f"unknown capability {raw.strip()!r}")
            b.append(field_name, name)
            b.mark(f"{field_name}:{name}")
        b.mark(field_name)
    return handle


# What `hardrun run` applies; other options (apparmor, label) only matter to the auditor.
_RUNTIME_SECURITY_FIELDS = ("no_new_privileges", "seccomp", "system_paths_unconfined", "apparmor",
                            "selinux_disabled", "selinux_options")


def on_security_opt(b: _Builder, value):
    settings = _values().security_opt_settings(value or "")
    if b.hardrun_mode and (not settings or any(f not in _RUNTIME_SECURITY_FIELDS for f, _ in settings)):
        raise ValueError(f"unsupported security option {value!r} "
                         "(expected no-new-privileges[=true|false], seccomp=FILE|unconfined, "
                         "systempaths=unconfined, apparmor=PROFILE|unconfined or label=…)")
    for field_name, setting in settings:
        if setting is None:   # no-new-privileges=<not a boolean>
            if b.hardrun_mode:
                raise ValueError("no-new-privileges expects true or false")
            b.unknown_value(field_name)
        elif field_name == "selinux_options":
            b.set(field_name, {**b.fields.get(field_name, {}), **setting})
        else:
            b.set(field_name, setting)


def namespace_field(namespace: str):
    def handle(b: _Builder, value):
        mode = value or ""
        if b.hardrun_mode and mode not in ("host", "private"):
            raise ValueError(f"invalid {namespace} namespace mode {mode!r} (expected host or private)")
        if b.left_unresolved(mode):
            b.unresolved.add(f"namespace:{namespace}")
        if mode in ("host", "private") or mode.startswith("container:"):
            b.namespaces[namespace] = mode
        elif mode in ("shareable", ""):
            b.namespaces[namespace] = "private"
        else:
            b.namespaces[namespace] = mode
        b.mark(f"namespace:{namespace}")
    return handle


def on_network(b: _Builder, value):
    mode = value or ""
    if b.hardrun_mode and mode not in HARDRUN_NETWORKS and mode != "bridge" and not mode.startswith("bridge:"):
        raise ValueError(f"unsupported network {mode!r} (expected {' or '.join(HARDRUN_NETWORKS)})")
    if not mode:
        raise ValueError("empty network")
    if b.fields.get("network") == "host":
        return   # several --network: one of them being host is what matters
    b.set("network", mode)
    if _values().is_unresolved(mode):
        b.unresolved.add("network")
    b.namespaces["network"] = mode if mode in ("host", "none") or mode.startswith("container:") \
        else "private"
    b.mark("namespace:network")


def size_field(field_name: str, allow_minus_one: bool = False):
    def handle(b: _Builder, value):
        if b.left_unresolved(value):
            b.unknown_value(field_name)
            return
        text = (value or "").strip()
        if allow_minus_one and text == "-1":
            b.set(field_name, -1)
            return
        try:
            b.set(field_name, _values().parse_size(text))
        except ValueError:
            raise ValueError("expected a size such as 512m or 1g") from None
    return handle


def int_field(field_name: str, minimum: int | None = None, check=None):
    def handle(b: _Builder, value):
        if b.left_unresolved(value):
            b.unknown_value(field_name)
            return
        try:
            number = int((value or "").strip(), 10)
        except ValueError:
            raise ValueError("expected an integer") from None
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}")
        problem = check(number) if b.hardrun_mode and check is not None else None
        if problem:
            raise ValueError(problem)
        b.set(field_name, number)
    return handle


def on_cpus(b: _Builder, value):
    if b.left_unresolved(value):
        b.unknown_value("cpus")
        return
    try:
        number = float((value or "").strip())
    except ValueError:
        raise ValueError("expected a decimal number of CPUs") from None
    if not number >= 0 or number == float("inf"):
        raise ValueError("expected a non-negative number of CPUs")
    b.set("cpus", number)


def string_field(field_name: str, check=None):
    def handle(b: _Builder, value):
        text = value or ""
        if b.hardrun_mode and check is not None:
            problem = check(text)
            if problem:
                raise ValueError(problem)
        if b.left_unresolved(text):
            b.unresolved.add(field_name)
        b.set(field_name, text)
    return handle


def check_workdir(text: str) -> str | None:
    if not text.startswith("/"):
        return f"the working directory {text!r} must be an absolute path"
    return None


def check_rootfs(text: str) -> str | None:
    return None if text else "empty --rootfs"


def on_env(b: _Builder, value):
    text = value or ""
    name, eq, val = text.partition("=")
    if not name:
        raise ValueError("expected NAME=VALUE or NAME")
    b.append("env", EnvVar(name, val if eq else None, b.here()))
    b.mark(f"env:{name}")


def on_env_file(b: _Builder, value):
    if not value:
        raise ValueError("empty file name")
    b.append("env_files", value)
    b.mark("env_files")


def _env_files_first(b: _Builder, fields: dict) -> tuple[EnvVar, ...]:
    """Docker applies --env-file contents first, then each -e (later ones win)."""
    from_files: list[EnvVar] = []
    for env_path in fields.get("env_files", ()):
        from_files.extend(read_env_file(env_path))
    return tuple(from_files) + tuple(fields.get("env", ()))


def read_env_file(env_path: str) -> list[EnvVar]:
    """Docker's env-file format: `NAME=value` (literal), `NAME` (pass through), `#` comments."""
    from ..errors import HardrunError
    from ..userfiles import read_bytes
    try:
        data = read_bytes(env_path)
    except HardrunError as error:
        raise UsageError(f"cannot read env file: {error.message}", path=env_path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError("env file is not valid UTF-8", path=env_path) from None
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        name, eq, val = stripped.partition("=")
        if not name or any(c.isspace() for c in name):
            raise UsageError(f"invalid variable name {name!r} (expected NAME=VALUE or NAME)",
                             path=env_path, line=number)
        out.append(EnvVar(name, val if eq else None, number))
    return out


def on_ulimit(b: _Builder, value):
    text = value or ""
    name, eq, limits = text.partition("=")
    if not eq or name not in ULIMIT_NAMES:
        raise ValueError(f"expected NAME=SOFT[:HARD] with NAME one of {', '.join(ULIMIT_NAMES)}")
    soft_text, colon, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if colon else soft
    except ValueError:
        raise ValueError("limits must be integers") from None
    if soft > hard and hard != -1:
        raise ValueError(f"soft limit {soft} is above the hard limit {hard}")
    b.append("ulimits", Ulimit(name, soft, hard))
    b.mark(f"ulimit:{name}")


def on_userns_remap(b: _Builder, value):
    start_text, colon, count_text = (value or "").partition(":")
    try:
        start, count = int(start_text), int(count_text)
    except ValueError:
        raise ValueError("expected START:COUNT, two integers") from None
    if not colon or start < 0 or count < 1 or start + count > 0xFFFFFFFF:
        raise ValueError("expected START:COUNT with START >= 0 and COUNT >= 1 within 32 bits")
    b.set("userns_remap", (start, count))


def on_device(b: _Builder, value):
    if not value:
        raise ValueError("empty device")
    index = len(b.lists.get("devices", ()))
    b.append("devices", value)
    b.mark(f"device:{index}")
    b.mark("devices")


def on_group_add(b: _Builder, value):
    group = (value or "").strip()
    if not group:
        raise ValueError("empty group")
    if b.left_unresolved(group):
        b.unknown_value("group_add")
        return
    b.append("group_add", group)
    b.mark(f"group_add:{group}")
    b.mark("group_add")


def check_oom_score_adj(number: int) -> str | None:
    if not -1000 <= number <= 1000:
        return f"{number} is out of range (expected -1000..1000)"
    return None


def on_publish(b: _Builder, value):
    for port in _values().parse_publish(value or "", b.here(), lenient=not b.hardrun_mode):
        index = len(b.lists.get("ports", ()))
        b.append("ports", port)
        b.mark(f"port:{index}")


def on_expose(b: _Builder, value):
    values = _values()
    text = value or ""
    port, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in values.PROTOCOLS:
        raise ValueError(f"invalid protocol {protocol!r}")
    if b.left_unresolved(port):
        return
    b.append("exposed_ports", f"{values.port_range(port)}/{protocol}")


def _add_mount(b: _Builder, mount: Mount) -> None:
    index = len(b.lists.get("mounts", ()))
    b.append("mounts", mount)
    b.mark(f"mount:{index}")


def on_volume(b: _Builder, value):
    mount = _values().parse_volume(value or "", b.here())
    _add_mount(b, _runtime_bind(mount) if b.hardrun_mode else mount)


def on_mount(b: _Builder, value):
    _add_mount(b, parse_mount(value or "", b.here(), hardrun_mode=b.hardrun_mode))


def on_tmpfs(b: _Builder, value):
    mount = _values().parse_tmpfs(value or "", b.here())
    if b.hardrun_mode:
        _check_runtime_tmpfs(mount)
    _add_mount(b, mount)


def on_sysctl(b: _Builder, value) -> None:
    """--sysctl NAME=VALUE (which names `hardrun run` can write: runtime/tunables.py)."""
    name, equals, setting = (value or "").partition("=")
    name = name.strip()
    if b.hardrun_mode and (not name or not equals):
        raise ValueError("expected NAME=VALUE")
    b.fields["sysctls"] = {**b.fields.get("sysctls", {}), name: setting}
    b.mark(f"sysctl:{name}")




# ---------------------------------------------------------------------------- mounts
# (-v, --tmpfs and -p syntaxes are shared with compose: parsing/runvalues.py)

def _runtime_bind(mount: Mount) -> Mount:
    """`hardrun run -v`: host paths only (named and anonymous volumes need a daemon)."""
    if not mount.target.startswith("/"):
        raise ValueError("the destination must be an absolute path")
    if mount.source is None:
        raise ValueError("expected SRC:DST (anonymous volumes need an image)")
    if mount.type != "bind" or not mount.source.startswith(("/", ".")):
        raise ValueError("the source must be a host path (named volumes need a daemon)")
    if mount.source.startswith("."):   # as Docker's CLI does for ./x and ../x
        import os
        return Mount(mount.type, mount.target, os.path.abspath(mount.source), mount.read_only,
                     mount.options, mount.line)
    return mount


def _csv_fields(text: str) -> list[str]:
    if '"' not in text:
        return text.split(",")
    import csv   # only for quoted --mount fields
    try:
        return next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise ValueError("malformed --mount value") from None


_MOUNT_TYPES = ("bind", "volume", "tmpfs", "npipe", "cluster", "image", "devpts", "glob",
                "ramfs", "artifact")


def parse_mount(text: str, line: int | None = None, *, hardrun_mode: bool = False) -> Mount:
    """`--mount type=…,source=…,target=…,readonly` (Docker's default type is volume)."""
    kind, source, target, read_only = "volume", None, None, False
    options: list[str] = []
    for item in _csv_fields(text):
        key, eq, value = item.strip().partition("=")
        key = key.lower()
        if key == "type" and eq:
            kind = value.lower()
        elif key in ("source", "src") and eq:
            source = value
        elif key in ("target", "destination", "dst") and eq:
            target = value
        elif key in ("readonly", "ro"):
            state = parse_bool(value, "mount", strict=False) if eq else True
            if state is None:
                raise ValueError(f"invalid readonly value {value!r}")
            read_only = state
        elif key:
            options.append(item.strip())
    if kind not in _MOUNT_TYPES:
        raise ValueError(f"unknown mount type {kind!r}")
    if not target:
        raise ValueError("missing target= (the destination)")
    if hardrun_mode:
        if kind not in ("bind", "tmpfs"):
            raise ValueError("type must be bind or tmpfs")
        if not target.startswith("/"):
            raise ValueError("the target must be an absolute path")
    if kind == "bind" and not source:
        raise ValueError("a bind mount needs source=")
    return Mount(kind, target, source, read_only, tuple(options), line)


_TMPFS_FLAGS = frozenset({"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev",
                          "atime", "noatime", "relatime", "strictatime", "nodiratime"})
_TMPFS_VALUES = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"})


def _check_runtime_tmpfs(mount: Mount) -> None:
    """`hardrun run --tmpfs`: an absolute target and only options the kernel's tmpfs takes."""
    if not mount.target.startswith("/"):
        raise ValueError("expected DST[:OPTIONS] with an absolute DST")
    for option in mount.options:
        key, eq, value = option.partition("=")
        if not (key in _TMPFS_FLAGS and not eq) and not (key in _TMPFS_VALUES and value):
            raise ValueError(f"unknown tmpfs option {option!r} (size=, mode=, uid=, gid=, "
                             "nr_inodes=, ro, noexec, nosuid, nodev…)")
