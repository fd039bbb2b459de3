"""`docker run` / `docker create` / `podman run` / `hardrun run` argv, split the way
Docker's CLI (pflag, interspersed off) does: options first, then the image and its
command (for `hardrun run`: the command), each option with its row of the flag table
(docker_flags.py). `parse_hardrun_args` reads `hardrun run`'s whole command line into
the RunSpec it asks for and hardrun's own options.

On `hardrun run`'s start-up path: standard library only, and only cheap modules at
import time (no `re`, no `dataclasses` module).
"""
from __future__ import annotations

from ..errors import UsageError
from ..spec.record import dataclass
from ..spec.run import RunSpec
from .docker_flags import BOOL, DOCKER, HARDRUN, Flag, flags_for
from .docker_runspec import parse_bool, runspec_from_args


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
    after_dashdash: bool = False    # the args followed a `--`

    @property
    def image(self) -> str | None:
        if self.hardrun_mode:
            return self.args[0] if self._hardrun_image() else None
        return self.args[0] if self.args else None

    @property
    def command(self) -> tuple[str, ...]:
        if self.hardrun_mode:
            return self.args[1:] if self._hardrun_image() else self.args
        return self.args[1:]

    def _hardrun_image(self) -> bool:
        """`hardrun run IMAGE [COMMAND…]`: the first word is an image unless --rootfs is
        given, the words follow `--`, or it is a path (`/bin/sh`, `./x`: a command)."""
        return (bool(self.args) and not self.after_dashdash and not self.has("rootfs")
                and not self.args[0].startswith(("/", ".")))

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
    dashdash = False
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            dashdash = True
            break
        if not word.startswith("-") or word == "-":
            break
        if word.startswith("--"):
            i = _long(argv, i, longs, state)
        else:
            i = _short_cluster(argv, i, shorts, state)
    args = tuple(argv[i:])
    return ParsedRun(tuple(state.options), args, i if args else None, tuple(state.unknown),
                     hardrun_mode, tuple(state.missing), dashdash)


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
    pull: str = "missing"
    platform: str | None = None


PULL_POLICIES = ("always", "missing", "never")


def hardrun_options(parsed: ParsedRun) -> HardrunOptions:
    limits = parsed.value("limits") or "strict"
    if limits not in LIMITS_MODES:
        raise UsageError(f"invalid value {limits!r} for --limits: expected best-effort or strict")
    pull = parsed.value("pull") or "missing"
    if pull not in PULL_POLICIES:
        raise UsageError(f"invalid value {pull!r} for --pull: expected always, missing or never")
    return HardrunOptions(pull=pull, platform=parsed.value("platform"),
                          dry_run=parsed.flag_on("dry-run"), policy=parsed.value("policy"),
                          config=parsed.value("config"), limits=limits,
                          help=parsed.flag_on("help"), tty=parsed.flag_on("tty"),
                          interactive=parsed.flag_on("interactive"))


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
