"""The ShellCheck bridge: the shell code of a Dockerfile's RUNs checked by ShellCheck.

Optional: it runs when `shellcheck` is on PATH or named with `--shellcheck PATH`. Each
shell-form RUN (a lone `RUN <<EOF` script included) becomes one small script, written
as the shell will see it: the keyword and flags blanked out so that columns stay, the
comment and blank lines Docker drops inside a continued instruction turned into a bare
continuation, a first line naming the dialect (the stage's SHELL: sh, bash, dash or
ksh; other shells are skipped) and a second exporting the stage's ARG and ENV names so
that ShellCheck does not report them unset. All the scripts of one Dockerfile go to one
ShellCheck process (`-f json1`, one file per RUN, so that RUNs do not see each other's
variables, as in a build); each comment is mapped back to the Dockerfile's line and
column and reported under its own code (`SC2086`) by the rule HR1020.
"""
from __future__ import annotations

import os
from ..spec.record import dataclass  # not dataclasses: see record.py
from functools import lru_cache

from ..errors import HardrunError, UsageError
from ..parsing.patterns import lazy

GROUP_RULE = "HR1020"          # the rule (and practice `shellcheck`) every SC code reports under
AUTO = "auto"                  # AuditOptions.shellcheck: look for `shellcheck` on PATH
CODE = lazy(r"^SC[0-9]{4}$")
SEVERITY = {"error": "error", "warning": "warning", "info": "info", "style": "info"}
WIKI = "https://www.shellcheck.net/wiki/"
# `source` of a file in the image cannot be followed from here.
EXCLUDED = ("SC1090", "SC1091")
TIMEOUT = 120
_PREAMBLE_LINES = 2
_DIALECTS = {"sh": "sh", "ash": "sh", "busybox": "sh", "dash": "dash", "bash": "bash",
             "ksh": "ksh", "mksh": "ksh", "ksh93": "ksh"}
