"""The Dockerfile front end: text -> hardrun.spec.build.Dockerfile.

It follows the BuildKit parser: parser directives only at the very top, line
continuations with the escape character (comments and blank lines inside them are
dropped), here-documents after RUN/COPY/ADD, flags only at the start of the
arguments, the exec (JSON) form with fallback to the shell form, ARG/ENV
substitution with the builder's scoping rules, and stage references. Every value
keeps its source line. Structural errors raise ParseError with the line; odd shell
inside RUN never does (the shell splitter degrades to best-effort words).
"""
from __future__ import annotations

from ..parsing.patterns import lazy
from bisect import bisect_right

from ..errors import ParseError
from ..spec.build import Comment, Dockerfile, Heredoc, Instruction, Stage
from ..parsing.expansion import expand, unquote_words
from ..parsing.shell import is_shell, split_argv, split_script

KEYWORDS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
})
# Instructions whose arguments the builder substitutes ARG/ENV values into.
EXPANDING = frozenset({"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL",
                       "USER", "VOLUME", "WORKDIR"})
HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
JSON_KEYWORDS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "ADD", "COPY", "VOLUME"})
PAIR_KEYWORDS = frozenset({"ENV", "LABEL", "ARG"})
NOT_TRIGGERS = frozenset({"ONBUILD", "FROM", "MAINTAINER"})
DIRECTIVES = frozenset({"syntax", "escape", "check"})
# Predefined in the global scope with values only the builder knows.
AUTOMATIC_ARGS = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
                  "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT")
NON_POSIX_SHELLS = frozenset({"cmd", "powershell", "pwsh"})
_WINDOWS_BASES = ("windows/servercore", "windows/nanoserver", "/windows:", "windows/server:",
                  "nanoserver", "servercore")

# The value runs to its last non-blank character (or is one blank): greedy, so a long
# line of blanks is scanned once (a lazy `(.+?)[ \t]*$` rescans the rest at every step).
_DIRECTIVE = lazy(r"[ \t]*#[ \t]*([A-Za-z0-9]+)[ \t]*=[ \t]*(.*[^ \t\n]|[ \t])[ \t]*$")
_HEREDOC_WORD = lazy(r"(\d*)<<(-?)([^<]*)\Z")
_SIMPLE_FLAG = lazy(r"--([^\s='\"\\]+)(=([^\s'\"\\]*))?(?:\s+|\Z)")
_SIMPLE_JSON_ARRAY = lazy(r'\[[ \t]*(?:"[^"\\\x00-\x1f]*"[ \t]*(?:,[ \t]*"[^"\\\x00-\x1f]*"[ \t]*)*)?\]\Z')
_JSON_STRING = lazy(r'"([^"]*)"')
_PLAIN_NAME = lazy(r"[^\s\"'\\`$]*\Z")
_LONE_HEREDOC = lazy(r"\s*\d*<<-?[^<\s]+\s*\Z")
_RAW_WORDS = {
    "\\": lazy(r"(?:\\.|[^\s\"'\\]|\"(?:[^\"\\]|\\.)*\"?|'[^']*'?|\\)+"),
    "`": lazy(r"(?:`.|[^\s\"'`]|\"(?:[^\"`]|`.)*\"?|'[^']*'?|`)+"),
}


def parse_dockerfile(text: str, path: str) -> Dockerfile:
    """The build model of the Dockerfile `text` read from `path` (used in errors)."""
    return _Parser(text, path).parse()


class _Logical:
    """One instruction's text after joining continuation lines."""
    __slots__ = ("text", "line", "end_line", "breaks")

    def __init__(self, text: str, line: int, end_line: int, breaks: list[int]):
        self.text = text
        self.line = line
        self.end_line = end_line
        self.breaks = breaks      # offsets of `text` where a new source line begins

    def line_of(self, offset: int) -> int:
        return self.line + bisect_right(self.breaks, offset) if self.breaks else self.line


