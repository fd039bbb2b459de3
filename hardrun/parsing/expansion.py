"""Dockerfile word processing: `$X`/`${X...}` substitution and quote removal as the
builder does it for FROM, COPY, ENV, LABEL and the other expanding instructions.

`expand(text, scope, escape)` returns the words (quotes removed, substituted values
split on blanks when unquoted), the text with variables replaced but quotes and
escapes left as written, and the names that had no known value. A variable with no
known value expands to the empty string, as in Docker; the caller learns its name
so that rules can tell "depends on a build argument" from a real empty value.
"""
from __future__ import annotations

from .patterns import lazy
TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Mapping

_NAME = lazy(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]")
_PLAIN_UNQUOTED = lazy(r"[^\s$'\"\\`]+")
_PLAIN_DQUOTED = lazy(r"[^$\"\\`]+")
_BLANK = lazy(r"\s+")
_MODIFIERS = (":-", ":+", ":?", "##", "%%", "//", "-", "+", "?", "#", "%", "/")
MAX_NESTING = 16
MAX_PATTERN_VALUE = 4096   # longer values are left whole by `${X#pattern}` (quadratic matching)


class Expansion:
    """The result of expanding one argument text."""
    __slots__ = ("words", "text", "unresolved")

    def __init__(self, words: list[str], text: str, unresolved: list[str]):
        self.words = words
        self.text = text
        self.unresolved = unresolved


def expand(text: str, scope: Mapping[str, "str | None"], escape: str = "\\",
           split: bool = True) -> Expansion:
    """Words and substituted text of `text`. `scope` maps names to values; None (or a
    missing name) means no value is known. `split=False` keeps blanks inside one word."""
    if "$" not in text and "'" not in text and '"' not in text and escape not in text:
        if split:
            return Expansion(text.split(), text, [])
        return Expansion([text], text, [])
    lexer = _Lexer(text, scope, escape, split, 0)
    lexer.run()
    return Expansion(lexer.words, "".join(lexer.out), lexer.unresolved)


def unquote_words(text: str, escape: str = "\\") -> list[str]:
    """Words of `text` with quotes removed and no substitution (`$X` stays `$X`)."""
    return expand(text, _Verbatim(), escape).words


class _Verbatim(dict):
    """A scope that leaves every variable as written."""


