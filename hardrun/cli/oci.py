"""`hardrun-oci` (also `hardrun oci`): runc's command line over hardrun.runtime.oci.

Parsed by hand, not with click: engines call it several times per container and its
start-up is measured against runc's. Errors are one line on stderr and, with `--log`, a
line in the log file (`--log-format json`: `{"level":"error","msg":…,"time":…}`, which is
what Docker, containerd and Kubernetes show the user).

At `create` the bundle is judged by the policy (`--policy NAME|FILE`; else
/etc/hardrun/policy.yaml if present, else the built-in `default`) with the rules and rule
ids of `hardrun audit` of a config.json: a refused bundle is not created (exit 3). Then
the floor is raised (hardrun.runtime.bundle.raise_floor) unless `--no-floor`.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import TypeGuard

    from ..runtime.process import StepFailure

VERSION_LINE = "hardrun-oci version {version}\nspec: 1.0.2"
SYSTEM_POLICY = "/etc/hardrun/policy.yaml"
GATE_REFUSED_EXIT = 3

USAGE = """usage: hardrun-oci [GLOBAL OPTIONS] COMMAND [OPTIONS] [ID]

An OCI runtime (runc's command line) that runs containers with hardrun's confinement.

global options:
  --root DIR              state directory (default /run/hardrun-oci)
  --log FILE              append errors (and with --debug, progress) to FILE
  --log-format text|json  the log's format (default text)
  --debug                 log progress, not only errors
  --systemd-cgroup        refused: cgroups through systemd are not supported
  --policy NAME|FILE      the policy create judges bundles with (default: /etc/hardrun/policy.yaml
                          if present, else the built-in `default`)
  --no-floor              do not raise the floor (no_new_privs, seccomp, kernel paths, NET_RAW)
  --explain               record the calls each container's seccomp filter refuses, exec'd
                          processes' too (shown by `hardrun inspect PID`; a holder process per
                          container, reaped by delete, which keeps the record in the state root's
                          .explain/ for `hardrun gc` to remove after 7 days)
  --userns auto|keep      auto (default): a bundle without a user namespace gets one of its own
                          (a leased id range, idmapped root and binds; the create fails if they
                          cannot be idmapped), a pod's containers and a container joining a
                          hardrun-oci container's namespaces share that one's; keep: the
                          engine's choice
  --version, -v           print the version
  --help, -h              this help

commands:
  create --bundle DIR [--pid-file FILE] [--console-socket SOCK] [--no-pivot]
         [--no-new-keyring] [--preserve-fds N] ID
  start ID                    run the created container's process
  exec [--process FILE] [--detach] [--pid-file FILE] [--console-socket SOCK] [--tty]
       [--cwd DIR] [--env K=V]... [--preserve-fds N] ID [COMMAND [ARG...]]
                              a new process in the container, with its confinement
  run --bundle DIR [--pid-file FILE] [--console-socket SOCK] [--preserve-fds N] ID
                              create, start, wait; exit with the process's status
  state ID                    the container's state (JSON)
  kill [--all] ID [SIGNAL]    send SIGNAL (default TERM; 15, TERM or SIGTERM)
  delete [--force] ID         remove the container (--force: kill it first)
  list [--format table|json] [--quiet]
  ps [--format table|json] ID the container's processes
  pause ID / resume ID        freeze / thaw every process of the container
  update --resources FILE|- ID  new cgroup limits (linux.resources JSON)
  features                    what this runtime supports (JSON)
