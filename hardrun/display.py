"""Text from files or processes, made safe to show on a terminal."""
from __future__ import annotations


def printable(text: str) -> str:
    """`text` with control characters (escape sequences, carriage returns, tabs…) written
    as Python escapes: what an audited file or a container says cannot drive the
    terminal of whoever reads the report."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
                   for char in text)
