"""One error type for everything hardrun reports to a user.

A diagnostic says what went wrong, where (file and line when there is one) and,
when we know it, how to fix it. The CLI prints it on one line; nothing here
ever becomes a traceback for the user.
"""
from __future__ import annotations


class HardrunError(Exception):
    """A failure the user can act on."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.hint = hint

    def located(self) -> str:
        """`message` prefixed with `line N[, column C]: ` when a line is known (no path)."""
        if self.line is None:
            return self.message
        where = f"line {self.line}"
        if self.column is not None:
            where += f", column {self.column}"
        return f"{where}: {self.message}"

    def summary(self) -> str:
        """The CLI's one line: the whole diagnostic when it names a file, else the message."""
        return str(self) if self.path else self.message

    def __str__(self) -> str:
        text = self.located()
        if self.path:
            text = f"{self.path}: {text}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class ParseError(HardrunError):
    """An input file (Dockerfile, YAML, command line…) could not be understood."""


class UsageError(HardrunError):
    """The command line or a configuration asked for something impossible."""


class RuleError(HardrunError):
    """A rule file under rules/ is malformed (a bug in hardrun, caught by its tests)."""
