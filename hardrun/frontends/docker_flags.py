"""The flags of `docker run` / `docker create` / `podman run` and of `hardrun run`.

One table (FLAGS) knows every flag's spelling, short alias, arity and whether the
hardrun runtime supports it. `parse_run_args` splits an argv the way Docker's CLI
(pflag, interspersed off) does: options first, then the image and its command
(for `hardrun run`: the command). `runspec_from_args` turns the options into a
RunSpec with Docker's semantics. `run_help` renders `hardrun run --help` from the
table, showing only flags the runtime supports. Value syntaxes shared with the
other front ends (sizes, ports, -v, --tmpfs, --security-opt) live in parsing/runvalues.py.

This module is on `hardrun run`'s start-up path: standard library only, and only
cheap modules at import time.
"""
from __future__ import annotations

from ..errors import UsageError
from ..spec.capabilities import NAMES as CAPABILITIES
from ..spec.capabilities import normalize_capability
from ..spec.record import dataclass
from ..spec.run import EnvVar, Mount, RunSpec, Ulimit
from ..spec.run import check_container_name, check_hostname, check_pids_limit, check_user

BOOL, VALUE, LIST = "bool", "value", "list"     # arity: no value / one value / repeatable value
DOCKER, PODMAN, HARDRUN = "docker", "podman", "hardrun"   # where a flag exists


_runvalues = None


def _values():
    """runvalues.py (the value syntaxes), imported on first use: a command line of only
    path, name and id flags (`hardrun run --rootfs DIR -- CMD`) never needs it."""
    global _runvalues
    if _runvalues is None:
        from ..parsing import runvalues
        _runvalues = runvalues
    return _runvalues


class Flag:
    """One flag: canonical long name without dashes ("volume"), arity (BOOL, VALUE or
    LIST), short letter, other long names, whether `hardrun run` supports it, where it
    exists (DOCKER: docker, nerdctl, podman; PODMAN only; HARDRUN only), help text.
    Immutable once the table is built (below)."""
    __slots__ = ("name", "arity", "short", "aliases", "runtime", "scope", "metavar", "help")

    def __init__(self, name, arity, short=None, aliases=(), runtime=False, scope=DOCKER,
                 metavar="", help=""):
        self.name = name
        self.arity = arity
        self.short = short
        self.aliases = tuple(aliases)
        self.runtime = runtime
        self.scope = scope
        self.metavar = metavar
        self.help = help

    @property
    def takes_value(self) -> bool:
        return self.arity != BOOL

    @property
    def repeatable(self) -> bool:
        return self.arity == LIST

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Flag({fields})"


_f = Flag   # short, for the table


RT = True   # readability in the table below: the runtime supports this flag

