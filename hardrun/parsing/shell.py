"""A small, forgiving POSIX shell splitter for RUN bodies.

`split_script(text, line)` turns a script into pipelines of simple commands
(`Command.words` after quote removal, `VAR=value` prefixes as assignments, the
source line of each command). It understands quotes, escapes, `$(...)`, backticks
and `${...}` (kept inside their word), the operators `| |& || && ; &`, newlines,
comments, subshells, `{ ...; }` groups, if/for/while/until/case, here-documents,
and `sh -c "..."` strings, which are split again so the commands inside are seen.

It never raises: text that is not valid shell still yields its best-effort words.
Rules look for commands anywhere (`curl ... | sh`, `sudo`), so compound commands
are flattened: the commands inside a group, loop, condition or command
substitution are pipelines of their own.

Why shell_words.py is a second lexer and not this one: the docker-run front end needs
what this splitter deliberately does not keep, and this splitter is on the Dockerfile
audit's hot path (~60 µs of a ~1 ms per-file budget on bench/corpus.py files), where
keeping it would cost every RUN:
- a source line per *word* (a `docker run` spreads its flags over continuation lines
  and each RunSpec field points at its own line), mapped through a snippet's line map
  (YAML block scalars, Markdown, Makefile recipes), where this keeps one per command;
- an `unresolved` mark per word (a `$VAR` or `$(...)` image or flag value is set but
  unknown), where this keeps plain strings;
- a strict mode that reports an unterminated quote as a ParseError for whole scripts,
  where this never raises;
- here-documents fed to `ssh host <<EOF` scanned as scripts.
Conversely this splitter's pipelines, assignments, reserved words and `sh -c`
recursion through wrappers are of no use there. On the corpus's RUN bodies
shell_words is already ~1.3x slower while producing less, so one lexer serving both
would slow the Dockerfile audit. What both need is shared from here: SHELLS,
is_shell and script_operand (where a shell's `-c` script is).
"""
from __future__ import annotations

from bisect import bisect_right

from .patterns import DOTALL, regex
from ..spec.build import Command, Pipeline

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Sequence

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "yash", "posh"})
# Commands that run their arguments as another command (`sudo sh -c ...`).
WRAPPERS = frozenset({"sudo", "doas", "env", "exec", "nohup", "time", "nice", "ionice",
                      "busybox", "command", "builtin", "stdbuf", "timeout", "chroot",
                      "gosu", "su-exec", "setpriv", "unshare", "fakeroot", "xargs", "tini"})
# Wrappers whose first operand is not the command (`gosu user cmd`, `chroot /dir cmd`).
_WRAPPERS_WITH_OPERAND = frozenset({"gosu", "su-exec", "chroot", "timeout"})
_SU = frozenset({"su", "runuser"})
_SCRIPT_RUNNERS = SHELLS | WRAPPERS | _SU
MAX_DEPTH = 8   # nesting of $(...), sh -c and here-documents fed to shells
MAX_SCAN_NESTING = 24   # nesting of "$(" "${" followed when finding where a word ends

_OPENERS = frozenset({"if", "then", "elif", "else", "do", "while", "until", "!", "{", "time"})
_CLOSERS = frozenset({"fi", "done", "esac", "}"})
_RESERVED = _OPENERS | _CLOSERS | {"for", "select", "case", "function"}
_CASE_BREAKS = frozenset({";;", ";&", ";;&"})
_CONTROL = frozenset({"&&", "||", ";;&", ";;", ";&", "|&", "|", "&", ";", "(", ")", "\n"})

_BLANKS = regex(r"(?:[ \t\r\f\v]|\\\n)+")
_PLAIN = regex(r"[^\s'\"\\$`|&;()<>]+")
# One token per match: blanks, a common word (plain text, `$NAME`, `${...}` without
# quotes, '...' and "..." without escapes or command substitutions), or an operator.
_COMMON_WORD = (r"(?:[^\s'\"\\$`|&;()<>#]|\$(?![('{])|\$\{[^}'\"`\\{]*\}|'[^']*'"
                r"|\"(?:[^\"\\$`]|\$(?![('{])|\$\{[^}'\"`\\{]*\})*\")"
                r"(?:[^\s'\"\\$`|&;()<>]|\$(?![('{])|\$\{[^}'\"`\\{]*\}|'[^']*'"
                r"|\"(?:[^\"\\$`]|\$(?![('{])|\$\{[^}'\"`\\{]*\})*\")*")