# Build arguments every build has without an ARG (the proxies) and those BuildKit sets.
PREDEFINED = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_NAME = lazy(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FLAG_END = lazy(r"""(?:[^\s"'\\]|\\.|"(?:[^"\\]|\\.)*"|'[^']*')*""")
_LONE_HEREDOC = lazy(r"\s*\d*<<-?[^<\s]+\s*")
_SOURCE_DIRECTIVE = lazy(r"shellcheck\b[^\n]*\bsource")


def is_code(rule_id: str) -> bool:
    """Whether `rule_id` names a ShellCheck code (`SC2086`)."""
    return bool(CODE.match(rule_id))


@lru_cache(maxsize=None)
def _on_path(path_variable: str | None) -> str | None:
    """`shutil.which("shellcheck")` without importing shutil (with bz2 and lzma: about
    2 ms of every Dockerfile audit)."""
    folders = (os.defpath if path_variable is None else path_variable).split(os.pathsep)
    for folder in folders if path_variable != "" else ():
        candidate = os.path.join(folder, "shellcheck")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def binary(choice: str | None) -> str | None:
    """The ShellCheck to run: `choice` itself, the one on PATH for AUTO, None for none."""
    if choice == AUTO:
        return _on_path(os.environ.get("PATH"))
    return choice


def checked_binary(path: str) -> str:
    """`path` as given to --shellcheck, if it is an executable file; UsageError otherwise."""
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise UsageError(f"--shellcheck {path}: no executable file there (install Debian's "
                         "`shellcheck` package or name the binary)")
    return path


@dataclass(frozen=True)
class Script:
    """One RUN's shell code as ShellCheck reads it, and where its lines come from."""
    dialect: str
    names: tuple[str, ...]         # ARG and ENV names in scope
    lines: tuple[str, ...]
    first_line: int                # the Dockerfile line of lines[0]
    instruction_line: int          # the line of the RUN

    def text(self) -> str:
        declared = " ".join(f"{name}=''" for name in self.names)
        preamble = (f"# shellcheck shell={self.dialect}", f"export {declared}" if declared else ":")
        return "\n".join(preamble + self.lines) + "\n"

    def dockerfile_line(self, line: int) -> int | None:
        """The Dockerfile line of the script's `line`; None for the preamble."""
        index = line - _PREAMBLE_LINES - 1
        return self.first_line + index if 0 <= index < len(self.lines) else None


@dataclass(frozen=True)
class Comment:
    code: str
    severity: str
    message: str
    line: int
    column: int


MAX_SCRIPTS = 1000   # RUNs checked per Dockerfile; a longer one is generated, not written


@dataclass(frozen=True)
class _Scope:
    """What a RUN's script inherits: the shell running it and the ARG/ENV names set."""
    shell: tuple[str, ...]
    names: dict

    def after(self, instruction) -> "_Scope":
        if instruction.keyword == "SHELL" and instruction.exec_form:
            return _Scope(instruction.exec_form, self.names)
        if instruction.keyword in ("ARG", "ENV"):
            return _Scope(self.shell, {**self.names, **dict.fromkeys(n for n, _ in instruction.pairs)})
        return self


def scripts(dockerfile, text: str) -> tuple[list[Script], int | None]:
    """A Script for each RUN of `dockerfile` (whose source is `text`) ShellCheck can read,
    at most MAX_SCRIPTS of them, and the line of the first RUN left unchecked (or None)."""
    if dockerfile.escape != "\\":
        return [], None     # a backtick escape (Windows images) is not the shell's continuation
    source = text.replace("\r\n", "\n").split("\n")
    start = _Scope(("/bin/sh",), dict.fromkeys(PREDEFINED))
    for instruction in dockerfile.global_args:
        start = start.after(instruction)
    ends: dict[int, _Scope] = {}        # stage index -> its scope after its last instruction
    out: list[Script] = []
    for stage in dockerfile.stages:
        scope = ends.get(stage.parent, start) if stage.parent is not None else start
        for instruction in stage.instructions:
            scope = scope.after(instruction)
            if instruction.keyword != "RUN" or instruction.exec_form is not None \
                    or not instruction.pipelines:
                continue     # exec form runs no shell; no pipelines: the stage's shell is not POSIX
            dialect = _DIALECTS.get(scope.shell[0].replace("\\", "/").rsplit("/", 1)[-1].lower())
            if dialect is None:
                continue
            if len(out) == MAX_SCRIPTS:
                return out, instruction.line
            names = tuple(name for name in scope.names if _NAME.match(name))
            script = _script(instruction, source, dialect, names)
            if script is not None:
                out.append(script)
        ends[stage.index] = scope
    return out, None


def _script(instruction, source, dialect: str, names) -> Script | None:
    heredocs = instruction.heredocs
    if len(heredocs) == 1 and len(instruction.pipelines) and _lone_heredoc(instruction):
        body = heredocs[0]
        body_lines = tuple(body.body.split("\n"))
        if body_lines and body_lines[-1] == "":
            body_lines = body_lines[:-1]
        shebang = _shebang_dialect(body_lines[0]) if body_lines and body_lines[0].startswith("#!") else dialect
        if shebang is None:
            return None
        return Script(shebang, _used(names, body_lines), body_lines, body.line, instruction.line)
    command_end = heredocs[0].line - 1 if heredocs else instruction.end_line
    lines = list(source[instruction.line - 1:instruction.end_line])
    _blank_keyword_and_flags(lines)
    for number in range(1, command_end - instruction.line + 1):
        stripped = lines[number].strip()
        if not stripped or stripped.startswith("#"):
            lines[number] = "\\"     # Docker drops it; the command goes on to the next line
    return Script(dialect, _used(names, lines), tuple(lines), instruction.line, instruction.line)


def _used(names, lines) -> tuple[str, ...]:
    """The names the script mentions: declaring every name in scope only slows ShellCheck
    down (it doubled its time on tests/data/dockerfiles)."""
    text = "\n".join(lines)
    return tuple(name for name in names if name in text)


def _lone_heredoc(instruction) -> bool:
    """`RUN <<EOF`: the body is the script (not the stdin of a command)."""
    return _LONE_HEREDOC.fullmatch(instruction.args) is not None


def _shebang_dialect(line: str) -> str | None:
    words = line[2:].split()
    if not words:
        return "sh"
    program = words[0]
    if program.rsplit("/", 1)[-1] == "env":
        program = next((word for word in words[1:] if not word.startswith("-")), "")
    return _DIALECTS.get(program.rsplit("/", 1)[-1])


def _blank_keyword_and_flags(lines: list[str]) -> None:
    """Replace `RUN` and its `--flags` with spaces (in place), so that columns stay."""
    row, column = 0, len(lines[0]) - len(lines[0].lstrip()) + 3     # past `RUN`
    lines[0] = " " * column + lines[0][column:]
    while row < len(lines):
        line = lines[row]
        while column < len(line) and line[column] in " \t":
            column += 1
        if column >= len(line) or line[column:].strip() == "\\":
            row, column = row + 1, 0      # a continuation between flags
            continue
        if not line.startswith("--", column):
            return
        flag = _FLAG_END.match(line, column)
        assert flag is not None, "_FLAG_END matches the empty string too"
        end = flag.end()
        lines[row] = line[:column] + " " * (end - column) + line[end:]
        column = end


def check(binary_path: str, found: list[Script]) -> list[tuple[Script, Comment]]:
    """ShellCheck's comments on `found`, mapped to the Dockerfile (comments on the preamble
    dropped). Verdicts come from the cache (see `_verdict_keys`) where they can; the
    scripts it lacks go to one ShellCheck process. HardrunError when ShellCheck fails."""
    if not found:
        return []
    keys = _verdict_keys(binary_path, found)
    verdicts: list[list | None] = [_cached_verdict(key) for key in keys] if keys else [None] * len(found)
    missing = [number for number, verdict in enumerate(verdicts) if verdict is None]
    if missing:
        fresh = _run_shellcheck(binary_path, [found[number] for number in missing])
        for number, verdict in zip(missing, fresh):
            verdicts[number] = verdict
        if keys:
            from .. import cache
            for number in missing:
                cache.store(CACHE_KIND, keys[number], verdicts[number])
    return [(script, comment) for script, verdict in zip(found, verdicts)
            for comment in _mapped(script, verdict or [])]


def _run_shellcheck(binary_path: str, found: list[Script]) -> list[list]:
    """ShellCheck's verdict on each of `found` (one process for all of them): a list of
    [code, level, message, line, column] in the script's own lines, in ShellCheck's order."""
    try:
        directory = _scratch_directory()
    except OSError as error:
        raise HardrunError(f"shellcheck could not check the RUN instructions: {error}") from None
    paths = [os.path.join(directory, f"run{number}.sh") for number in range(len(found))]
    try:
        for path, script in zip(paths, found):
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(script.text())
        status, output, errors = _run([binary_path, *ARGUMENTS, *paths], os.path.join(directory, "stderr"))
    except OSError as error:
        raise HardrunError(f"shellcheck could not check the RUN instructions: {error}") from None
    finally:
        for path in paths + [os.path.join(directory, "stderr")]:
            if os.path.lexists(path):
                os.unlink(path)
        os.rmdir(directory)
    if status not in (0, 1):
        detail = errors.decode("utf-8", "replace").strip().splitlines()
        raise HardrunError(f"shellcheck failed (exit {status}): {detail[0] if detail else 'no message'}")
    return _verdicts(output, paths)


# --- the verdict cache ------------------------------------------------------------------
#
# ShellCheck's own process costs about 5 ms of CPU per audited Dockerfile, most of a
# one-file audit. Its verdict on a script depends on the script's text (the dialect is
# its first line), the binary and the arguments hardrun gives it, all of them in the key.
# No rc file is read (--norc): the scripts are written to a scratch directory, where the
# first `.shellcheckrc` up the tree would be anyone's (another user's /tmp/.shellcheckrc
# could switch checks off), and a RUN is judged the same on every machine, as hadolint
# judges it. What could make the verdict depend on other files is never cached:
# SHELLCHECK_OPTS (it may carry -x or --rcfile), a script with a `source` directive.

CACHE_KIND = "shellcheck"
ARGUMENTS = ("--norc", "-f", "json1", "-e", ",".join(EXCLUDED), "--")


def _verdict_keys(binary_path: str, found: list[Script]) -> list[str] | None:
    """The cache key of each script's verdict; None when the verdicts may not be cached."""
    if os.environ.get("SHELLCHECK_OPTS"):
        return None
    texts = [script.text() for script in found]
    if any(_SOURCE_DIRECTIVE.search(text) for text in texts):
        return None
    from .. import cache
    binary_identity = cache.identities([os.path.abspath(binary_path)])
    if binary_identity.endswith(b"\0missing"):
        return None
    # the binary as the key knows it: a new build or a replaced binary changes its
    # inode, size or times
    common = [cache.identities([__file__]), binary_identity, *(part.encode() for part in ARGUMENTS)]
    return [cache.fingerprint(common + [script.dialect.encode(), text.encode()])
            for script, text in zip(found, texts)]


def _cached_verdict(key: str) -> list | None:
    """The stored verdict under `key` if it is one (a damaged entry is a miss)."""
    from .. import cache
    verdict = cache.load(CACHE_KIND, key)
    if not isinstance(verdict, list) or not all(_is_comment(item) for item in verdict):
        return None
    return verdict


def _is_comment(item) -> bool:
    return (isinstance(item, list) and len(item) == 5 and isinstance(item[0], int)
            and isinstance(item[1], str) and isinstance(item[2], str)
            and isinstance(item[3], int) and isinstance(item[4], int))


def _scratch_directory() -> str:
    """A new private directory for the scripts, where `tempfile` would make one (tempfile,
    subprocess and shutil cost about 5 ms of every Dockerfile audit to import)."""
    base = next((os.environ[name] for name in ("TMPDIR", "TEMP", "TMP") if os.environ.get(name)), "/tmp")
    path = os.path.join(base, f"hardrun-sc-{os.getpid()}-{os.urandom(8).hex()}")
    os.mkdir(path, 0o700)
    return path


def _run(argv: list[str], error_path: str) -> tuple[int, bytes, bytes]:
    """The exit status, output and error output of `argv` (stdin inherited, the error
    output through a file); HardrunError after TIMEOUT seconds. On every way out but a
    normal exit (the timeout, an interruption, any error) the process is killed and reaped."""
    read_end, write_end = os.pipe()    # both close-on-exec; dup2 makes the child's stdout inheritable
    error_fd = os.open(error_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1),
                                           (os.POSIX_SPAWN_DUP2, error_fd, 2)])
    except OSError:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
        os.close(error_fd)
    try:
        output = _read_to_end(read_end)
        _, status = os.waitpid(pid, 0)
    except BaseException:
        _stop(pid)
        raise
    finally:
        os.close(read_end)
    with open(error_path, "rb") as stream:
        errors = stream.read(1 << 16)
    return os.waitstatus_to_exitcode(status), output, errors