# Every flag of `docker run`/`docker create` (docker CLI 27), the podman-only flags that
# matter for parsing, and hardrun's own. Arity decides where a value ends and the image
# begins, so an unlisted value flag would turn its value into the "image".
FLAGS: tuple[Flag, ...] = (
    # hardrun's own (only in `hardrun run`)
    _f("rootfs", VALUE, runtime=RT, scope=HARDRUN, metavar="DIR",
       help="Root directory (default: a read-only view of the host's /)"),
    _f("read-write", BOOL, runtime=RT, scope=HARDRUN, help="Make the root filesystem writable"),
    _f("userns-remap", VALUE, runtime=RT, scope=HARDRUN, metavar="START:COUNT",
       help="Map ids 0..COUNT-1 to host ids from START"),
    _f("no-new-privileges", BOOL, runtime=RT, scope=HARDRUN,
       help="Block setuid/file-capability escalation (default)"),
    _f("dry-run", BOOL, runtime=RT, scope=HARDRUN,
       help="Print the resolved configuration as JSON; run nothing"),
    _f("policy", VALUE, runtime=RT, scope=HARDRUN, metavar="POLICY",
       help="Check against a policy (name or file) before running; without it, a "
            "repository's .hardrun.yaml is used and may only tighten the run"),
    _f("config", VALUE, runtime=RT, scope=HARDRUN, metavar="FILE",
       help="Read the run configuration from YAML (flags override it)"),
    _f("limits", VALUE, runtime=RT, scope=HARDRUN, metavar="MODE",
       help="strict (default: fail if a limit cannot apply) or best-effort (warn)"),
    # docker run / docker create
    _f("add-host", LIST, metavar="HOST:IP"),
    _f("annotation", LIST, metavar="KEY=VALUE"),
    _f("attach", LIST, "a", metavar="STREAM"),
    _f("blkio-weight", VALUE),
    _f("blkio-weight-device", LIST),
    _f("cap-add", LIST, runtime=RT, metavar="CAP",
       help="Add a capability (NET_BIND_SERVICE or CAP_NET_BIND_SERVICE)"),
    _f("cap-drop", LIST, runtime=RT, metavar="CAP",
       help="Drop a capability, or ALL (default: all are dropped)"),
    _f("cgroup-parent", VALUE),
    _f("cgroupns", VALUE),
    _f("cidfile", VALUE),
    _f("cpu-count", VALUE),
    _f("cpu-percent", VALUE),
    _f("cpu-period", VALUE),
    _f("cpu-quota", VALUE),
    _f("cpu-rt-period", VALUE),
    _f("cpu-rt-runtime", VALUE),
    _f("cpu-shares", VALUE, "c", runtime=RT, metavar="SHARES", help="CPU shares (relative weight)"),
    _f("cpus", VALUE, runtime=RT, metavar="N", help="Number of CPUs (a decimal, e.g. 1.5)"),
    _f("cpuset-cpus", VALUE),
    _f("cpuset-mems", VALUE),
    _f("detach", BOOL, "d"),
    _f("detach-keys", VALUE),
    _f("device", LIST, metavar="HOST[:CONTAINER[:PERMS]]"),
    _f("device-cgroup-rule", LIST),
    _f("device-read-bps", LIST),
    _f("device-read-iops", LIST),
    _f("device-write-bps", LIST),
    _f("device-write-iops", LIST),
    _f("disable-content-trust", BOOL),
    _f("dns", LIST),
    _f("dns-opt", LIST, aliases=("dns-option",)),
    _f("dns-search", LIST),
    _f("domainname", VALUE),
    _f("entrypoint", VALUE),
    _f("env", LIST, "e", runtime=RT, metavar="NAME[=VALUE]",
       help="Set a variable (NAME alone passes the caller's value)"),
    _f("env-file", LIST, runtime=RT, metavar="FILE", help="Read environment variables from a file"),
    _f("expose", LIST, runtime=RT, metavar="PORT[/PROTO]",
       help="Declare a port (or range) that -P/--publish-all publishes"),
    _f("gpus", VALUE),
    _f("group-add", LIST),
    _f("health-cmd", VALUE),
    _f("health-interval", VALUE),
    _f("health-retries", VALUE),
    _f("health-start-interval", VALUE),
    _f("health-start-period", VALUE),
    _f("health-timeout", VALUE),
    _f("help", BOOL, runtime=RT, help="Print this help"),
    _f("hostname", VALUE, "h", runtime=RT, metavar="NAME", help="Container host name"),
    _f("init", BOOL, runtime=RT, help="Run a small init as PID 1 that reaps zombies"),
    _f("interactive", BOOL, "i", runtime=RT,
       help="Keep stdin attached (without it the container reads an empty input)"),
    _f("io-maxbandwidth", VALUE),
    _f("io-maxiops", VALUE),
    _f("ip", VALUE),
    _f("ip6", VALUE),
    _f("ipc", VALUE),
    _f("isolation", VALUE),
    _f("kernel-memory", VALUE),
    _f("label", LIST, "l"),
    _f("label-file", LIST),
    _f("link", LIST),
    _f("link-local-ip", LIST),
    _f("log-driver", VALUE),
    _f("log-opt", LIST),
    _f("mac-address", VALUE),
    _f("memory", VALUE, "m", runtime=RT, metavar="BYTES", help="Memory limit (512m, 1g…)"),
    _f("memory-reservation", VALUE),
    _f("memory-swap", VALUE, runtime=RT, metavar="BYTES",
       help="Memory plus swap limit (-1: unlimited swap)"),
    _f("memory-swappiness", VALUE),
    _f("mount", LIST, runtime=RT, metavar="SPEC",
       help="Mount: type=bind|tmpfs,source=…,target=…[,readonly]"),
    _f("name", VALUE, runtime=RT, metavar="NAME",
       help="Container name, at most 64 characters (the default host name; how other "
            "containers on its bridge reach it)"),
    _f("network", VALUE, aliases=("net",), runtime=RT, metavar="MODE",
       help="Network: none (default: only lo), host, or bridge[:NAME]"),
    _f("network-alias", LIST, aliases=("net-alias",)),
    _f("no-healthcheck", BOOL),
    _f("oom-kill-disable", BOOL),
    _f("oom-score-adj", VALUE),
    _f("pid", VALUE),
    _f("pids-limit", VALUE, runtime=RT, metavar="N",
       help="Maximum number of processes (default 1024; 0 or -1: unlimited)"),
    _f("platform", VALUE),
    _f("privileged", BOOL),
    _f("publish", LIST, "p", runtime=RT, metavar="[IP:]HOST:CONTAINER[/PROTO]",
       help="Publish a port of a bridge network (on 127.0.0.1 unless IP is given)"),
    _f("publish-all", BOOL, "P", runtime=RT,
       help="Publish every --expose port on a free port of 127.0.0.1"),
    _f("pull", VALUE),
    _f("quiet", BOOL, "q"),
    _f("read-only", BOOL, runtime=RT, help="Mount the root filesystem read-only (default)"),
    _f("restart", VALUE),
    _f("rm", BOOL, runtime=RT, help="Accepted: nothing of a container is kept after it exits anyway"),
    _f("runtime", VALUE),
    _f("security-opt", LIST, runtime=RT, metavar="OPT",
       help="no-new-privileges[=true|false], seccomp=FILE|unconfined, systempaths=unconfined"),
    _f("shm-size", VALUE),
    _f("sig-proxy", BOOL),
    _f("stop-signal", VALUE),
    _f("stop-timeout", VALUE),
    _f("storage-opt", LIST),
    _f("sysctl", LIST),
    _f("tmpfs", LIST, runtime=RT, metavar="DST[:OPTS]",
       help="Mount a tmpfs at DST (options: size=… (default 64m; 0: no limit), mode=…, ro…)"),
    _f("tty", BOOL, "t", runtime=RT,
       help="Give the container a pseudo-terminal of its own (with -i: relay input to it)"),
    _f("ulimit", LIST, runtime=RT, metavar="NAME=SOFT[:HARD]", help="Set a resource limit"),
    _f("use-api-socket", BOOL),
    _f("user", VALUE, "u", runtime=RT, metavar="USER[:GROUP]",
       help="User name or uid, optionally with a group"),
    _f("userns", VALUE, runtime=RT, metavar="MODE",
       help="host: do not remap ids (default: remap root to 100000)"),
    _f("uts", VALUE),
    _f("volume", LIST, "v", runtime=RT, metavar="SRC:DST[:ro|rw]", help="Bind mount a host path"),
    _f("volume-driver", VALUE),
    _f("volumes-from", LIST),
    _f("workdir", VALUE, "w", runtime=RT, metavar="DIR",
       help="Working directory in the container (absolute)"),
    # podman run only (parsing matters; their meaning is not judged)
    _f("arch", VALUE, scope=PODMAN), _f("authfile", VALUE, scope=PODMAN),
    _f("cgroup-conf", LIST, scope=PODMAN), _f("cgroups", VALUE, scope=PODMAN),
    _f("chrootdirs", LIST, scope=PODMAN), _f("conmon-pidfile", VALUE, scope=PODMAN),
    _f("creds", VALUE, scope=PODMAN), _f("decryption-key", LIST, scope=PODMAN),
    _f("env-host", BOOL, scope=PODMAN), _f("env-merge", LIST, scope=PODMAN),
    _f("gidmap", LIST, scope=PODMAN), _f("group-entry", VALUE, scope=PODMAN),
    _f("health-on-failure", VALUE, scope=PODMAN), _f("health-startup-cmd", VALUE, scope=PODMAN),
    _f("health-startup-interval", VALUE, scope=PODMAN),
    _f("health-startup-retries", VALUE, scope=PODMAN),
    _f("health-startup-success", VALUE, scope=PODMAN),
    _f("health-startup-timeout", VALUE, scope=PODMAN),
    _f("hostuser", LIST, scope=PODMAN), _f("hosts-file", VALUE, scope=PODMAN),
    _f("http-proxy", BOOL, scope=PODMAN), _f("image-volume", VALUE, scope=PODMAN),
    _f("init-path", VALUE, scope=PODMAN), _f("log-level", VALUE, scope=PODMAN),
    _f("no-hosts", BOOL, scope=PODMAN), _f("os", VALUE, scope=PODMAN),
    _f("passwd", BOOL, scope=PODMAN), _f("passwd-entry", VALUE, scope=PODMAN),
    _f("personality", VALUE, scope=PODMAN), _f("pidfile", VALUE, scope=PODMAN),
    _f("pod", VALUE, scope=PODMAN), _f("pod-id-file", VALUE, scope=PODMAN),
    _f("preserve-fd", LIST, scope=PODMAN), _f("preserve-fds", VALUE, scope=PODMAN),
    _f("rdt-class", VALUE, scope=PODMAN), _f("read-only-tmpfs", BOOL, scope=PODMAN),
    _f("replace", BOOL, scope=PODMAN), _f("requires", LIST, scope=PODMAN),
    _f("retry", VALUE, scope=PODMAN), _f("retry-delay", VALUE, scope=PODMAN),
    _f("rmi", BOOL, scope=PODMAN), _f("sdnotify", VALUE, scope=PODMAN),
    _f("seccomp-policy", VALUE, scope=PODMAN), _f("secret", LIST, scope=PODMAN),
    _f("shm-size-systemd", VALUE, scope=PODMAN), _f("subgidname", VALUE, scope=PODMAN),
    _f("subuidname", VALUE, scope=PODMAN), _f("systemd", VALUE, scope=PODMAN),
    _f("timeout", VALUE, scope=PODMAN), _f("tls-verify", BOOL, scope=PODMAN),
    _f("tz", VALUE, scope=PODMAN), _f("uidmap", LIST, scope=PODMAN),
    _f("umask", VALUE, scope=PODMAN), _f("unsetenv", LIST, scope=PODMAN),
    _f("unsetenv-all", BOOL, scope=PODMAN), _f("variant", VALUE, scope=PODMAN),
)