_TOKEN = regex(r"(?:[ \t\r\f\v]|\\\n)+|#[^\n]*|(" + _COMMON_WORD + r")(?=[\s|&;()]|\Z)"
               r"|(&&|\|\||;;&|;;|;&|\|&|&>>|&>|[0-9]*(?:<<<|<<-|<<|>>|>&|<&|<>|>\||>|<)(?!\()"
               r"|[|&;()\n])|(.)", DOTALL)
_SIMPLE_QUOTES = regex(r"'([^']*)'|\"([^\"]*)\"")
_DQUOTE_PLAIN = regex(r"[^\"\\$`]+")
_PAREN_PLAIN = regex(r"[^()'\"\\`]+")
_BRACE_PLAIN = regex(r"[^{}'\"\\]+")
_ASSIGNMENT = regex(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=")


def split_script(text: str, line: int = 1, breaks: Sequence[int] = ()) -> tuple[Pipeline, ...]:
    """Pipelines of the shell script `text`, whose first character is on source `line`.

    `breaks` lists offsets of `text` where a new source line starts without a newline
    character in `text` (Dockerfile line continuations that were joined); an offset
    appears once per source line it stands for.
    """
    splitter = _Splitter(text, line, breaks, 0)
    try:
        splitter.split(0, len(text))
    except RecursionError:    # a last guard: exotic nesting never fails the audit
        pass
    return tuple(splitter.out)


def split_argv(argv: Sequence[str], line: int) -> tuple[Pipeline, ...]:
    """Pipelines of an exec-form command (`RUN ["sh", "-c", "..."]`): the command
    itself and, for `sh -c` forms, the commands of its script."""
    words = tuple(argv)
    if not words:
        return ()
    out: list[Pipeline] = [(Command(words, line),)]
    try:
        out.extend(_inline_pipelines(words, line, 0))
    except RecursionError:    # a last guard, as in split_script
        pass
    return tuple(out)


def is_shell(word: str) -> bool:
    """True for a POSIX-like shell program (`sh`, `/bin/bash`...)."""
    return word.rsplit("/", 1)[-1] in SHELLS


def inline_script(words: Sequence[str]) -> str | None:
    """The script of `sh -c SCRIPT` / `sudo bash -ec SCRIPT` / `su -c SCRIPT user`, or None."""
    for index, word in enumerate(words):
        name = word.rsplit("/", 1)[-1]
        if name in SHELLS:
            return _script_after_options(words, index + 1)
        if name in _SU:
            return _su_script(words, index + 1)
        if not _is_wrapper_part(words, index):
            return None
    return None


def _is_wrapper_part(words: Sequence[str], index: int) -> bool:
    word = words[index]
    if word.rsplit("/", 1)[-1] in WRAPPERS or word.startswith("-") or "=" in word:
        return True
    previous = words[index - 1].rsplit("/", 1)[-1] if index else ""
    return previous in _WRAPPERS_WITH_OPERAND or previous in ("-u", "--user", "-g", "--group")


def script_operand(words: Sequence[str], index: int) -> int | None:
    """Index of the script of a shell whose arguments start at words[index] (`-c SCRIPT`,
    `-ec SCRIPT`, `-o pipefail -c -- SCRIPT`: the first operand after the options), or
    None when there is no -c. Shared with the docker-run front end."""
    has_c = False
    while index < len(words):
        word = words[index]
        if word in ("-o", "+o", "-O", "+O"):
            index += 2
            continue
        if word == "--" or not (word.startswith("-") or word.startswith("+")) or word == "-":
            break
        if not word.startswith("--") and "c" in word[1:]:
            has_c = True
        index += 1
    if has_c and index < len(words):
        if words[index] == "--":
            return index + 1 if index + 1 < len(words) else None
        return index
    return None


def _script_after_options(words: Sequence[str], index: int) -> str | None:
    position = script_operand(words, index)
    return None if position is None else words[position]


def _su_script(words: Sequence[str], index: int) -> str | None:
    for position in range(index, len(words)):
        word = words[position]
        if word in ("-c", "--command") and position + 1 < len(words):
            return words[position + 1]
        if word.startswith("--command="):
            return word[len("--command="):]
    return None


def _inline_pipelines(words: Sequence[str], line: int, depth: int) -> list[Pipeline]:
    first = words[0] if words else ""
    if depth >= MAX_DEPTH or (first.rsplit("/", 1)[-1] not in _SCRIPT_RUNNERS
                              and "=" not in first and not first.startswith("-")):
        return []
    script = inline_script(words)
    if not script:
        return []
    inner = _Splitter(script, line, (), depth + 1)
    inner.split(0, len(script))
    return inner.out


def _remove_simple_quotes(raw: str) -> str:
    """Quote removal for a common word: its quoted parts hold no quote of their own kind."""
    if '"' not in raw:
        return raw.replace("'", "")
    if "'" not in raw:
        return raw.replace('"', "")
    return _SIMPLE_QUOTES.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), raw)