"""

# subcommand -> ({option: takes a value}, number of positional arguments (min, max))
COMMANDS = {
    "create": ({"--bundle": True, "-b": True, "--pid-file": True, "--console-socket": True,
                "--no-pivot": False, "--no-new-keyring": False, "--preserve-fds": True}, (1, 1)),
    "run": ({"--bundle": True, "-b": True, "--pid-file": True, "--console-socket": True,
             "--no-pivot": False, "--no-new-keyring": False, "--preserve-fds": True, "--detach": False,
             "-d": False}, (1, 1)),
    "exec": ({"--process": True, "-p": True, "--detach": False, "-d": False, "--pid-file": True,
              "--console-socket": True, "--tty": False, "-t": False, "--cwd": True, "--env": True, "-e": True,
              "--preserve-fds": True}, (1, None)),
    "start": ({}, (1, 1)),
    "state": ({}, (1, 1)),
    "kill": ({"--all": False, "-a": False}, (1, 2)),
    "delete": ({"--force": False, "-f": False}, (1, 1)),
    "list": ({"--format": True, "-f": True, "--quiet": False, "-q": False}, (0, 0)),
    "ps": ({"--format": True, "-f": True}, (1, 1)),
    "pause": ({}, (1, 1)),
    "resume": ({}, (1, 1)),
    "update": ({"--resources": True, "-r": True}, (1, 1)),
    "features": ({}, (0, 0)),
}
ALIASES = {"-b": "--bundle", "-a": "--all", "-f": None, "-q": "--quiet", "-r": "--resources", "-d": "--detach",
           "-p": "--process", "-t": "--tty", "-e": "--env"}
REPEATED = ("--env",)


class _Usage(Exception):
    pass


class Log:
    """Where errors go: one line on stderr, and the --log file in its format."""

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False):
        self.path, self.fmt, self.debug_on = path, fmt, debug

    def write(self, level: str, message: str) -> None:
        if not self.path:
            return
        import time
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        if self.fmt == "json":
            from ..jsonlite import dumps
            line = dumps({"level": level, "msg": message, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg="{message}"'
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass

    def error(self, message: str) -> None:
        self._report("error", message, "")

    def warning(self, message: str) -> None:
        self._report("warning", message, "warning: ")

    def _report(self, level: str, message: str, prefix: str) -> None:
        # the log first, and stderr unbuffered and optional: the CRI shim creates a pod's
        # sandbox with an fd 2 that cannot be written (EBADF), and the log is what it reads
        self.write(level, message)
        try:
            os.write(2, f"hardrun-oci: {prefix}{message}\n".encode(errors="replace"))
        except OSError:
            pass

    def debug(self, message: str) -> None:
        if self.debug_on:
            self.write("debug", message)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = Log()
    try:
        options, command, rest = _global_options(argv)
        log = Log(options.get("--log"), options.get("--log-format", "text"), "--debug" in options)
        if command is None:
            if "--version" in options:
                from .. import __version__
                print(VERSION_LINE.format(version=__version__))
                return 0
            print(USAGE, end="")
            return 0 if "--help" in options else 2
        if "--systemd-cgroup" in options:
            _refuse_systemd()
        sub, positional = _command_options(command, rest)
        log.debug(f"{command} {' '.join(positional)}")
        return _dispatch(command, sub, positional, options, log)
    except _Usage as error:
        log.error(f"{error} (hardrun-oci --help)")
        return 2
    except Exception as error:   # one line, never a traceback: the engine shows it to the user
        from ..errors import HardrunError
        if not isinstance(error, (HardrunError, OSError)) and not _is_step_failure(error):
            raise
        log.error(_message(error))
        return _exit_code(error)


def _is_step_failure(error: BaseException) -> TypeGuard[StepFailure]:
    from ..runtime.process import StepFailure
    return isinstance(error, StepFailure)


def _message(error: BaseException) -> str:
    if _is_step_failure(error):
        return error.line().removeprefix("hardrun: ")
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    text = str(error)
    hint = getattr(error, "hint", None)
    return f"{text} ({hint})" if hint and hint not in text else text


def _exit_code(error: BaseException) -> int:
    from ..errors import UsageError
    if getattr(error, "gate_refused", False):
        return GATE_REFUSED_EXIT
    return 2 if isinstance(error, UsageError) and not _is_step_failure(error) else 1


def _global_options(argv):
    options: dict = {}
    index = 0
    takes_value = {"--root", "--log", "--log-format", "--policy", "--criu", "--rootless", "--userns"}
    flags = {"--debug", "--systemd-cgroup", "--no-floor", "--explain", "--version", "-v", "--help", "-h"}
    while index < len(argv):
        arg = argv[index]
        if not arg.startswith("-"):
            break
        name, has_value, value = arg.partition("=")
        if name in takes_value:
            if not has_value:
                index += 1
                if index >= len(argv):
                    raise _Usage(f"{name} needs a value")
                value = argv[index]
            options[name] = value
        elif name in flags and not has_value:
            options[{"-v": "--version", "-h": "--help"}.get(name, name)] = True
        else:
            raise _Usage(f"unknown global option {arg}")
        index += 1
    if options.get("--log-format", "text") not in ("text", "json"):
        raise _Usage(f"--log-format {options['--log-format']}: expected text or json")
    if options.get("--userns", "auto") not in ("auto", "keep"):
        raise _Usage(f"--userns {options['--userns']}: expected auto or keep")
    if options.get("--rootless") not in (None, "auto", "false"):
        raise _Usage("--rootless: hardrun-oci runs as root only")
    if "--criu" in options:
        raise _Usage("--criu: checkpoint and restore are not supported")
    command = argv[index] if index < len(argv) else None
    return options, command, argv[index + 1:]


def _command_options(command: str, rest):
    if command not in COMMANDS:
        raise _Usage(f"unknown command {command!r}")
    known, (least, most) = COMMANDS[command]
    options: dict = {}
    positional = []
    index = 0
    while index < len(rest):
        arg = rest[index]
        if arg == "--":
            positional += rest[index + 1:]
            break
        if arg.startswith("-") and len(positional) < max(least, 1) and arg not in ("-",):
            name, has_value, value = arg.partition("=")
            if name not in known:
                raise _Usage(f"{command}: unknown option {arg}")
            if known[name]:
                if not has_value:
                    index += 1
                    if index >= len(rest):
                        raise _Usage(f"{command}: {name} needs a value")
                    value = rest[index]
                key = _canonical(command, name)
                if key in REPEATED:
                    options.setdefault(key, []).append(value)
                else:
                    options[key] = value
            else:
                options[_canonical(command, name)] = True
        else:
            positional.append(arg)
        index += 1
    if len(positional) < least or (most is not None and len(positional) > most):
        raise _Usage(f"{command}: expected {'an ID' if least == 1 else 'no argument'}"
                     + (" and an optional signal" if most == 2 else ""))
    return options, positional


def _canonical(command: str, name: str) -> str:
    if name == "-f":
        return "--force" if command == "delete" else "--format"
    return ALIASES.get(name) or name


def _refuse_systemd() -> None:
    from ..errors import UsageError
    if not os.path.isdir("/run/systemd/system"):
        raise UsageError("--systemd-cgroup: systemd is not running on this host",
                         hint="drop --systemd-cgroup (the engine's cgroup manager: cgroupfs)")
    raise UsageError("--systemd-cgroup: cgroups through systemd are not supported",
                     hint="use the cgroupfs cgroup manager")


def _dispatch(command: str, sub: dict, positional, options: dict, log: Log) -> int:
    from ..runtime import oci
    root = options.get("--root", oci.DEFAULT_ROOT)
    container_id = positional[0] if positional else ""     # list and features take none
    if command in ("create", "run"):
        return _create(root, container_id, sub, options, log, run=command == "run")
    if command == "exec":
        return _exec(root, container_id, positional[1:], sub)
    if command == "start":
        oci.start(root, container_id)
    elif command == "state":
        _print_json(oci.Container.load(root, container_id).full_state())
    elif command == "kill":
        signum = oci.parse_signal(positional[1] if len(positional) > 1 else "TERM")
        oci.kill(root, container_id, signum, all_processes="--all" in sub)
    elif command == "delete":
        oci.delete(root, container_id, force="--force" in sub, warn=log.warning)
    elif command == "list":
        _list(root, sub)
    elif command == "ps":
        _ps(root, container_id, sub.get("--format", "table"))
    elif command in ("pause", "resume"):
        oci.freeze(root, container_id, frozen=command == "pause")
    elif command == "update":
        oci.update(root, container_id, _resources(sub.get("--resources")))
    elif command == "features":
        _print_json(oci.features())
    return 0


def _create(root: str, container_id: str, sub: dict, options: dict, log: Log, run: bool) -> int:
    from ..runtime import bundle as bundle_module, oci, oci_create
    bundle = sub.get("--bundle") or os.getcwd()
    preserve = _preserve_fds(sub)
    # config.json is decoded once: the gate judges the record the loader then maps
    decoded = judge_bundle(bundle, options.get("--policy"), floor="--no-floor" not in options)
    create_options = oci_create.CreateOptions(bundle, sub.get("--pid-file"), sub.get("--console-socket"),
                                              preserve, "--no-pivot" in sub, floor="--no-floor" not in options,
                                              explain="--explain" in options,
                                              userns=options.get("--userns", "auto"), log=log.write)
    loaded = bundle_module.load(bundle, no_pivot="--no-pivot" in sub, decoded=decoded)
    container = oci_create.create(root, container_id, create_options, bundle=loaded)
    log.debug(f"created {container_id}: pid {container.record['pid']}")
    if not run:
        return 0
    oci.start(root, container_id)
    if "--detach" in sub:
        return 0
    status = oci.wait(container.record["pid"])
    oci.delete(root, container_id, force=True, warn=log.warning)
    return status


def judge_bundle(bundle: str, policy_name: str | None, floor: bool = True) -> tuple:
    """The policy gate of `create`: the bundle's config.json judged as `hardrun audit`
    judges one (its front end's mapping, the run rules, the policy), as it will run: with
    the floor raised (what the floor guarantees is not held against it). A refusal names
    the rule ids. A verdict on the same bytes under the same policy and code comes from the
    verdict cache (hardrun/policy/verdict_cache.py), which imports none of the audit side.
    Returns the config decoded (runtime.bundle.decode_text: the OciConfig and the floor's
    changes), for the loader to map: one decode per create."""
    from ..errors import HardrunError
    from ..policy import verdict_cache
    from ..userfiles import read_bytes
    path = os.path.join(os.path.abspath(bundle), "config.json")
    if policy_name is None:
        policy_name = SYSTEM_POLICY if os.path.isfile(SYSTEM_POLICY) else "default"
    try:
        config = read_bytes(path)
    except HardrunError as error:
        raise HardrunError(f"{path}: {error.message}") from None
    decoded = _decode(config, path, floor)
    cache_key = verdict_cache.key(config, policy_name, floor, os.path.dirname(path))
    verdict = verdict_cache.lookup(cache_key)
    if verdict is None:
        policy_files, refusal = _judge_decoded(decoded, path, policy_name)
        if policy_files:
            verdict_cache.store(cache_key, policy_files, refusal)
        verdict = (refusal is None, refusal)
    allowed, refusal = verdict
    if not allowed:
        assert refusal is not None, "a refused verdict carries its message"
        refused = HardrunError(refusal)
        setattr(refused, "gate_refused", True)     # _exit_code's mark: exit GATE_REFUSED_EXIT
        raise refused
    return decoded


def _decode(config: bytes, path: str, floor: bool) -> tuple:
    """config.json's bytes decoded once (runtime.bundle.decode_text). What is not a JSON
    object is refused in the words of the audit's reader, at its line, as the gate always
    has (exit 1)."""
    from ..runtime.bundle import BundleError, decode_text
    from ..userfiles import decode
    text = decode(config)
    try:
        return decode_text(os.path.dirname(path), text, floor)
    except BundleError:
        from ..frontends.oci import parse_oci
        parse_oci(text, path)   # its ParseError, when YAML refuses it too
        raise


def _judge(config: bytes, path: str, policy_name: str, floor: bool) -> tuple[list, str | None]:
    """The plain gate of config.json's bytes (no verdict cache): `_judge_decoded`."""
    return _judge_decoded(_decode(config, path, floor), path, policy_name)


def _judge_decoded(decoded: tuple, path: str, policy_name: str) -> tuple[list, str | None]:
    """The plain gate of a decoded config (decode_text's OciConfig and floor changes): (the
    policy's files, the refusal's message or None when allowed). No files (nothing to cache)
    when the verdict depends on more than the bundle and the policy: an exemption scoped to
    files (the config's path) or one that expires (the date)."""
    from ..frontends.oci import spec_of
    from ..policy.evaluate import evaluate_runspec, failing
    from ..policy.load import builtin_policies, load_policy
    policy = load_policy(policy_name)
    config, changes = decoded
    spec = spec_of(config, path, lines=False)
    if any(change.field == "linux.seccomp" for change in changes):   # hardrun's allowlist
        spec = spec.evolve(seccomp=None)
    findings = evaluate_runspec(spec, policy)
    blocking = failing(findings, policy)
    builtins = builtin_policies()
    policy_files = [str(builtins.get(name, name)) for name in policy.chain]
    if any(exemption.files or exemption.expires for exemption in policy.exemptions):
        policy_files = []
    if not blocking or policy.runtime.gate == "warn":
        return policy_files, None
    ids = sorted({finding.rule for finding in blocking})
    # in an order of their own, not the config's: the verdict cache keys Podman's environment sorted
    shown = sorted(blocking, key=lambda finding: (finding.rule, finding.message))[:5]
    details = "; ".join(f"{finding.rule} {finding.message}" for finding in shown)
    return policy_files, (f"refused by policy {policy.name}: {', '.join(ids)} ({details}); "
                          "the container was not created")


def _exec(root: str, container_id: str, command, sub: dict) -> int:
    from ..runtime.oci_exec import ExecOptions, exec_process
    options = ExecOptions(sub.get("--process"), command, sub.get("--cwd"), sub.get("--env", ()),
                          "--tty" in sub, "--detach" in sub, sub.get("--pid-file"), sub.get("--console-socket"),
                          _preserve_fds(sub))
    return exec_process(root, container_id, options)


def _preserve_fds(sub: dict) -> int:
    from ..errors import UsageError
    try:
        count = int(sub.get("--preserve-fds", 0))
    except ValueError:
        raise UsageError(f"--preserve-fds {sub['--preserve-fds']}: expected a number") from None
    if count < 0:
        raise UsageError("--preserve-fds: expected a number of 0 or more")
    return count


def _resources(source: str | None) -> dict:
    from ..errors import UsageError
    from ..userfiles import read_json_object
    if not source:
        raise UsageError("update: --resources FILE (or - for stdin) is required")
    return read_json_object(source, f"--resources {source}", "a JSON object (linux.resources)", UsageError)


def _list(root: str, sub: dict) -> None:
    from ..runtime import oci
    containers = oci.list_containers(root)
    if "--quiet" in sub:
        for container in containers:
            print(container.id)
        return
    states = [container.full_state() for container in containers]
    if sub.get("--format") == "json":
        _print_json(states)
        return
    print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<40} CREATED")
    for item in states:
        print(f"{item['id']:<20} {item['pid']:<8} {item['status']:<10} {item['bundle']:<40} {item['created']}")


def _ps(root: str, container_id: str, fmt: str) -> None:
    from ..runtime import oci
    pids = oci.processes(root, container_id)
    if fmt == "json":
        _print_json(pids)
        return
    if fmt != "table":
        from ..errors import UsageError
        raise UsageError(f"ps --format {fmt}: expected table or json")
    print("PID   CMD")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = "?"
        print(f"{pid:<5} {command}")


def _print_json(value) -> None:
    from ..jsonlite import dumps
    print(dumps(value))