def _read_to_end(read_end: int) -> bytes:
    """Everything until the writer closes; HardrunError when that takes over TIMEOUT seconds."""
    import select
    import time
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    poller = select.poll()
    poller.register(read_end, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise HardrunError(f"shellcheck could not check the RUN instructions: no answer in {TIMEOUT} seconds")
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _stop(pid: int) -> None:
    """Kill and reap the ShellCheck process: no straggler, no zombie."""
    os.kill(pid, 9)     # SIGKILL (the signal module costs an import)
    os.waitpid(pid, 0)


def _verdicts(output: bytes, paths: list[str]) -> list[list]:
    """ShellCheck's JSON report split into one verdict per script (see _run_shellcheck)."""
    import json
    try:
        comments = json.loads(output)["comments"]
    except (ValueError, KeyError, TypeError):
        raise HardrunError("shellcheck printed no JSON report (is it ShellCheck 0.7 or newer?)") from None
    by_path: dict[str, list] = {path: [] for path in paths}
    for item in comments:
        verdict = by_path.get(item.get("file"))
        if verdict is not None:
            verdict.append([item["code"], item["level"], item["message"], item["line"], item["column"]])
    return list(by_path.values())


def _mapped(script: Script, verdict: list):
    """The comments of one script's verdict on the Dockerfile's lines (none on the preamble)."""
    for code, level, message, line, column in verdict:
        dockerfile_line = script.dockerfile_line(line)
        if dockerfile_line is not None:
            yield Comment(f"SC{code}", SEVERITY.get(level, "info"), message, dockerfile_line, column)