def _match_paren(text: str, i: int, end: int, nesting: int = 0) -> int:
    """Index just after the `)` closing the `(` before `i` (or `end`), skipping quotes."""
    return _match_closing(text, i, end, nesting, "(", ")", _PAREN_PLAIN)


def _match_brace(text: str, i: int, end: int, nesting: int = 0) -> int:
    """Index just after the `}` closing a `${` whose body starts at `i` (or `end`)."""
    return _match_closing(text, i, end, nesting, "{", "}", _BRACE_PLAIN)


def _match_closing(text: str, i: int, end: int, nesting: int, opener: str, closer: str, plain) -> int:
    """Index just after the `closer` that balances an `opener` before `i` (or `end`).

    `plain` matches a run of characters that need no attention; a backtick is skipped as
    a command substitution only inside `$( … )` (in `${ … }` it is an ordinary character).
    """
    depth = 1
    nesting += 1
    while i < end:
        match = plain.match(text, i, end)
        if match:
            i = match.end()
            continue
        char = text[i]
        if char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        elif char == "'":
            close = text.find("'", i + 1, end)
            i = end if close < 0 else close
        elif char == '"':
            i = _skip_dquote(text, i + 1, end, nesting) - 1
        elif char == "`" and opener == "(":
            i = _skip_backtick(text, i + 1, end) - 1
        elif char == "\\":
            i += 1
        i += 1
    return end


def _skip_dquote(text: str, i: int, end: int, nesting: int = 0) -> int:
    """Index just after the `"` closing a double-quoted string whose body starts at `i`.
    Past MAX_SCAN_NESTING levels of `"$(` nesting, substitutions are read as plain text."""
    deeper = nesting < MAX_SCAN_NESTING
    while i < end:
        match = _DQUOTE_PLAIN.match(text, i, end)
        if match:
            i = match.end()
            continue
        char = text[i]
        if char == '"':
            return i + 1
        if char == "\\":
            i += 2
        elif deeper and char == "$" and i + 1 < end and text[i + 1] == "(":
            i = _match_paren(text, i + 2, end, nesting)
        elif deeper and char == "$" and i + 1 < end and text[i + 1] == "{":
            i = _match_brace(text, i + 2, end, nesting)
        elif char == "`":
            i = _skip_backtick(text, i + 1, end)
        else:
            i += 1
    return end


def _body_end(text: str, close: int, closer: str) -> int:
    """Where the body of a substitution ending at `close` stops: before its closing
    character, or at `close` itself when the text ended without one."""
    return close - 1 if text[close - 1:close] == closer else close


def _skip_backtick(text: str, i: int, end: int) -> int:
    """Index just after the backtick closing a command substitution starting at `i`."""
    while i < end:
        char = text[i]
        if char == "`":
            return i + 1
        i += 2 if char == "\\" else 1
    return end


class _Word:
    """One shell word being read: its value after quote removal and what it contains."""
    __slots__ = ("parts", "quoted", "subs", "start")

    def __init__(self, start: int):
        self.parts: list[str] = []
        self.quoted = False
        self.subs: list[tuple[int, int]] = []   # (start, end) of $(...) and `...` bodies
        self.start = start

    @property
    def value(self) -> str:
        return "".join(self.parts)


