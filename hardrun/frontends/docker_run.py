"""The docker-run front end: `docker run` / `docker create` / `podman run` / `nerdctl run`
command lines found in shell scripts, Makefiles, CI YAML and Markdown code blocks.

Each command found becomes a RunSpec (kind `docker-run`) whose line is the line of
the `docker` word and whose subject is its first words (`docker run nginx:1.27`).
Nothing is executed or expanded: `$VAR` stays literal and is never taken for a
value it might hold.
"""
from __future__ import annotations

import os
import re

from ..errors import ParseError
from ..spec.run import RunSpec
from .docker_argv import parse_run_args
from .docker_runspec import runspec_from_args
from .detect import MAKEFILE_NAMES, MARKDOWN_SUFFIXES, YAML_SUFFIXES
from ..parsing.shell import is_shell, script_operand
from ..parsing.shell_words import Snippet, Word, commands

KIND = "docker-run"
ENGINES = ("docker", "podman", "nerdctl")
# Cheap test before any lexing: an engine name, then `run`/`create` later in the text.
_ENGINE_WORD = re.compile(r"\b(?:docker|podman|nerdctl)\b")
_RUN_WORD = re.compile(r"\b(?:run|create)\b")


def mentions_run(text: str) -> bool:
    engine = _ENGINE_WORD.search(text)
    return engine is not None and _RUN_WORD.search(text, engine.end()) is not None


# ----------------------------------------------------------------------------- detection

def file_type(path: str) -> str:
    """How a file holds commands: `script`, `make`, `markdown` or `yaml`."""
    name = os.path.basename(path)
    if name in MAKEFILE_NAMES or name.endswith(".mk"):
        return "make"
    if name.endswith(MARKDOWN_SUFFIXES):
        return "markdown"
    if name.endswith(YAML_SUFFIXES):
        return "yaml"
    return "script"


def claims(text: str, path: str) -> bool:
    """True when `text` (a file found while walking a tree) holds a docker run command."""
    if not mentions_run(text):
        return False
    try:
        return bool(_invocations(text, path))
    except ParseError:
        return True   # it mentions docker run and cannot be read: report the error


# ----------------------------------------------------------------------------- parsing

def parse(text: str, path: str) -> list[RunSpec]:
    """A RunSpec for every docker/podman/nerdctl run or create command in `text`."""
    return [_runspec(invocation, path) for invocation in _invocations(text, path)]


_CACHE: dict = {}


def _invocations(text: str, path: str) -> list["Invocation"]:
    # `claims` then `parse` read the same text: remember the last answer.
    kind = file_type(path)
    key = (id(text), kind)
    cached = _CACHE.get("last")
    if cached is not None and cached[0] == key and cached[1] is text:
        return cached[2]
    found: list[Invocation] = []
    if mentions_run(text):
        for snippet, strict in _snippets(text, path, kind):
            _collect(snippet, strict, path, found, 0)
    found.sort(key=lambda inv: inv.line)
    _CACHE["last"] = (key, text, found)
    return found


MAX_SHELL_C_DEPTH = 4


def _collect(snippet: Snippet, strict: bool, path: str, found: list, depth: int) -> None:
    for words in commands(snippet, strict=strict, path=path):
        program = _program_index(words)     # found once for both questions below
        if program is None:
            continue
        invocation = find_invocation(words, program)
        if invocation is not None:
            found.append(invocation)
            continue
        script = shell_c_script(words, program)
        if script is not None and depth < MAX_SHELL_C_DEPTH and mentions_run(script.text):
            # `sh -c "docker run …"`: the string is a script of its own, on the word's line.
            lines = [script.line] * (script.text.count("\n") + 1)
            _collect(Snippet(script.text, script.line, lines), False, path, found, depth + 1)


def _snippets(text: str, path: str, kind: str):
    """(Snippet, strict) pairs of shell text in the file."""
    if kind == "make":
        return [(s, False) for s in make_recipes(text)]
    if kind == "markdown":
        return [(s, False) for s in markdown_blocks(text)]
    if kind == "yaml":
        return [(s, False) for s in yaml_scripts(text, path)]
    return [(Snippet(text), True)]


# ----------------------------------------------------------------------------- commands