class _Lexer:
    def __init__(self, text: str, scope, escape: str, split: bool, depth: int):
        self.text = text
        self.scope = scope
        self.escape = escape
        self.split = split
        self.depth = depth
        self.words: list[str] = []
        self.current: list[str] = []
        self.in_word = False
        self.out: list[str] = []
        self.unresolved: list[str] = []

    def run(self) -> None:
        text, n, i = self.text, len(self.text), 0
        while i < n:
            match = _PLAIN_UNQUOTED.match(text, i)
            if match:
                self.keep(match.group())
                i = match.end()
                continue
            char = text[i]
            if char == self.escape:
                i = self.escaped(i)
            elif char.isspace():
                self.out.append(char)
                if self.split:
                    self.end_word()
                else:
                    self.add(char)
                i += 1
            elif char == "'":
                close = text.find("'", i + 1)
                close = n if close < 0 else close
                self.add(text[i + 1:close])
                self.out.append(text[i:close + 1])
                i = close + 1
            elif char == '"':
                i = self.double_quoted(i + 1)
            elif char == "$":
                i = self.dollar(i, quoted=False)
            else:   # a backtick that is not the escape character
                self.keep(char)
                i += 1
        self.end_word()

    def add(self, piece: str) -> None:
        self.current.append(piece)
        self.in_word = True

    def keep(self, piece: str) -> None:
        """`piece` is both part of the word and of the expanded text, unchanged."""
        self.add(piece)
        self.out.append(piece)

    def end_word(self) -> None:
        if self.in_word:
            self.words.append("".join(self.current))
        self.current = []
        self.in_word = False

    def escaped(self, i: int) -> int:
        text = self.text
        if i + 1 >= len(text):
            self.keep(text[i])
            return i + 1
        self.add(text[i + 1])
        self.out.append(text[i:i + 2])
        return i + 2

    def double_quoted(self, i: int) -> int:
        text, n = self.text, len(self.text)
        self.out.append('"')
        self.in_word = True
        while i < n:
            match = _PLAIN_DQUOTED.match(text, i)
            if match:
                self.keep(match.group())
                i = match.end()
                continue
            char = text[i]
            if char == '"':
                self.out.append('"')
                return i + 1
            if char == self.escape and i + 1 < n and text[i + 1] in ('"', "$", self.escape):
                self.add(text[i + 1])
                self.out.append(text[i:i + 2])
                i += 2
            elif char == "$":
                i = self.dollar(i, quoted=True)
            else:
                self.keep(char)
                i += 1
        return n

    def dollar(self, i: int, quoted: bool) -> int:
        text = self.text
        if isinstance(self.scope, _Verbatim):
            self.keep("$")
            return i + 1
        if text.startswith("{", i + 1):
            close = _closing_brace(text, i + 2)
            value = self.braced(text[i + 2:close])
            end = min(close + 1, len(text))
        else:
            match = _NAME.match(text, i + 1)
            if not match:
                self.keep("$")
                return i + 1
            value = self.lookup(match.group())
            end = match.end()
        self.out.append(value)
        self.insert(value, quoted)
        return end

    def insert(self, value: str, quoted: bool) -> None:
        """Add a substituted value: unquoted values are split on blanks into words."""
        if quoted or not self.split or not value or not _BLANK.search(value):
            if value or quoted:
                self.add(value)
            return
        pieces = _BLANK.split(value)
        if pieces[0]:
            self.add(pieces[0])
        self.end_word()
        for piece in pieces[1:-1]:
            self.words.append(piece)
        if pieces[-1]:
            self.add(pieces[-1])

    def lookup(self, name: str) -> str:
        value = self.scope.get(name)
        if value is None:
            if name not in self.unresolved:
                self.unresolved.append(name)
            return ""
        return value

    def braced(self, body: str) -> str:
        """The value of `${body}`."""
        match = _NAME.match(body)
        if not match:
            return ""
        name, rest = match.group(), body[match.end():]
        if not rest:
            return self.lookup(name)
        modifier = next((m for m in _MODIFIERS if rest.startswith(m)), None)
        if modifier is None:
            return self.lookup(name)
        word = self.word(rest[len(modifier):])
        value = self.scope.get(name)
        return self.modify(name, value, modifier, word)

    def modify(self, name: str, value: str | None, modifier: str, word: str) -> str:
        if modifier == ":-":
            return value if value else word
        if modifier == "-":
            return value if value is not None else word
        if value is None:
            # `${X:+alt}`, `${X#pat}`...: the result depends on a value nobody gave.
            return self.lookup(name)
        if modifier == ":+":
            return word if value else ""
        if modifier == "+":
            return word
        if modifier in (":?", "?"):
            return value
        if len(value) > MAX_PATTERN_VALUE and modifier in ("#", "##", "%", "%%"):
            return value
        if modifier in ("#", "##"):
            return _strip_prefix(value, word, longest=modifier == "##")
        if modifier in ("%", "%%"):
            return _strip_suffix(value, word, longest=modifier == "%%")
        pattern, _, replacement = word.partition("/")
        if not pattern:
            return value
        return value.replace(pattern, replacement) if modifier == "//" else value.replace(
            pattern, replacement, 1)

    def word(self, text: str) -> str:
        """The expansion of a modifier's word (`default` in `${X:-default}`)."""
        if self.depth >= MAX_NESTING:
            return text
        inner = _Lexer(text, self.scope, self.escape, False, self.depth + 1)
        inner.run()
        for name in inner.unresolved:
            if name not in self.unresolved:
                self.unresolved.append(name)
        return "".join(inner.words)


def _closing_brace(text: str, i: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `i` (len(text) if none)."""
    depth = 1
    n = len(text)
    while i < n:
        char = text[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        elif char == "'":
            close = text.find("'", i + 1)
            i = n if close < 0 else close
        elif char == "\\":
            i += 1
        i += 1
    return n


def _strip_prefix(value: str, pattern: str, longest: bool) -> str:
    from fnmatch import fnmatchcase    # here: fnmatch imports `re` (see parsing/patterns.py)
    lengths = range(len(value), -1, -1) if longest else range(len(value) + 1)
    for length in lengths:
        if fnmatchcase(value[:length], pattern):
            return value[length:]
    return value


def _strip_suffix(value: str, pattern: str, longest: bool) -> str:
    from fnmatch import fnmatchcase
    starts = range(len(value) + 1) if longest else range(len(value), -1, -1)
    for start in starts:
        if fnmatchcase(value[start:], pattern):
            return value[:start]
    return value
