"""A small shell lexer: the simple commands of a script, as words with their lines.

Enough of POSIX sh/bash to find commands reliably, without executing or expanding
anything: quoting ('…', "…", $'…', backslashes), line continuations, comments,
operators (|, ||, &&, ;, &, parentheses), redirections (dropped with their target),
here-documents (skipped, or read as commands when fed to a shell), and expansions
($VAR, ${…}, $(…), `…`, $((…))) kept literally and marked unresolved. The text
inside $(…), `…` and <(…) is scanned for commands too.

This is the docker-run front end's lexer; Dockerfile RUN bodies go through shell.py.
They stay two because this one keeps, per word, its source line (through a snippet's
line map) and whether it holds an unresolved expansion, and can fail strictly on an
unterminated quote, while shell.py, on the Dockerfile audit's hot path, keeps plain
strings, one line per command, pipelines and assignments, and never fails (see its
docstring for the measurements). The shell names and the `sh -c` script lookup are
shell.py's.
"""
from __future__ import annotations

import re
from bisect import bisect_left

from ..errors import ParseError
from .shell import SHELLS

MAX_DEPTH = 16          # nesting of $(…) scanned for commands; deeper text stays literal
# A here-document body given to one of these is a script of its own (`ssh host <<EOF`).
HEREDOC_RUNNERS = SHELLS | {"ssh"}

_PLAIN = re.compile(r"[^ \t\n\r\f\v\\'\"$`;&|()<>]+")
_BLANKS = re.compile(r"[ \t\r\f\v]+")
_SPECIAL = "\n\\'\"$`;&|()<>"     # what _PLAIN stops at, besides the blanks
_DOUBLE_PLAIN = re.compile(r"[^\"\\$`]+")     # what stands for itself inside "…"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")


class Word:
    """One shell word: its text with quotes removed and expansions kept literally."""
    __slots__ = ("text", "line", "unresolved")

    def __init__(self, text: str, line: int, unresolved: bool = False):
        self.text = text
        self.line = line
        self.unresolved = unresolved   # holds an expansion the auditor does not perform

    def __repr__(self):
        return f"Word({self.text!r}, {self.line}{', unresolved' if self.unresolved else ''})"


class Snippet:
    """Shell text and the file line of each of its lines (snippets cut from YAML or Markdown)."""
    __slots__ = ("text", "first_line", "line_map", "_newlines")

    def __init__(self, text: str, first_line: int = 1, line_map: list[int] | None = None):
        self.text = text
        self.first_line = first_line
        self.line_map = line_map
        self._newlines: list[int] | None = None

    def line_at(self, position: int) -> int:
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self.text)]
        index = bisect_left(self._newlines, position)
        if self.line_map is not None:
            return self.line_map[min(index, len(self.line_map) - 1)]
        return self.first_line + index


def commands(snippet: Snippet, *, strict: bool = False, path: str | None = None) -> list[list[Word]]:
    """Every simple command of `snippet` (including those inside $(…)), in source order.

    strict: an unterminated quote or substitution is a ParseError (for whole scripts);
    otherwise the rest of the snippet is taken literally (for snippets from documents).
    """
    lexer = _Lexer(snippet, strict, path)
    lexer.lex(0, len(snippet.text), 0)
    return lexer.out


class _WordState:
    """The word the lexer is in the middle of, and what to do with it when it ends."""
    __slots__ = ("start", "unresolved", "drop_next", "heredoc")

    def __init__(self) -> None:
        self.start: int | None = None     # where the word began; None: between words
        self.unresolved = False           # it holds an expansion the auditor does not perform
        self.drop_next = False            # it is a redirection's target
        self.heredoc: bool | None = None  # it is a here-document's delimiter (True: `<<-`)