# podman's --rootfs is a switch (the first positional is then a directory, not an image).
_PODMAN_ROOTFS = _f("rootfs", BOOL, scope=PODMAN)


def _immutable(flag, *_):
    raise AttributeError("a Flag is immutable")


# Flags are made with plain attribute stores: a frozen record's setattr call per field,
# for the ~170 flags of the table, cost a third of a millisecond of `hardrun run`'s
# start-up. With the table built, no flag changes any more.
Flag.__setattr__ = Flag.__delattr__ = _immutable


def _index(engine: str) -> tuple[dict[str, Flag], dict[str, Flag]]:
    """(long name -> Flag, short letter -> Flag) for `engine`."""
    longs: dict[str, Flag] = {}
    shorts: dict[str, Flag] = {}
    for flag in FLAGS:
        if engine == HARDRUN:
            if not flag.runtime:
                continue
        elif flag.scope == HARDRUN or (flag.scope == PODMAN and engine != PODMAN):
            continue
        for name in (flag.name, *flag.aliases):
            longs[name] = flag
        if flag.short:
            shorts[flag.short] = flag
    if engine == PODMAN:
        longs["rootfs"] = _PODMAN_ROOTFS
    return longs, shorts


_INDEXES: dict[str, tuple[dict[str, Flag], dict[str, Flag]]] = {}


