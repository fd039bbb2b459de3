"""Progress of a long audit on a terminal: `files done/found` and the current directory,
one line on stderr rewritten in place, erased when the audit ends.

Shown only when the tree is large (more than MANY_FILES files) or the audit has taken
DELAY seconds, and only where someone watches: the command makes one only when stderr
is a terminal, so redirected output and CI logs never hold it.
"""
from __future__ import annotations

import os
import time

MANY_FILES = 500
DELAY = 2.0            # seconds before a smaller tree's audit shows progress
REFRESH = 0.1          # seconds between two updates of the line


class TerminalProgress:
    def __init__(self, stream, clock=time.monotonic):
        self.stream = stream
        self.clock = clock
        self.total = 0
        self.count = 0
        self.started = 0.0
        self.last = None          # when the line was last written; None: not shown yet

    def found(self, total: int) -> None:
        self.total = total
        self.started = self.clock()

    def done(self, path: str) -> None:
        self.count += 1
        now = self.clock()
        if self.last is None and self.total <= MANY_FILES and now - self.started < DELAY:
            return
        if self.last is not None and now - self.last < REFRESH and self.count < self.total:
            return
        self.last = now
        self._write(f"hardrun audit: {self.count}/{self.total} files, {_directory(path)}")

    def close(self) -> None:
        """Erase the line, so that the report starts on a clean line."""
        if self.last is not None:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _write(self, text: str) -> None:
        from ..display import printable
        text = printable(text)[: self._width() - 1]
        self.stream.write("\r\033[K" + text)
        self.stream.flush()

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            return 80


def _directory(path: str) -> str:
    return os.path.dirname(path) or "."