class _Parser:
    def __init__(self, text: str, path: str):
        if text.startswith("\ufeff"):
            text = text[1:]
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        self.path = path
        self.lines = text.split("\n")
        self.line_count = len(self.lines) - 1 if text.endswith("\n") or not text else len(self.lines)
        self.index = 0                    # next physical line to read
        self.escape = "\\"
        self.directives: list[tuple[str, str]] = []
        self.comments: list[Comment] = []

    def error(self, message: str, line: int | None) -> ParseError:
        return ParseError(message, path=self.path, line=line)

    def parse(self) -> Dockerfile:
        self.read_directives()
        build = _Build(self)
        while True:
            logical = self.next_logical()
            if logical is None:
                break
            build.add(self.instruction(logical, build))
        stages = build.finish()
        return Dockerfile(self.path, stages, tuple(self.directives), tuple(self.comments),
                          tuple(build.global_args), self.line_count)

    # -- lines -----------------------------------------------------------------------
    def read_directives(self) -> None:
        """Parser directives: `# key=value` lines before anything else (BuildKit stops at
        the first line that is not a known directive, blank lines included)."""
        seen = set()
        while self.index < len(self.lines):
            match = _DIRECTIVE.match(self.lines[self.index])
            if not match or match.group(1).lower() not in DIRECTIVES:
                return
            key, value = match.group(1).lower(), match.group(2)
            number = self.index + 1
            if key in seen:
                raise self.error(f"only one {key} parser directive can be used", number)
            if key == "escape" and value not in ("\\", "`"):
                raise self.error(f"invalid escape directive {value!r}: expected \\ or `", number)
            seen.add(key)
            self.directives.append((key, value))
            if key == "escape":
                self.escape = value
            self.index += 1

    def next_logical(self) -> _Logical | None:
        """The next instruction's joined text, recording comments on the way."""
        lines, escape = self.lines, self.escape
        while self.index < len(lines):
            raw = lines[self.index]
            self.index += 1
            stripped = raw.lstrip()
            if not stripped:
                continue
            if stripped[0] == "#":
                self.comments.append(Comment(self.index, stripped[1:].strip()))
                continue
            return self.continue_logical(stripped, self.index, escape)
        return None

    def continue_logical(self, first: str, line: int, escape: str) -> _Logical:
        lines = self.lines
        trimmed = first.rstrip(" \t")
        if not trimmed.endswith(escape):
            return _Logical(first, line, line, [])
        parts = [trimmed[:-1]]
        length = len(parts[0])
        breaks: list[int] = []
        last = line
        while self.index < len(lines):
            raw = lines[self.index]
            self.index += 1
            stripped = raw.lstrip()
            if not stripped:
                continue                  # blank lines inside a continuation are dropped
            if stripped[0] == "#":
                self.comments.append(Comment(self.index, stripped[1:].strip()))
                continue
            breaks.extend([length] * (self.index - last))
            last = self.index
            trimmed = raw.rstrip(" \t")
            if trimmed.endswith(escape):
                parts.append(trimmed[:-1])
                length += len(trimmed) - 1
                continue
            parts.append(raw)
            break
        return _Logical("".join(parts), line, last, breaks)

    # -- instructions ------------------------------------------------------------------
    def instruction(self, logical: _Logical, build: "_Build") -> Instruction:
        keyword, rest, offset = _split_keyword(logical.text)
        upper = keyword.upper()
        if upper not in KEYWORDS:
            raise self.error(f"unknown instruction {keyword[:40]!r}: expected a Dockerfile "
                             "instruction such as FROM, RUN, COPY or ENV", logical.line)
        flags, args, offset = _split_flags(rest, offset)
        if upper == "ONBUILD":
            return self.onbuild(logical, args, offset, build)
        heredocs: tuple[Heredoc, ...] = ()
        if upper in HEREDOC_KEYWORDS and "<<" in args:
            heredocs = self.heredocs(logical, args, offset)
        return build.make(upper, logical, args, offset, flags, heredocs)

    def onbuild(self, logical: _Logical, args: str, offset: int, build: "_Build") -> Instruction:
        keyword, rest, inner_offset = _split_keyword(args)
        upper = keyword.upper()
        if not keyword:
            raise self.error("ONBUILD has no instruction: expected ONBUILD <instruction>, "
                             "e.g. ONBUILD COPY . /app", logical.line)
        if upper in NOT_TRIGGERS:
            raise self.error(f"ONBUILD cannot trigger {upper}: expected any instruction "
                             "except FROM, ONBUILD and MAINTAINER", logical.line)
        if upper not in KEYWORDS:
            raise self.error(f"unknown instruction {keyword[:40]!r} after ONBUILD: expected a "
                             "Dockerfile instruction such as RUN or COPY", logical.line)
        flags, inner_args, inner_offset = _split_flags(rest, offset + inner_offset)
        heredocs: tuple[Heredoc, ...] = ()
        if upper in HEREDOC_KEYWORDS and "<<" in inner_args:
            heredocs = self.heredocs(logical, inner_args, inner_offset)
        trigger = build.make(upper, logical, inner_args, inner_offset, flags, heredocs,
                             expand_now=False)
        return Instruction("ONBUILD", logical.line, logical.end_line, args, args,
                           heredocs=heredocs, trigger=trigger)

    def heredocs(self, logical: _Logical, args: str, offset: int) -> tuple[Heredoc, ...]:
        """Read the bodies of the here-documents opened on this instruction's line."""
        if args.lstrip().startswith("[") and _json_array(args) is not None:
            return ()
        found = []
        for match in _RAW_WORDS["\\"].finditer(args):
            opened = _HEREDOC_WORD.match(match.group())
            if not opened or not opened.group(3):
                continue
            rest = opened.group(3)
            name = "".join(unquote_words(rest))
            if not name:
                continue
            quoted = "'" in rest or '"' in rest
            line = logical.line_of(offset + match.start())
            found.append(self.heredoc_body(match.group(), name, opened.group(2) == "-", quoted,
                                           line))
        if found:
            logical.end_line = self.index
        return tuple(found)

    def heredoc_body(self, token: str, name: str, strip_tabs: bool, quoted: bool,
                     line: int) -> Heredoc:
        lines = self.lines
        first = self.index + 1
        body: list[str] = []
        while self.index < len(lines):
            raw = lines[self.index]
            self.index += 1
            candidate = raw.lstrip("\t") if strip_tabs else raw
            if candidate == name:
                text = "\n".join(body) + "\n" if body else ""
                return Heredoc(name, text, first, strip_tabs, quoted)
            body.append(candidate)
        raise self.error(f"unterminated heredoc {token[:60]}: expected a line reading "
                         f"{name[:60]} before the end of the file", line)