def flags_for(engine: str) -> tuple[dict[str, Flag], dict[str, Flag]]:
    """Cached (long, short) lookup tables of `engine` (docker, podman or hardrun)."""
    if engine not in _INDEXES:
        _INDEXES[engine] = _index(engine)
    return _INDEXES[engine]


# ---------------------------------------------------------------------------- parsing

@dataclass(frozen=True)
class Option:
    """A flag as given: its Flag, value (for BOOL flags "true" or what followed `=`),
    argv index of the word naming it, and its spelling as written ("--net", "-p")."""
    flag: Flag
    value: str | None
    index: int
    spelled: str

    def __init__(self, flag: Flag, value: str | None, index: int, spelled: str):
        # the most frequent record: a direct __init__ halves its cost
        setter = object.__setattr__
        setter(self, "flag", flag)
        setter(self, "value", value)
        setter(self, "index", index)
        setter(self, "spelled", spelled)


@dataclass(frozen=True)
class UnknownFlag:
    """A flag not in the table: spelling ("--frobnicate", "-X"), argv index, the part after
    `=` if any, and whether a following word may be its value rather than the image."""
    spelled: str
    index: int
    value: str | None = None
    ambiguous: bool = False


@dataclass(frozen=True)
class ParsedRun:
    """Options in argv order; args: image + command (docker) or COMMAND + ARGs (hardrun);
    args_index: argv index of args[0]; unknown flags; flags left without a value."""
    options: tuple = ()
    args: tuple = ()
    args_index: int | None = None
    unknown: tuple = ()
    hardrun_mode: bool = False
    missing_value: tuple = ()

    @property
    def image(self) -> str | None:
        return None if self.hardrun_mode or not self.args else self.args[0]

    @property
    def command(self) -> tuple[str, ...]:
        return self.args if self.hardrun_mode else self.args[1:]

    @property
    def image_uncertain(self) -> bool:
        """An unknown flag stood before the image: its next word may be the flag's value."""
        return any(u.ambiguous for u in self.unknown)

    def values(self, name: str) -> list[str | None]:
        return [o.value for o in self.options if o.flag.name == name]

    def value(self, name: str) -> str | None:
        """The last value given for flag `name` (None if absent)."""
        found = self.values(name)
        return found[-1] if found else None

    def has(self, name: str) -> bool:
        return any(o.flag.name == name for o in self.options)

    def flag_on(self, name: str) -> bool:
        """A BOOL flag's final state (False when absent)."""
        value = self.value(name)
        return value is not None and parse_bool(value, name, strict=False) is True


