"""Regular expressions compiled when first used.

Compiling a pattern costs 0.05-0.5 ms, and a module-level `re.compile` is paid by every
process that imports the module, used or not: a one-file `hardrun audit` imported about
75 of them and used a dozen. `lazy(pattern, flags)` stands where `re.compile(pattern,
flags)` stood and compiles on the first call of one of its methods; from then on those
methods are the compiled pattern's own (no wrapper on the hot path).
"""
from __future__ import annotations

import re

# the compiled pattern's attributes a LazyPattern hands out once compiled
_METHODS = ("match", "fullmatch", "search", "findall", "finditer", "sub", "subn", "split",
            "pattern", "flags", "groups", "groupindex")


class LazyPattern:
    """A `re.Pattern` in waiting; its methods are bound to the compiled pattern on first use."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._source = (pattern, flags)

    def compiled(self) -> re.Pattern:
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            compiled = self.__dict__["_compiled"] = re.compile(*self._source)
            for name in _METHODS:     # instance attributes: later look-ups skip __getattr__
                setattr(self, name, getattr(compiled, name))
        return compiled

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_source", "_compiled"):
            raise AttributeError(name)
        return getattr(self.compiled(), name)

    def __repr__(self) -> str:
        return f"lazy({self._source[0]!r})"


def lazy(pattern: str, flags: int = 0) -> LazyPattern:
    """`re.compile(pattern, flags)`, done when the pattern is first used."""
    return LazyPattern(pattern, flags)