class _StageState:
    """What the builder knows while reading one stage."""
    __slots__ = ("index", "line", "base", "base_raw", "name", "parent", "platform",
                 "base_unresolved", "instructions", "scope", "env", "posix")

    def __init__(self, index: int, line: int):
        self.index = index
        self.line = line
        self.base = self.base_raw = ""
        self.name: str | None = None
        self.parent: int | None = None
        self.platform: str | None = None
        self.base_unresolved: tuple[str, ...] = ()
        self.instructions: list[Instruction] = []
        self.scope: dict[str, str | None] = {}   # what $X means here
        self.env: dict[str, str] = {}            # ENV values (inherited by FROM <stage>)
        self.posix = True


class _Build:
    """Stages, scopes and the instructions built so far."""

    def __init__(self, parser: _Parser):
        self.parser = parser
        self.escape = parser.escape
        self.global_args: list[Instruction] = []
        self.global_scope: dict[str, str | None] = {name: None for name in AUTOMATIC_ARGS}
        self.stages: list[_StageState] = []
        self.current_stage: _StageState | None = None
        self.names: dict[str, int] = {}


    def add(self, instruction: Instruction) -> None:
        if instruction.keyword == "FROM":
            return
        stage = self.current_stage
        if stage is None:
            if instruction.keyword != "ARG":
                raise self.parser.error(f"{instruction.keyword} before the first FROM: expected "
                                        "FROM (only ARG may come before it)", instruction.line)
            self.global_args.append(instruction)
        else:
            stage.instructions.append(instruction)

    def finish(self) -> tuple[Stage, ...]:
        if not self.stages:
            raise self.parser.error("no FROM instruction: expected at least one build stage "
                                    "starting with FROM", None)
        return tuple(Stage(s.index, s.line, s.base, s.base_raw, s.name, s.parent, s.platform,
                           tuple(s.instructions), s.base_unresolved) for s in self.stages)

    # -- building instructions ------------------------------------------------------------
    def make(self, keyword: str, logical: _Logical, args: str, offset: int, flags_raw,
             heredocs, expand_now: bool = True) -> Instruction:
        args = args.rstrip()
        stage = self.current_stage
        scope = self.scope_for(keyword, stage) if expand_now else None
        unresolved: list[str] = []
        flags = self.flags(flags_raw, scope, unresolved)
        if keyword == "FROM":
            return self.from_(logical, args, flags, unresolved)
        exec_form = _json_array(args) if keyword in JSON_KEYWORDS else None
        fields = {"flags": flags, "exec_form": exec_form, "heredocs": heredocs}
        expanded = args
        if keyword in PAIR_KEYWORDS:
            fields["pairs"] = self.pairs(keyword, args, scope, unresolved)
        if keyword in EXPANDING and scope is not None:
            expanded = self.expand_fields(args, exec_form, scope, unresolved, fields)
        elif keyword == "RUN":
            fields["pipelines"] = self.run_pipelines(args, exec_form, heredocs, logical, offset)
            if exec_form is not None:
                fields["words"] = exec_form
        else:
            self.plain_fields(keyword, args, exec_form, fields)
        instruction = Instruction(keyword, logical.line, logical.end_line, args, expanded,
                                  unresolved=tuple(unresolved), **fields)
        if expand_now and stage is not None:
            self.apply(keyword, instruction, stage)
        elif expand_now and keyword == "ARG":
            self.apply_global_arg(instruction)
        return instruction

    def scope_for(self, keyword: str, stage: _StageState | None) -> dict:
        if keyword == "FROM" or stage is None:
            return self.global_scope
        return stage.scope

    def flags(self, flags_raw, scope, unresolved: list[str]):
        if not flags_raw:
            return ()
        out = []
        for name, value in flags_raw:
            if value is not None and scope is not None and ("$" in value):
                result = expand(value, scope, self.escape, split=False)
                if result.unresolved:
                    _merge(unresolved, result.unresolved)
                else:
                    value = "".join(result.words)
            out.append((name, value))
        return tuple(out)

    def expand_fields(self, args: str, exec_form, scope, unresolved: list[str], fields) -> str:
        if exec_form is not None:
            words = []
            for item in exec_form:
                result = expand(item, scope, self.escape, split=False)
                words.append("".join(result.words))
                _merge(unresolved, result.unresolved)
            fields["words"] = tuple(words)
            return args
        result = expand(args, scope, self.escape)
        _merge(unresolved, result.unresolved)
        fields["words"] = tuple(result.words)
        return result.text

    def plain_fields(self, keyword: str, args: str, exec_form, fields) -> None:
        if exec_form is not None:
            fields["words"] = exec_form
        elif keyword == "HEALTHCHECK":
            fields["words"] = tuple(unquote_words(args, self.escape))
            head_tail = args.split(None, 1)
            if len(head_tail) == 2 and head_tail[0].upper() == "CMD":
                fields["exec_form"] = _json_array(head_tail[1])
        else:
            fields["words"] = tuple(unquote_words(args, self.escape))

    def pairs(self, keyword: str, args: str, scope, unresolved: list[str]):
        """ENV/LABEL/ARG items, values expanded with the scope *before* this instruction."""
        raw_words = _RAW_WORDS[self.escape].findall(args)
        if not raw_words:
            return ()
        out = []
        if keyword != "ARG" and "=" not in raw_words[0]:
            # Legacy `ENV NAME value with blanks`: everything after the name is the value.
            name = raw_words[0]
            value = args.lstrip()[len(name):].strip()
            return ((name, self.value(value, scope, unresolved)),)
        for word in raw_words:
            name, equals, value = word.partition("=")
            if not _PLAIN_NAME.match(name):
                name = "".join(unquote_words(name, self.escape))
            if not equals:
                out.append((name, None if keyword == "ARG" else ""))
            else:
                out.append((name, self.value(value, scope, unresolved)))
        return tuple(out)

    def value(self, text: str, scope, unresolved: list[str]) -> str:
        if scope is None:
            return "".join(unquote_words(text, self.escape)) if text else ""
        result = expand(text, scope, self.escape, split=False)
        _merge(unresolved, result.unresolved)
        return "".join(result.words)

    def run_pipelines(self, args: str, exec_form, heredocs, logical: _Logical, offset: int):
        if exec_form is not None:         # runs without the stage's shell
            return split_argv(exec_form, logical.line)
        stage = self.current_stage
        if stage is not None and not stage.posix:
            return ()
        breaks = [b - offset for b in logical.breaks if b > offset] if logical.breaks else ()
        line = logical.line_of(offset)
        if not heredocs:
            return split_script(args, line, breaks)
        if len(heredocs) == 1 and _LONE_HEREDOC.match(args):
            body = heredocs[0]
            if not _runs_in_shell(body.body):
                return ()
            return split_script(body.body, body.line)
        # The builder hands the shell the command line followed by the bodies.
        script = args + "\n" + "".join(h.body + h.delimiter + "\n" for h in heredocs)
        return split_script(script, line, breaks)

    # -- FROM and scopes ------------------------------------------------------------------
    def from_(self, logical: _Logical, args: str, flags, unresolved: list[str]) -> Instruction:
        parts = args.split()
        if not parts:
            raise self.parser.error("FROM has no image: expected FROM [--platform=...] image "
                                    "[AS name]", logical.line)
        if len(parts) not in (1, 3) or (len(parts) == 3 and parts[1].lower() != "as"):
            raise self.parser.error(f"malformed FROM {args[:80]!r}: expected FROM "
                                    "[--platform=...] image [AS name]", logical.line)
        image = expand(parts[0], self.global_scope, self.escape, split=False)
        base = "".join(image.words)
        _merge(unresolved, image.unresolved)
        stage = _StageState(len(self.stages), logical.line)
        stage.base, stage.base_raw = base, parts[0]
        stage.base_unresolved = tuple(image.unresolved)
        stage.name = parts[2].lower() if len(parts) == 3 else None
        stage.platform = next((value for name, value in flags if name == "platform"), None)
        self.inherit(stage, base)
        if stage.name is not None:
            if stage.name in self.names:
                raise self.parser.error(f"duplicate stage name {stage.name!r}: expected each "
                                        "AS name to be used once", logical.line)
        words = (base, parts[1], parts[2]) if len(parts) == 3 else (base,)
        instruction = Instruction("FROM", logical.line, logical.end_line, args,
                                  " ".join([image.text] + parts[1:]), flags=flags, words=words,
                                  unresolved=tuple(unresolved))
        stage.instructions.append(instruction)
        self.stages.append(stage)
        self.current_stage = stage
        if stage.name is not None:
            self.names[stage.name] = stage.index
        return instruction

    def inherit(self, stage: _StageState, base: str) -> None:
        """`FROM <stage>` continues that stage: its ENV and shell carry over."""
        parent = self.names.get(base.lower())
        if parent is not None:
            stage.parent = parent
            stage.env = dict(self.stages[parent].env)
            stage.scope = dict(stage.env)
            stage.posix = self.stages[parent].posix
        else:
            lowered = base.lower()
            stage.posix = not any(marker in lowered for marker in _WINDOWS_BASES)

    def apply(self, keyword: str, instruction: Instruction, stage: _StageState) -> None:
        """Update the stage's scope after an instruction that changes it."""
        if keyword == "ENV":
            for name, value in instruction.pairs:
                stage.env[name] = value or ""
                stage.scope[name] = value or ""
        elif keyword == "ARG":
            for name, value in instruction.pairs:
                if name in stage.env:
                    continue              # ENV wins over an ARG of the same name
                if value is None:
                    value = self.global_scope.get(name)
                stage.scope[name] = value
        elif keyword == "SHELL" and instruction.exec_form:
            program = instruction.exec_form[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
            stage.posix = program.removesuffix(".exe") not in NON_POSIX_SHELLS

    def apply_global_arg(self, instruction: Instruction) -> None:
        for name, value in instruction.pairs:
            if value is not None or name not in self.global_scope:
                self.global_scope[name] = value


def _merge(into: list[str], names) -> None:
    for name in names:
        if name not in into:
            into.append(name)


def _split_keyword(text: str) -> tuple[str, str, int]:
    """(keyword, rest, offset of rest in text)."""
    parts = text.split(None, 1)
    if not parts:
        return "", "", len(text)
    rest = parts[1] if len(parts) > 1 else ""
    return parts[0], rest, len(text) - len(rest)


def _split_flags(rest: str, offset: int):
    """Leading `--name[=value]` flags (quotes removed), the arguments after them and
    their offset. Flags are recognised only at the start, as the builder does."""
    if not rest.startswith("--"):
        return (), rest, offset
    flags = []
    i, n = 0, len(rest)
    while i < n and rest.startswith("--", i):
        simple = _SIMPLE_FLAG.match(rest, i)
        if simple:
            flags.append((simple.group(1), simple.group(3) if simple.group(2) else None))
            i = simple.end()
            continue
        word, j = _flag_word(rest, i)
        if word == "--":
            i = j
            break
        name, equals, value = word[2:].partition("=")
        flags.append((name, value if equals else None))
        while j < n and rest[j].isspace():
            j += 1
        i = j
    return tuple(flags), rest[i:], offset + i


def _flag_word(text: str, i: int) -> tuple[str, int]:
    """One flag word from `i` (quotes removed, backslash escapes honoured) and its end."""
    out = []
    n = len(text)
    quote = None
    while i < n:
        char = text[i]
        if quote:
            if char == quote:
                quote = None
            elif char == "\\" and i + 1 < n:
                i += 1
                out.append(text[i])
            else:
                out.append(char)
        elif char.isspace():
            break
        elif char in "'\"":
            quote = char
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(text[i])
        else:
            out.append(char)
        i += 1
    return "".join(out), i


def _json_array(args: str):
    """The exec form: a JSON array of strings, or None (the shell form, as Docker falls back)."""
    text = args.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    if _SIMPLE_JSON_ARRAY.match(text):      # no escapes: no need for the json module
        return tuple(_JSON_STRING.findall(text))
    import json
    try:
        value = json.loads(text)
    except Exception:             # malformed JSON, or nesting deep enough to recurse out
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return tuple(value)


def _runs_in_shell(body: str) -> bool:
    """True when a `RUN <<EOF` script runs in a POSIX shell (no shebang, or a shell one)."""
    if not body.startswith("#!"):
        return True
    words = body[2:].split("\n", 1)[0].split()
    if not words:
        return True
    program = words[0]
    if program.rsplit("/", 1)[-1] == "env":
        program = next((w for w in words[1:] if not w.startswith("-")), "")
    return is_shell(program)