class _Lexer:
    def __init__(self, snippet: Snippet, strict: bool, path: str | None):
        self.snippet = snippet
        self.text = snippet.text
        self.strict = strict
        self.path = path
        self.out: list[list[Word]] = []

    def fail(self, what: str, position: int):
        if self.strict:
            raise ParseError(f"unterminated {what}", path=self.path,
                             line=self.snippet.line_at(position))

    # ------------------------------------------------------------------ main loop
    def lex(self, start: int, end: int, depth: int) -> None:
        text = self.text
        words: list[Word] = []
        buf: list[str] = []
        state = _WordState()
        heredocs: list[tuple[str, bool, list[Word]]] = []
        line_at = self.snippet.line_at

        def end_word():
            if state.start is None:
                return
            word = Word("".join(buf), line_at(state.start), state.unresolved)
            buf.clear()
            state.start, state.unresolved = None, False
            if state.heredoc is not None:
                heredocs.append((word.text, state.heredoc, words))
                state.heredoc = None
            elif state.drop_next:
                state.drop_next = False
            else:
                words.append(word)

        def end_command():
            nonlocal words
            end_word()
            state.drop_next = False
            state.heredoc = None
            if words:
                self.out.append(words)
                words = []

        def begin(position):
            if state.start is None:
                state.start = position

        # The hot loop of every docker-run audit: locals for the patterns, a run of blanks
        # ends a word once, and plain text (`begin` inlined) is matched only where it starts.
        plain_match, blanks_match = _PLAIN.match, _BLANKS.match
        i = start
        while i < end:
            c = text[i]
            if c in " \t\r\f\v":
                if state.start is not None:
                    end_word()
                blanks = blanks_match(text, i, end)
                i = blanks.end() if blanks is not None else i + 1   # always a match: c is a blank
                continue
            if c not in _SPECIAL:
                if c == "#" and state.start is None:
                    newline = text.find("\n", i, end)
                    i = end if newline < 0 else newline
                    continue
                plain = plain_match(text, i, end)
                if plain is not None:               # always: c starts plain text
                    if state.start is None:
                        state.start = i
                    buf.append(plain.group())
                    i = plain.end()
                    continue
            if c == "\\":
                if i + 1 < end and text[i + 1] == "\n":
                    i += 2
                    continue
                begin(i)
                buf.append(text[i + 1] if i + 1 < end else "\\")
                i += 2
                continue
            if c == "\n":
                end_command()
                i += 1
                if heredocs:
                    i = self._heredoc_bodies(heredocs, i, end, depth)
                    heredocs = []
                continue
            if c == "'":
                begin(i)
                close = text.find("'", i + 1, end)
                if close < 0:
                    self.fail("single quote", i)
                    close = end
                buf.append(text[i + 1:close])
                i = close + 1
                continue
            if c == '"':
                begin(i)
                i, part, unresolved = self._double(i + 1, end, depth)
                buf.append(part)
                state.unresolved |= unresolved
                continue
            if c == "$":
                begin(i)
                i, part, unresolved = self._dollar(i, end, depth)
                buf.append(part)
                state.unresolved |= unresolved
                continue
            if c == "`":
                begin(i)
                i, part = self._backtick(i, end, depth)
                buf.append(part)
                state.unresolved = True
                continue
            if c in "<>":
                if i + 1 < end and text[i + 1] == "(":   # process substitution <(…) >(…)
                    begin(i)
                    i, part = self._subshell(i + 1, end, depth)
                    buf.append(c + part)
                    state.unresolved = True
                    continue
                if state.start is not None and "".join(buf).isdigit():
                    buf.clear()                          # `2>`: the fd number is no word
                    state.start = None
                end_word()
                i = self._redirection(i, end, state)
                continue
            # ; & | ( ) end a command
            if c == "&" and i + 1 < end and text[i + 1] == ">":   # &> and &>> redirect
                end_word()
                i = self._redirection(i + 1, end, state)
                continue
            end_command()
            i += 2 if text.startswith(("&&", "||", ";;", "|&"), i) else 1
        end_command()

    def _redirection(self, i: int, end: int, state) -> int:
        text = self.text
        for op in ("<<<", "<<-", "<<", "<>", "<&", ">>", ">&", ">|", "<", ">"):
            if text.startswith(op, i):
                break
        if op in ("<<", "<<-"):
            state.heredoc = op == "<<-"
        else:
            state.drop_next = True
        return i + len(op)

    def _heredoc_bodies(self, heredocs, i: int, end: int, depth: int) -> int:
        """Skip the bodies of here-documents opened on the line that just ended; a body fed
        to a shell (`sh <<EOF`, `ssh host <<EOF`) is scanned for commands."""
        text = self.text
        for delimiter, strip_tabs, owner in heredocs:
            delimiter = delimiter.strip()
            body_start = i
            while i < end:
                newline = text.find("\n", i, end)
                line_end = end if newline < 0 else newline
                line = text[i:line_end]
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    if owner and owner[0].text.rsplit("/", 1)[-1] in HEREDOC_RUNNERS and depth < MAX_DEPTH:
                        self.lex(body_start, i, depth + 1)
                    i = line_end + 1
                    break
                i = line_end + 1
            else:
                self.fail(f"here-document (no line {delimiter!r})", body_start)
        return min(i, end)

    # ------------------------------------------------------------------ quoting, expansions
    def _double(self, i: int, end: int, depth: int) -> tuple[int, str, bool]:
        text = self.text
        parts: list[str] = []
        unresolved = False
        start = i
        plain_match = _DOUBLE_PLAIN.match
        while i < end:
            plain = plain_match(text, i, end)
            if plain:
                parts.append(plain.group())
                i = plain.end()
                continue
            c = text[i]
            if c == '"':
                return i + 1, "".join(parts), unresolved
            if c == "\\" and i + 1 < end:
                following = text[i + 1]
                if following == "\n":
                    i += 2
                    continue
                parts.append(following if following in '$`"\\' else "\\" + following)
                i += 2
                continue
            if c == "$":
                i, part, dollar_unresolved = self._dollar(i, end, depth, quoted=True)
                parts.append(part)
                unresolved |= dollar_unresolved
                continue
            if c == "`":
                i, part = self._backtick(i, end, depth)
                parts.append(part)
                unresolved = True
                continue
            parts.append(c)
            i += 1
        self.fail("double quote", start - 1)
        return end, "".join(parts), unresolved

    def _dollar(self, i: int, end: int, depth: int, quoted: bool = False) -> tuple[int, str, bool]:
        text = self.text
        following = text[i + 1] if i + 1 < end else ""
        if following == "(":
            if text.startswith("$((", i):
                close = self._matching(i + 3, end, "(", ")", depth=2)
                if close < 0:
                    self.fail("$((", i)
                    return end, text[i:end], True
                return close + 1, text[i:close + 1], True
            close, part = self._subshell(i + 1, end, depth)
            return close, "$" + part, True
        if following == "{":
            close = self._matching(i + 2, end, "{", "}")
            if close < 0:
                self.fail("${", i)
                return end, text[i:end], True
            return close + 1, text[i:close + 1], True
        if following == "'" and not quoted:
            return self._ansi_c(i + 2, end)
        if following == '"' and not quoted:   # $"…" (locale translation) reads like "…"
            close, part, unresolved = self._double(i + 2, end, depth)
            return close, part, unresolved
        name = _NAME.match(text, i + 1, end)
        if name:
            return name.end(), text[i:name.end()], True
        return i + 1, "$", False

    def _subshell(self, i: int, end: int, depth: int) -> tuple[int, str]:
        """`(…)` starting at text[i] == "(": scanned for commands; returns (after, literal)."""
        close = self._matching(i + 1, end, "(", ")")
        if close < 0:
            self.fail("$(", i)
            return end, self.text[i:end]
        if depth < MAX_DEPTH:
            self.lex(i + 1, close, depth + 1)
        return close + 1, self.text[i:close + 1]

    def _backtick(self, i: int, end: int, depth: int) -> tuple[int, str]:
        text = self.text
        j = i + 1
        while j < end and text[j] != "`":
            j += 2 if text[j] == "\\" else 1
        if j >= end:
            self.fail("backquote", i)
            return end, text[i:end]
        if depth < MAX_DEPTH:
            self.lex(i + 1, j, depth + 1)
        return j + 1, text[i:j + 1]

    def _ansi_c(self, i: int, end: int) -> tuple[int, str, bool]:
        text = self.text
        parts: list[str] = []
        escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "e": "\x1b",
                   "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
        start = i
        while i < end:
            c = text[i]
            if c == "'":
                return i + 1, "".join(parts), False
            if c == "\\" and i + 1 < end:
                parts.append(escapes.get(text[i + 1], "\\" + text[i + 1]))
                i += 2
                continue
            parts.append(c)
            i += 1
        self.fail("$'", start - 2)
        return end, "".join(parts), False

    def _matching(self, i: int, end: int, opening: str, closing: str, depth: int = 1) -> int:
        """Index of the `closing` that balances `depth` open ones, skipping quotes; -1 if none."""
        text = self.text
        while i < end:
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if c == "'":
                close = text.find("'", i + 1, end)
                if close < 0:
                    return -1
                i = close + 1
                continue
            if c == '"':
                i += 1
                while i < end and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
                i += 1
                continue
            if c == opening:
                depth += 1
            elif c == closing:
                depth -= 1
                if depth == 0:
                    return i
            i += 1
        return -1