class _Splitter:
    """Reads one script (or a range of it) into `out`, a list of pipelines."""

    def __init__(self, text: str, line: int, breaks: Sequence[int], depth: int):
        self.text = text
        self.base = line
        self.breaks = breaks
        self.depth = depth
        self.out: list[Pipeline] = []
        self._line_pos = 0
        self._line_count = 0

    # -- positions -------------------------------------------------------------
    def newlines_before(self, pos: int) -> int:
        """Newlines in the text before `pos` (counted incrementally: positions mostly grow)."""
        if pos < self._line_pos:
            self._line_count -= self.text.count("\n", pos, self._line_pos)
        else:
            self._line_count += self.text.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self._line_count

    def line_at(self, pos: int) -> int:
        """Source line of offset `pos`."""
        extra = bisect_right(self.breaks, pos) if self.breaks else 0
        return self.base + self.newlines_before(pos) + extra

    # -- words -------------------------------------------------------------------
    def read_word(self, i: int, end: int) -> tuple[_Word, int]:
        """The word starting at `i` and the index after it."""
        text = self.text
        word = _Word(i)
        parts = word.parts
        while i < end:
            match = _PLAIN.match(text, i, end)
            if match:
                parts.append(match.group())
                i = match.end()
                continue
            char = text[i]
            if char == "'":
                close = text.find("'", i + 1, end)
                close = end if close < 0 else close
                parts.append(text[i + 1:close])
                word.quoted = True
                i = close + 1
            elif char == '"':
                i = self._read_dquote(word, i + 1, end)
            elif char == "\\":
                if i + 1 < end and text[i + 1] != "\n":
                    parts.append(text[i + 1])
                    word.quoted = True
                i += 2
            elif char == "$":
                i = self._read_dollar(word, i, end)
            elif char == "`":
                i = self._substitution(word, i, i + 1, _skip_backtick(text, i + 1, end), "`")
            elif char in "<>" and i == word.start and text[i + 1:i + 2] == "(":
                i = self._substitution(word, i, i + 2, _match_paren(text, i + 2, end), ")")
            else:
                break
        return word, min(i, end)

    def _read_dquote(self, word: _Word, i: int, end: int) -> int:
        text = self.text
        parts = word.parts
        word.quoted = True
        while i < end:
            match = _DQUOTE_PLAIN.match(text, i, end)
            if match:
                parts.append(match.group())
                i = match.end()
                continue
            char = text[i]
            if char == '"':
                return i + 1
            if char == "\\":
                following = text[i + 1:i + 2]
                if following in ('"', "\\", "$", "`"):
                    parts.append(following)
                elif following != "\n":
                    parts.append("\\" + following)
                i += 2
            elif char == "$":
                i = self._read_dollar(word, i, end)
            else:  # backtick
                i = self._substitution(word, i, i + 1, _skip_backtick(text, i + 1, end), "`")
        return end

    def _substitution(self, word: _Word, start: int, body: int, close: int, closer: str) -> int:
        """Take the command substitution text[start:close] (`…`, $(…), <(…)) whose commands
        start at `body` into `word`; the index after it."""
        word.subs.append((body, _body_end(self.text, close, closer)))
        word.parts.append(self.text[start:close])
        return close

    def _read_dollar(self, word: _Word, i: int, end: int) -> int:
        text = self.text
        following = text[i + 1:i + 2]
        if following == "(":
            close = _match_paren(text, i + 2, end)
            if text[i + 2:i + 3] != "(":     # $((arithmetic)) holds no commands
                return self._substitution(word, i, i + 2, close, ")")
            word.parts.append(text[i:close])
            return close
        if following == "{":
            close = _match_brace(text, i + 2, end)
            word.parts.append(text[i:close])
            return close
        if following == "'":                 # $'...' ANSI-C quoting
            j = i + 2
            while j < end and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            word.parts.append(text[i + 2:min(j, end)])
            word.quoted = True
            return min(j + 1, end)
        word.parts.append("$")
        return i + 1

    # -- commands ------------------------------------------------------------------
    def split(self, start: int, end: int) -> None:
        _Reader(self, start, end).run()

    def sub_split(self, start: int, end: int) -> list[Pipeline]:
        """Pipelines of the range [start, end) of the same text (a $(...) body, a heredoc)."""
        if self.depth >= MAX_DEPTH or start >= end:
            return []
        inner = _Splitter(self.text, self.base, self.breaks, self.depth + 1)
        inner._line_count = self.newlines_before(start)   # no recount from the start
        inner._line_pos = start
        inner.split(start, end)
        return inner.out