class Invocation:
    """One `docker run`-like command: the engine word, the subcommand and the run arguments."""
    __slots__ = ("program", "engine", "subcommand", "args")

    def __init__(self, program: Word, engine: str, subcommand: tuple[str, ...], args: list[Word]):
        self.program = program
        self.engine = engine
        self.subcommand = subcommand
        self.args = args

    @property
    def line(self) -> int:
        return self.program.line


# Words that may stand before the command itself, with the options that take a value.
_PREFIXES = {
    "sudo": frozenset("ugprhCDTUt") | {"--user", "--group", "--prompt", "--host", "--chdir",
                                         "--close-from", "--role", "--type", "--other-user",
                                         "--command-timeout"},
    "doas": frozenset("uC"),
    "env": frozenset("uSC") | {"--unset", "--chdir", "--split-string"},
    "exec": frozenset("a"),
    "timeout": frozenset("sk") | {"--signal", "--kill-after"},
    "nice": frozenset("n") | {"--adjustment"},
    "nohup": frozenset(), "command": frozenset(), "builtin": frozenset(), "time": frozenset(),
    "stdbuf": frozenset("ioe"),
}
_KEYWORDS = frozenset({"!", "{", "}", "then", "do", "else", "elif", "if", "while", "until"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
# Global options (before the subcommand) that take a value, per engine.
_GLOBAL_VALUE_OPTIONS = {
    "docker": frozenset({"-H", "--host", "-c", "--context", "--config", "-l", "--log-level",
                         "--tlscacert", "--tlscert", "--tlskey"}),
    "podman": frozenset({"-c", "--connection", "--url", "--identity", "--root", "--runroot",
                         "--storage-driver", "--storage-opt", "--log-level", "--cgroup-manager",
                         "--network-cmd-path", "--events-backend", "--tmpdir", "--runtime",
                         "--conmon", "--module", "--ssh", "--imagestore", "--hooks-dir", "--out",
                         "--cni-config-dir", "--network-config-dir", "--volumepath",
                         "--runtime-flag", "--config", "--db-backend"}),
    "nerdctl": frozenset({"-n", "--namespace", "-a", "--address", "-H", "--host", "--snapshotter",
                          "--storage-driver", "--cni-path", "--cni-netconfpath", "--data-root",
                          "--cgroup-manager", "--hosts-dir", "--bridge-ip"}),
}


def _skip_prefix(words: list[Word], i: int) -> int:
    """Index of the word after a prefix command (sudo, env…) and its options at words[i]."""
    valued = _PREFIXES[words[i].text]
    i += 1
    while i < len(words):
        text = words[i].text
        if text == "--":
            return i + 1
        if not text.startswith("-") or text == "-":
            if _ASSIGNMENT.match(text):   # env NAME=value
                i += 1
                continue
            return i
        i += 2 if _option_wants_next_word(text, valued) else 1
    return i


def _option_wants_next_word(text: str, valued) -> bool:
    """Whether option word `text` (`-u`, `--user`, `-Eu`, `-uroot`, `--user=x`) takes the
    next word as its value."""
    if text.startswith("--"):
        return "=" not in text and text in valued
    for position, letter in enumerate(text[1:], start=1):
        if letter in valued:
            return position == len(text) - 1   # `-Eu root`; `-uroot` carries its value
    return False


def _program_index(words: list[Word]) -> int | None:
    """Index of the program word of a simple command, past keywords, assignments and
    prefixes such as sudo or env; None when it is missing or unresolved."""
    i = 0
    while i < len(words):
        text = words[i].text
        if text in _KEYWORDS or _ASSIGNMENT.match(text):
            i += 1
        elif text in _PREFIXES and not words[i].unresolved:
            i = _skip_prefix(words, i)
            if text == "timeout" and i < len(words) and words[i].text[:1].isdigit():
                i += 1   # the duration
        else:
            break
    if i >= len(words) or words[i].unresolved:
        return None
    return i


def shell_c_script(words: list[Word], i: int) -> Word | None:
    """The script word of `sh -c SCRIPT` (bash, zsh… too), if `words` is such a command.
    `i`: the index of its program word (_program_index)."""
    if not is_shell(words[i].text):
        return None
    position = script_operand([word.text for word in words], i + 1)
    return None if position is None else words[position]


def find_invocation(words: list[Word], i: int) -> Invocation | None:
    """The docker/podman/nerdctl run or create command that `words` is, if any. `i`: the
    index of its program word (_program_index)."""
    program = words[i]
    engine = program.text.rsplit("/", 1)[-1]
    if engine not in ENGINES:
        return None
    i = _skip_global_options(words, i + 1, engine)
    if i < len(words) and words[i].text == "container":
        subcommand = ["container"]
        i += 1
    else:
        subcommand = []
    if i >= len(words) or words[i].text not in ("run", "create"):
        return None
    subcommand.append(words[i].text)
    return Invocation(program, engine, tuple(subcommand), words[i + 1:])


def _skip_global_options(words: list[Word], i: int, engine: str) -> int:
    valued = _GLOBAL_VALUE_OPTIONS[engine]
    while i < len(words) and words[i].text.startswith("-") and words[i].text != "-":
        text = words[i].text
        i += 2 if text in valued else 1
    return i


def _runspec(invocation: Invocation, path: str) -> RunSpec:
    argv = [word.text for word in invocation.args]
    parsed = parse_run_args(
        argv, engine="podman" if invocation.engine == "podman" else "docker")
    image = parsed.image
    subject = " ".join((invocation.engine, *invocation.subcommand) + ((image,) if image else ()))
    spec = runspec_from_args(
        parsed, kind=KIND, path=path, line=invocation.line, subject=subject,
        word_lines=[word.line for word in invocation.args])
    # an image is args[0], so args_index is set with it
    if image is not None and parsed.args_index is not None and (
            parsed.image_uncertain or invocation.args[parsed.args_index].unresolved or "$" in image):
        spec = spec.evolve(unresolved=spec.unresolved | {"image"})
    return spec


# ----------------------------------------------------------------------------- Makefiles

def make_recipes(text: str) -> list[Snippet]:
    """Each recipe line (with its continuations) of a Makefile, as the shell sees it:
    the leading tab and `@`/`-`/`+` prefixes gone, `$$` turned into `$`."""
    snippets = []
    lines = text.split("\n")
    i = 0
    in_define = False
    continued = False   # the previous non-recipe line ended with a backslash
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if in_define:
            in_define = not (stripped == "endef" or stripped.startswith("endef "))
            i += 1
            continue
        if not line.startswith("\t") or continued:
            continued = line.endswith("\\")
            in_define = stripped.startswith("define ") or stripped == "define"
            i += 1
            continue
        first = i
        body = [_recipe_text(line[1:])]
        while lines[i].endswith("\\") and i + 1 < len(lines):
            i += 1
            following = lines[i]
            body.append(following[1:] if following.startswith("\t") else following)
        i += 1
        snippets.append(Snippet("\n".join(body).replace("$$", "$"), first + 1))
    return snippets


def _recipe_text(line: str) -> str:
    return line.lstrip(" \t@-+")


# ----------------------------------------------------------------------------- Markdown

SHELL_LANGUAGES = frozenset({"", "sh", "bash", "shell", "zsh", "console", "shell-session",
                             "shellsession", "sh-session", "terminal", "bash-session"})
PROMPT_LANGUAGES = frozenset({"console", "shell-session", "shellsession", "sh-session",
                              "terminal", "bash-session"})
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$")
_CONSOLE_PROMPT = re.compile(r"^[\w.@~:/-]*[$#%] ")
_DOLLAR_PROMPT = re.compile(r"^\$ ")


def markdown_blocks(text: str) -> list[Snippet]:
    """The shell code blocks of a Markdown document (```sh, ```bash, ```console, no
    language…) with prompts removed and output lines blanked (line numbers are kept)."""
    snippets = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = len(match.group(1)), match.group(2)
        language = match.group(3).lower().lstrip("{.").rstrip("}")
        start = end = i + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        if language in SHELL_LANGUAGES:
            body = [_dedent(line, indent) for line in lines[start:end]]
            prompt = _CONSOLE_PROMPT if language in PROMPT_LANGUAGES else _DOLLAR_PROMPT
            snippets.append(Snippet("\n".join(_commands_only(body, prompt)), start + 1))
        i = end + 1
    return snippets


def _dedent(line: str, indent: int) -> str:
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(indent, spaces):]


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (len(stripped) >= len(fence) and set(stripped) == {fence[0]}
            and len(line) - len(line.lstrip(" ")) < 4)


def _commands_only(body: list[str], prompt) -> list[str]:
    """A block written with prompts: the prompted lines and their continuations, output
    lines blanked. A block without prompts is all commands."""
    if not any(prompt.match(line) for line in body):
        return body
    out = []
    continuing = False
    for line in body:
        match = prompt.match(line)
        if match:
            command = line[match.end():]
        elif continuing:
            command = line[2:] if line.startswith("> ") else line
        else:
            command = ""
        continuing = command.rstrip().endswith("\\")
        out.append(command)
    return out


# ----------------------------------------------------------------------------- CI YAML

SCRIPT_KEYS = frozenset({"run", "script", "before_script", "after_script"})


def yaml_scripts(text: str, path: str) -> list[Snippet]:
    """Shell snippets of a CI file: GitHub Actions `run:` and GitLab CI
    `script:`/`before_script:`/`after_script:` (a string or a list of strings).

    This reads the composed node graph, not yamlsafe's values: mapping a line inside a
    block scalar back to the file needs the scalar's style and marks. Composing builds
    no objects and never expands aliases (each node is visited once)."""
    import yaml
    from ..parsing.yamlsafe import LOADER, from_yaml_error
    try:
        documents = list(yaml.compose_all(text, Loader=LOADER))
    except yaml.YAMLError as error:
        raise from_yaml_error(error, path, text) from None
    except RecursionError:   # the pure-Python composer on absurd nesting
        raise ParseError("invalid YAML: nested too deeply", path=path) from None
    lines = text.split("\n")
    snippets: list[Snippet] = []
    seen: set = set()
    for document in documents:
        if document is not None:
            _walk(document, lines, snippets, seen)
    return snippets


def _walk(node, lines: list[str], out: list[Snippet], seen: set) -> None:
    # Aliases make the node graph share nodes: visit each once (no alias blow-up).
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.id == "mapping":
            foreign = _foreign_shell(current)
            for key, value in current.value:
                if key.id == "scalar" and key.value in SCRIPT_KEYS and not foreign:
                    _script_value(value, lines, out, seen)
                stack.append(value)
        elif current.id == "sequence":
            stack.extend(reversed(current.value))


_NOT_SH = ("pwsh", "powershell", "cmd", "python")


def _foreign_shell(mapping) -> bool:
    """A GitHub Actions step whose `shell:` is not a POSIX shell (pwsh, cmd, python)."""
    for key, value in mapping.value:
        if key.id == "scalar" and key.value == "shell" and value.id == "scalar":
            words = value.value.split()
            return bool(words) and words[0].rsplit("/", 1)[-1] in _NOT_SH
    return False


def _script_value(node, lines: list[str], out: list[Snippet], seen: set) -> None:
    """The scalars of a script value: a string or (nested, aliased) lists of strings."""
    stack = [node]
    while stack:
        current = stack.pop()
        if ("script", id(current)) in seen:
            continue
        seen.add(("script", id(current)))
        if current.id == "scalar":
            out.append(scalar_snippet(current, lines))
        elif current.id == "sequence":
            stack.extend(reversed(current.value))


def scalar_snippet(node, lines: list[str]) -> Snippet:
    """The shell text of a YAML scalar, each of its lines mapped to the file's line."""
    start = node.start_mark.line
    if node.style == "|":
        # A literal block keeps the source's lines: content line k is file line start+2+k.
        return Snippet(node.value, start + 2)
    if node.style == ">":
        return _folded(node, lines)
    count = node.value.count("\n") + 1
    return Snippet(node.value, start + 1, [start + 1] * count)


def _folded(node, lines: list[str]) -> Snippet:
    """A folded block (`>`): its source lines, each ending in a continuation where YAML
    would fold it into the next, so every word keeps the line it is written on."""
    first = node.start_mark.line + 1
    last = node.end_mark.line if node.end_mark.column == 0 else node.end_mark.line + 1
    raw = lines[first:last]
    indents = [len(line) - len(line.lstrip(" ")) for line in raw if line.strip()]
    base = min(indents) if indents else 0
    body = [line[base:] for line in raw]
    out = []
    for k, line in enumerate(body):
        following = body[k + 1] if k + 1 < len(body) else ""
        folds = line.strip() and following.strip() and not line.startswith((" ", "\t")) \
            and not following.startswith((" ", "\t"))
        out.append(line + " \\" if folds else line)
    return Snippet("\n".join(out), first + 1)