def parse_bool(text: str, name: str, *, strict: bool = True) -> bool | None:
    """Go's strconv.ParseBool, as pflag uses it; None for a non-boolean when not strict."""
    state = _values().parse_go_bool(text)
    if state is None and strict:
        raise UsageError(f"invalid value {text!r} for --{name}: expected true or false")
    return state


def parse_run_args(argv, *, hardrun_mode: bool = False, strict: bool | None = None,
                   engine: str | None = None) -> ParsedRun:
    """Split `argv` (the words after `run`) into options and the image/command.

    strict (default: hardrun_mode) makes unknown flags, missing values and bad boolean
    values UsageErrors; otherwise they are recorded and parsing goes on. `engine` picks
    the flag table: docker (also nerdctl), podman, or hardrun (only supported flags).
    """
    strict = hardrun_mode if strict is None else strict
    engine = HARDRUN if hardrun_mode else (engine or DOCKER)
    longs, shorts = flags_for(engine)
    state = _State(strict)
    argv = list(argv)
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        if word.startswith("--"):
            i = _long(argv, i, longs, state)
        else:
            i = _short_cluster(argv, i, shorts, state)
    args = tuple(argv[i:])
    return ParsedRun(tuple(state.options), args, i if args else None, tuple(state.unknown),
                     hardrun_mode, tuple(state.missing))


class _State:
    def __init__(self, strict: bool):
        self.strict = strict
        self.options: list[Option] = []
        self.unknown: list[UnknownFlag] = []
        self.missing: list[str] = []

    def unknown_flag(self, spelled: str, index: int, value: str | None, argv) -> None:
        if self.strict:
            raise UsageError(f"unknown flag: {spelled}", hint="see `hardrun run --help`")
        ambiguous = value is None and index + 1 < len(argv) and not argv[index + 1].startswith("-")
        self.unknown.append(UnknownFlag(spelled, index, value, ambiguous))

    def needs_value(self, spelled: str) -> None:
        if self.strict:
            raise UsageError(f"flag needs an argument: {spelled}")
        self.missing.append(spelled)


def _long(argv, i: int, longs, state: _State) -> int:
    word = argv[i]
    name, eq, value = word[2:].partition("=")
    flag = longs.get(name)
    if flag is None or not name:
        state.unknown_flag("--" + name, i, value if eq else None, argv)
        return i + 1
    if flag.arity == BOOL:
        if eq and state.strict:
            parse_bool(value, flag.name)
        state.options.append(Option(flag, value if eq else "true", i, "--" + name))
        return i + 1
    if eq:
        state.options.append(Option(flag, value, i, "--" + name))
        return i + 1
    if i + 1 >= len(argv):
        state.needs_value("--" + name)
        return i + 1
    # pflag takes the next word as the value whatever it looks like (even `-x`).
    state.options.append(Option(flag, argv[i + 1], i, "--" + name))
    return i + 2


