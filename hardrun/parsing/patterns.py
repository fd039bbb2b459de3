"""Regular expressions compiled when first used.

Compiling a pattern costs 0.05-0.5 ms, and a module-level `re.compile` is paid by every
process that imports the module, used or not: a one-file `hardrun audit` imported about
75 of them and used a dozen. `lazy(pattern, flags)` stands where `re.compile(pattern,
flags)` stood and compiles on the first call of one of its methods; from then on those
methods are the compiled pattern's own (no wrapper on the hot path).

Compiling is itself cached (`regex`): `re` parses and compiles a pattern in Python, about
0.2 ms each and 6 ms of a one-file Dockerfile audit. The compiled program (the list of
opcodes `re` hands to its C engine, `_sre`) is stored like the rules cache, one entry per
pattern keyed by the pattern, its flags and the interpreter's exact version and `_sre`
format, and the engine builds the pattern from it directly. `_sre` checks a program it is
given (a damaged one is refused, then compiled anew); a pattern built so compares equal to
`re.compile`'s (tests/frontends/test_pattern_cache.py). On a hit, `re` itself is not
imported.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

# re's flags (tests/frontends/test_pattern_cache.py checks them): a module that passes a
# flag takes it from here, so that a one-file audit whose patterns all come from the
# cache never imports `re` (with `enum`, about 3 ms)
IGNORECASE, MULTILINE, DOTALL = 2, 8, 16

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
            compiled = self.__dict__["_compiled"] = regex(*self._source)
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


# --- the cache of compiled programs -----------------------------------------------------

CACHE_KIND = "regex"


def regex(pattern: str, flags: int = 0) -> re.Pattern:
    """`re.compile(pattern, flags)`, from the cached program when there is one."""
    engine = _engine()
    if engine is None or not isinstance(pattern, str):
        import re
        return re.compile(pattern, flags)
    from .. import cache
    key = cache.fingerprint((engine[1], str(int(flags)).encode(), pattern.encode()))
    stored = cache.load(CACHE_KIND, key)
    if stored is not None:
        built = _build(engine[0], pattern, stored)
        if built is not None:
            return built
    program = _program(pattern, flags)
    built = _build(engine[0], pattern, program) if program is not None else None
    if built is None:           # not a program `_sre` takes: never stored
        import re
        return re.compile(pattern, flags)
    cache.store(CACHE_KIND, key, program)
    return built


def glob_regex(globs) -> re.Pattern:
    """One pattern matching a name that any of the fnmatch `globs` matches: the
    `fnmatch.translate` of each, joined with `|` (fnmatch imports `re`, so the
    translation is cached with the program)."""
    engine = _engine()
    if engine is not None:
        from .. import cache
        key = cache.fingerprint((engine[1], b"globs", *(glob.encode() for glob in globs)))
        stored = cache.load(CACHE_KIND, key)
        if isinstance(stored, list) and len(stored) == 2 and isinstance(stored[0], str):
            built = _build(engine[0], stored[0], stored[1])
            if built is not None:
                return built
    import fnmatch
    text = "|".join(fnmatch.translate(glob) for glob in globs)
    program = _program(text, 0) if engine is not None else None
    built = _build(engine[0], text, program) if program is not None else None
    if built is None:
        import re
        return re.compile(text)
    cache.store(CACHE_KIND, key, [text, program])
    return built


_ENGINE: list = []


def _engine():
    """(`_sre`, the identity of this interpreter's compiled-program format), or None when
    this interpreter's `re` is not built the way this module knows (then nothing is cached)."""
    if not _ENGINE:
        try:
            import sys
            import _sre
            identity = f"{sys.version}|{sys.implementation.cache_tag}|{_sre.MAGIC}|{_sre.CODESIZE}"
            _ENGINE.append((_sre, identity.encode()))
        except (ImportError, AttributeError):
            _ENGINE.append(None)
    return _ENGINE[0]


def _program(pattern: str, flags: int) -> list | None:
    """[flags, opcodes, groups, group index, index group] of `pattern`: what
    `re._compiler.compile` hands to `_sre.compile` (re.error if it is not a pattern);
    None where `re` is not built that way (before Python 3.11)."""
    try:
        import re._compiler as _compiler
        import re._parser as _parser
    except ImportError:
        return None
    parsed = _parser.parse(pattern, flags)
    code = _compiler._code(parsed, flags)
    groupindex = dict(parsed.state.groupdict)
    indexgroup = [None] * parsed.state.groups
    for name, index in groupindex.items():
        indexgroup[index] = name
    return [int(flags | parsed.state.flags), [int(op) for op in code], parsed.state.groups - 1,
            groupindex, indexgroup]


def _build(sre, pattern: str, program) -> re.Pattern | None:
    """The pattern `_sre` builds from a stored program; None for anything it refuses."""
    try:
        flags, code, groups, groupindex, indexgroup = program
        # each opcode is checked by _sre itself (a non-integer is refused, as is a program
        # that does not hold together); the key, verified on read, ties it to the pattern
        if not (isinstance(flags, int) and isinstance(code, list) and isinstance(groups, int)
                and isinstance(groupindex, dict) and isinstance(indexgroup, list)):
            return None
        return sre.compile(pattern, flags, code, groups, groupindex, tuple(indexgroup))
    except (TypeError, ValueError, RuntimeError, OverflowError):   # RuntimeError: invalid SRE code
        return None