class _Reader:
    """The token loop over one range: builds commands and pipelines."""

    def __init__(self, splitter: _Splitter, start: int, end: int):
        self.sp = splitter
        self.i = start
        self.end = end
        self.words: list[str] = []
        self.assignments: list[tuple[str, str]] = []
        self.cmd_pos: int | None = None
        self.pipeline: list[Command] = []
        self.deferred: list[Pipeline] = []
        self.heredocs: list[list] = []       # [delimiter, strip tabs, feeds a shell] per `<<`
        self.command_heredocs: list[list] = []   # those opened by the command being read
        self.redirect: str | None = None     # operator waiting for its target word
        self.header: str | None = None       # "for" / "case" header being skipped
        self.in_pattern = False              # reading `case` patterns up to `)`
        self.case_depth = 0
        self.after_close = False             # a group/loop just closed: `| cmd` joins it

    def run(self) -> None:
        text, end = self.sp.text, self.end
        words = self.words              # cleared in place, so this alias stays valid
        while self.i < end:
            for match in _TOKEN.finditer(text, self.i, end):
                kind = match.lastindex
                if kind is None:        # blanks, a comment
                    continue
                if kind == 1:
                    raw = match.group(1)
                    if (words or (raw not in _RESERVED and "=" not in raw)) and "'" not in raw \
                            and '"' not in raw and self.redirect is None \
                            and self.header is None and not self.in_pattern:
                        words.append(raw)   # the plain word: most words of most scripts
                        if self.cmd_pos is None:
                            self.cmd_pos = match.start()
                    else:
                        self.common_word(raw, match.start())
                    continue
                self.i = match.end()
                if kind == 2:
                    self.operator(match.group(2))
                    if self.i != match.end():   # a heredoc body or (( )) was skipped
                        break
                    continue
                self.i = match.start()      # anything else: read the word the slow way
                self.word()
                break
            else:
                self.i = end
        self.finish_pipeline()

    # -- tokens -------------------------------------------------------------------
    def common_word(self, raw: str, start: int) -> None:
        """A word whose quotes are simple to remove, or one the state machine must see."""
        word = _Word(start)
        word.quoted = "'" in raw or '"' in raw
        self.take(word, _remove_simple_quotes(raw) if word.quoted else raw)

    def word(self) -> None:
        word, self.i = self.sp.read_word(self.i, self.end)
        if self.i == word.start:      # nothing readable: step over one character
            self.i += 1
            return
        self.take(word, word.value)

    def take(self, word: _Word, value: str) -> None:
        if self.redirect is not None:
            self.redirect_target(value, word.quoted)
            return
        if self.header is not None:
            self.header_word(value, word.quoted)
            return
        if self.in_pattern:
            if value == "esac" and not word.quoted:
                self.close_case()
            return
        if not self.words and not word.quoted:
            if self.reserved(value):
                return
        if not self.words and _ASSIGNMENT.match(value) and not value.startswith("="):
            name, _, assigned = value.partition("=")
            self.assignments.append((name.rstrip("+"), assigned))
        else:
            self.words.append(value)
        if self.cmd_pos is None:
            self.cmd_pos = word.start
        for start, stop in word.subs:
            self.deferred.extend(self.sp.sub_split(start, stop))

    def reserved(self, value: str) -> bool:
        """Handle a reserved word at a command start; True when it was one."""
        if self.assignments:
            return False
        if value in _OPENERS:
            self.after_close = False
            return True
        if value in _CLOSERS:
            self.finish_pipeline()
            if value == "esac":
                self.close_case()
            self.after_close = True
            return True
        if value in ("for", "select"):
            self.header = "for"
            return True
        if value == "case":
            self.header = "case"
            return True
        if value == "function":
            self.header = "function"
            return True
        return False

    def header_word(self, value: str, quoted: bool) -> None:
        if self.header == "case" and value == "in" and not quoted:
            self.header = None
            self.case_depth += 1
            self.in_pattern = True
        elif self.header == "for" and value == "do" and not quoted:
            self.header = None
        elif self.header == "function":
            self.header = None

    def close_case(self) -> None:
        self.in_pattern = False
        self.case_depth = max(0, self.case_depth - 1)
        self.after_close = True

    def redirect_target(self, value: str, quoted: bool) -> None:
        operator, self.redirect = self.redirect or "", None
        if operator.endswith("<<") or operator.endswith("<<-"):
            heredoc = [value, operator.endswith("-"), False]
            self.heredocs.append(heredoc)
            self.command_heredocs.append(heredoc)

    def feeds_shell(self) -> bool:
        """True when the command being read is a shell reading its script from stdin."""
        for index, word in enumerate(self.words):
            if is_shell(word):
                return inline_script(self.words[index:]) is None and not any(
                    not w.startswith("-") for w in self.words[index + 1:])
            if not _is_wrapper_part(self.words, index):
                return False
        return False

    def operator(self, operator: str) -> None:
        if self.header is not None:
            if operator in (";", "\n") and self.header == "for":
                self.header = None
            elif operator == "\n" and self.header == "function":
                self.header = None
            if operator == "\n":
                self.read_heredocs()
            return
        if self.in_pattern:
            if operator == ")":
                self.in_pattern = False
            elif operator == "\n":
                self.read_heredocs()
            return
        if operator not in _CONTROL:
            self.redirect = operator
            return
        self.control(operator)

    def control(self, operator: str) -> None:
        if operator in ("|", "|&"):
            self.finish_command()
            if not self.pipeline and self.after_close and self.sp.out:
                # `{ curl ...; } | sh`: the group's last pipeline continues.
                self.pipeline = list(self.sp.out.pop())
            self.after_close = False
            return
        if operator == "(":
            if len(self.words) == 1 and not self.assignments and not self.pipeline:
                self.function_definition()
                return
            if self.text_at(self.i) == "(" and not self.words:   # (( arithmetic ))
                self.i = _match_paren(self.sp.text, self.i + 1, self.end)
                if self.text_at(self.i) == ")":
                    self.i += 1
                return
            self.finish_pipeline()
            return
        if operator == ")":
            self.finish_pipeline()
            self.after_close = True
            return
        self.finish_pipeline()
        self.after_close = False
        if operator in _CASE_BREAKS and self.case_depth:
            self.in_pattern = True
        if operator == "\n":
            self.read_heredocs()

    def text_at(self, pos: int) -> str:
        return self.sp.text[pos:pos + 1]

    def function_definition(self) -> None:
        """`name() { ... }`: the name is not a command."""
        text = self.sp.text
        close = _BLANKS.match(text, self.i, self.end)
        position = close.end() if close else self.i
        if text[position:position + 1] == ")":
            self.i = position + 1
            self.words.clear()
            self.cmd_pos = None
        else:
            self.finish_pipeline()

    # -- building ------------------------------------------------------------------
    def finish_command(self) -> None:
        if self.redirect is not None:
            self.redirect = None
        if self.command_heredocs:
            # Known only now: `<<EOF bash` names the shell after the redirection.
            feeds = self.feeds_shell()
            for heredoc in self.command_heredocs:
                heredoc[2] = feeds
            self.command_heredocs = []
        if not self.words and not self.assignments:
            self.cmd_pos = None
            return
        line = self.sp.line_at(self.cmd_pos if self.cmd_pos is not None else self.i)
        words = tuple(self.words)
        self.pipeline.append(Command(words, line, tuple(self.assignments)))
        self.deferred.extend(_inline_pipelines(words, line, self.sp.depth))
        self.words.clear()
        self.assignments = []
        self.cmd_pos = None

    def finish_pipeline(self) -> None:
        self.finish_command()
        if self.pipeline:
            self.sp.out.append(tuple(self.pipeline))
            self.pipeline = []
        if self.deferred:
            self.sp.out.extend(self.deferred)
            self.deferred = []

    def read_heredocs(self) -> None:
        """After a newline: skip the bodies of pending here-documents (split those fed to a shell)."""
        text, end = self.sp.text, self.end
        pending, self.heredocs = self.heredocs, []
        for delimiter, strip_tabs, feeds_shell in pending:
            body_start = self.i
            while self.i < end:
                newline = text.find("\n", self.i, end)
                stop = end if newline < 0 else newline
                candidate = text[self.i:stop].rstrip("\r")
                if strip_tabs:
                    candidate = candidate.lstrip("\t")
                line_start = self.i
                self.i = stop + 1 if newline >= 0 else end
                if candidate == delimiter:
                    self.body(body_start, line_start, feeds_shell)
                    break
            else:
                self.body(body_start, end, feeds_shell)

    def body(self, start: int, stop: int, feeds_shell: bool) -> None:
        if feeds_shell:
            self.sp.out.extend(self.sp.sub_split(start, stop))