def _short_cluster(argv, i: int, shorts, state: _State) -> int:
    word = argv[i]
    letters = word[1:]
    position = 0
    while position < len(letters):
        letter = letters[position]
        rest = letters[position + 1:]
        flag = shorts.get(letter)
        if flag is None:
            # An unknown letter swallows the rest of the cluster (pflag stops there too).
            state.unknown_flag("-" + letter, i, rest[1:] if rest.startswith("=") else (rest or None),
                               argv)
            return i + 1
        if flag.arity == BOOL:
            if rest.startswith("="):   # -d=false
                if state.strict:
                    parse_bool(rest[1:], flag.name)
                state.options.append(Option(flag, rest[1:], i, "-" + letter))
                return i + 1
            state.options.append(Option(flag, "true", i, "-" + letter))
            position += 1
            continue
        if rest:   # -p80:80, -eFOO=bar, -e=FOO=bar
            state.options.append(Option(flag, rest[1:] if rest.startswith("=") else rest, i,
                                        "-" + letter))
            return i + 1
        if i + 1 >= len(argv):
            state.needs_value("-" + letter)
            return i + 1
        state.options.append(Option(flag, argv[i + 1], i, "-" + letter))
        return i + 2
    return i + 1


# ---------------------------------------------------------------------------- values

ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
HARDRUN_NETWORKS = ("none", "host", "bridge[:NAME]")
LIMITS_MODES = ("best-effort", "strict")


@dataclass(frozen=True)
class HardrunOptions:
    """`hardrun run`'s own options that are not part of the RunSpec."""
    dry_run: bool = False
    policy: str | None = None
    config: str | None = None
    limits: str = "strict"
    help: bool = False
    tty: bool = False
    interactive: bool = False


def hardrun_options(parsed: ParsedRun) -> HardrunOptions:
    limits = parsed.value("limits") or "strict"
    if limits not in LIMITS_MODES:
        raise UsageError(f"invalid value {limits!r} for --limits: expected best-effort or strict")
    return HardrunOptions(dry_run=parsed.flag_on("dry-run"), policy=parsed.value("policy"),
                          config=parsed.value("config"), limits=limits,
                          help=parsed.flag_on("help"), tty=parsed.flag_on("tty"),
                          interactive=parsed.flag_on("interactive"))


# ---------------------------------------------------------------------------- RunSpec

def parse_hardrun_args(argv) -> tuple[RunSpec, HardrunOptions]:
    """`hardrun run`'s whole command line (the words after `run`): the RunSpec it asks
    for (kind `hardrun`, defaults left to the runtime) and hardrun's own options.
    UsageError for anything wrong, including a missing COMMAND (unless --help)."""
    parsed = parse_run_args(argv, hardrun_mode=True)
    options = hardrun_options(parsed)
    if options.help:
        return RunSpec(kind="hardrun"), options
    if not parsed.args:
        raise UsageError("missing COMMAND", hint="usage: hardrun run [OPTIONS] [--] COMMAND [ARG...]")
    return runspec_from_args(parsed, kind="hardrun", hardrun_mode=True), options


def runspec_from_args(parsed: ParsedRun, *, kind: str, path: str | None = None,
                      line: int | None = None, subject: str | None = None,
                      hardrun_mode: bool = False, word_lines=None) -> RunSpec:
    """The RunSpec the options of `parsed` ask for, with Docker's semantics.

    hardrun_mode: values are checked strictly (UsageError), --env-file files are read,
    and the first positional is the command. Otherwise (auditing) a value that cannot be
    understood or holds an unresolved `$VAR` marks its field as set-but-unknown
    (RunSpec.unresolved) instead of failing. `word_lines[i]` is the source line of argv
    word i, so each setting remembers its line.
    """
    builder = _Builder(path, line, hardrun_mode, word_lines)
    for option in parsed.options:
        handler = _HANDLERS.get(option.flag.name)
        if handler is not None:
            builder.current = option
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
        self.current: Option | None = None
        self.fields: dict = {}
        self.lists: dict[str, list] = {}
        self.namespaces: dict[str, str] = {}
        self.lines: dict[str, int] = {}
        self.unresolved: set[str] = set()

    # --- bookkeeping
    def here(self) -> int | None:
        return _line_at(self.word_lines, self.current.index, self.line)

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

    def invalid(self, option: Option, message: str) -> None:
        """A malformed value: an error for `hardrun run`; set-but-unknown when auditing."""
        if self.hardrun_mode:
            raise UsageError(f"invalid value {option.value!r} for {option.spelled}: {message}")
        self.unknown_value(_FIELD_OF.get(option.flag.name, option.flag.name))

    def left_unresolved(self, value: str | None) -> bool:
        """When auditing: whether `value` holds a `$VAR` the auditor does not resolve
        (`hardrun run` gets its words after the shell has expanded them)."""
        return not self.hardrun_mode and _values().is_unresolved(value)

    def boolean(self, value: str | None) -> bool | None:
        return parse_bool(value or "true", self.current.flag.name, strict=self.hardrun_mode)

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


_FIELD_OF = {"read-only": "read_only_root", "read-write": "read_only_root", "cap-add": "cap_add",
             "cap-drop": "cap_drop", "memory-swap": "memory_swap", "pids-limit": "pids_limit",
             "cpu-shares": "cpu_shares", "publish-all": "publish_all",
             "no-new-privileges": "no_new_privileges", "userns-remap": "userns_remap",
             "publish": "ports", "volume": "mounts", "mount": "mounts", "tmpfs": "mounts",
             "device": "devices", "env-file": "env_files", "security-opt": "security_opt",
             "ulimit": "ulimits", "env": "env"}


def _bool_field(field_name: str, invert: bool = False):
    def handle(b: _Builder, value):
        state = b.boolean(value)
        if state is None:
            b.unknown_value(field_name)
            return
        b.set(field_name, (not state) if invert else state)
    return handle


def _capabilities(field_name: str):
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
_RUNTIME_SECURITY_FIELDS = ("no_new_privileges", "seccomp", "system_paths_unconfined")


def _security_opt(b: _Builder, value):
    settings = _values().security_opt_settings(value or "")
    if b.hardrun_mode and (not settings or any(f not in _RUNTIME_SECURITY_FIELDS for f, _ in settings)):
        raise ValueError(f"unsupported security option {value!r} "
                         "(expected no-new-privileges[=true|false], seccomp=FILE|unconfined "
                         "or systempaths=unconfined)")
    for field_name, setting in settings:
        if setting is None:   # no-new-privileges=<not a boolean>
            if b.hardrun_mode:
                raise ValueError("no-new-privileges expects true or false")
            b.unknown_value(field_name)
        elif field_name == "selinux_options":
            b.set(field_name, {**b.fields.get(field_name, {}), **setting})
        else:
            b.set(field_name, setting)


def _namespace(namespace: str):
    def handle(b: _Builder, value):
        mode = value or ""
        if namespace == "user" and b.hardrun_mode and mode not in ("host", "private"):
            raise ValueError(f"invalid user namespace mode {mode!r} (expected host or private)")
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


def _network(b: _Builder, value):
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


def _size_field(field_name: str, allow_minus_one: bool = False):
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


def _int_field(field_name: str, minimum: int | None = None, check=None):
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


def _cpus(b: _Builder, value):
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


def _string_field(field_name: str, check=None):
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


def _check_workdir(text: str) -> str | None:
    if not text.startswith("/"):
        return f"the working directory {text!r} must be an absolute path"
    return None


def _check_rootfs(text: str) -> str | None:
    return None if text else "empty --rootfs"


def _env(b: _Builder, value):
    text = value or ""
    name, eq, val = text.partition("=")
    if not name:
        raise ValueError("expected NAME=VALUE or NAME")
    b.append("env", EnvVar(name, val if eq else None, b.here()))
    b.mark(f"env:{name}")


def _env_file(b: _Builder, value):
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


def _ulimit(b: _Builder, value):
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


def _userns_remap(b: _Builder, value):
    start_text, colon, count_text = (value or "").partition(":")
    try:
        start, count = int(start_text), int(count_text)
    except ValueError:
        raise ValueError("expected START:COUNT, two integers") from None
    if not colon or start < 0 or count < 1 or start + count > 0xFFFFFFFF:
        raise ValueError("expected START:COUNT with START >= 0 and COUNT >= 1 within 32 bits")
    b.set("userns_remap", (start, count))


def _device(b: _Builder, value):
    if not value:
        raise ValueError("empty device")
    index = len(b.lists.get("devices", ()))
    b.append("devices", value)
    b.mark(f"device:{index}")
    b.mark("devices")


def _publish(b: _Builder, value):
    for port in _values().parse_publish(value or "", b.here(), lenient=not b.hardrun_mode):
        index = len(b.lists.get("ports", ()))
        b.append("ports", port)
        b.mark(f"port:{index}")


def _expose(b: _Builder, value):
    values = _values()
    text = value or ""
    port, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in values.PROTOCOLS:
        raise ValueError(f"invalid protocol {protocol!r}")
    if b.left_unresolved(port):
        return
    b.append("exposed_ports", f"{values.port_or_range(port, allow_empty=False)}/{protocol}")


def _add_mount(b: _Builder, mount: Mount) -> None:
    index = len(b.lists.get("mounts", ()))
    b.append("mounts", mount)
    b.mark(f"mount:{index}")


def _volume(b: _Builder, value):
    mount = _values().parse_volume(value or "", b.here())
    _add_mount(b, _runtime_bind(mount) if b.hardrun_mode else mount)


def _mount(b: _Builder, value):
    _add_mount(b, parse_mount(value or "", b.here(), hardrun_mode=b.hardrun_mode))


def _tmpfs(b: _Builder, value):
    mount = _values().parse_tmpfs(value or "", b.here())
    if b.hardrun_mode:
        _check_runtime_tmpfs(mount)
    _add_mount(b, mount)


def _sysctl(b: _Builder, value) -> None:
    """--sysctl NAME=VALUE (auditing only: `hardrun run` does not take the flag)."""
    name, _, setting = (value or "").partition("=")
    name = name.strip()
    b.fields["sysctls"] = {**b.fields.get("sysctls", {}), name: setting}
    b.mark(f"sysctl:{name}")


_HANDLERS = {
    "privileged": _bool_field("privileged"),
    "read-only": _bool_field("read_only_root"),
    "read-write": _bool_field("read_only_root", invert=True),
    "no-new-privileges": _bool_field("no_new_privileges"),
    "init": _bool_field("init"),
    "publish-all": _bool_field("publish_all"),
    "cap-add": _capabilities("cap_add"),
    "cap-drop": _capabilities("cap_drop"),
    "security-opt": _security_opt,
    "user": _string_field("user", check_user),
    "workdir": _string_field("workdir", _check_workdir),
    "hostname": _string_field("hostname", check_hostname),
    "name": _string_field("name", check_container_name),
    "entrypoint": _string_field("entrypoint"),
    "rootfs": _string_field("rootfs", _check_rootfs),
    "network": _network,
    "pid": _namespace("pid"),
    "ipc": _namespace("ipc"),
    "uts": _namespace("uts"),
    "userns": _namespace("user"),
    "cgroupns": _namespace("cgroup"),
    "userns-remap": _userns_remap,
    "env": _env,
    "env-file": _env_file,
    "memory": _size_field("memory"),
    "memory-swap": _size_field("memory_swap", allow_minus_one=True),
    "pids-limit": _int_field("pids_limit", check=check_pids_limit),
    "cpus": _cpus,
    "cpu-shares": _int_field("cpu_shares", minimum=0),
    "ulimit": _ulimit,
    "device": _device,
    "publish": _publish,
    "expose": _expose,
    "volume": _volume,
    "mount": _mount,
    "tmpfs": _tmpfs,
    "sysctl": _sysctl,
}


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


# ---------------------------------------------------------------------------- help

USAGE = "Usage: hardrun run [OPTIONS] [--rootfs DIR] [--] COMMAND [ARG...]"


def run_help() -> str:
    """`hardrun run --help`, generated from FLAGS: only the flags the runtime supports."""
    rows = []
    for flag in sorted((f for f in FLAGS if f.runtime), key=lambda f: f.name):
        names = (f"-{flag.short}, " if flag.short else "    ") + f"--{flag.name}"
        for alias in flag.aliases:
            names += f", --{alias}"
        if flag.metavar:
            names += f" {flag.metavar}"
        rows.append((names, flag.help))
    width = min(max(len(names) for names, _ in rows) + 2, 38)
    lines = [USAGE, "",
             "Run COMMAND in a container that is hardened by default: no capabilities,",
             "no_new_privs, a read-only root, a seccomp allowlist, remapped user ids and new",
             "namespaces. Every loosening must be asked for with a flag.", "", "Options:"]
    for names, text in rows:
        if len(names) + 2 > width:
            lines.append(f"  {names}")
            lines.append(" " * (width + 2) + text)
        else:
            lines.append(f"  {names.ljust(width)}{text}")
    return "\n".join(lines) + "\n"
