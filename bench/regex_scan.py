"""Search every regular expression of the hardrun package for super-linear matching.

    .venv/bin/python bench/regex_scan.py [--size 10000] [--budget 0.05] [-v]

Not a test (it times things). Every compiled pattern found in the globals of a hardrun
module (also inside dicts, lists and tuples), every module-level string that compiles
and is used as a pattern (names ending in _PATTERN, _QUANTITY…: see `_string_patterns`),
and every pattern the audit compiles while auditing tests/data is run, with `search`
and `match`, against adversarial inputs:

    prefix + pump * n + suffix

- prefix: the shortest text that matches the first k elements of the pattern, for
  every k (built from the parsed pattern), so a pump reaches the quantifier it feeds;
- pump: every character of a fixed alphabet (spaces, tabs, letters, digits,
  punctuation) and of the pattern's own literals, alone and in pairs;
- suffix: nothing, or a character the pattern does not expect (NUL).

An input whose match takes more than --budget seconds at --size characters is timed
again at twice the size: a ratio above 3 is reported as super-linear (quadratic
doubles to 4x, linear stays at 2x). Exit status 1 when any is found.
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import os
import pkgutil
import re
import sys
import time

try:
    from re import _parser as sre_parse, _constants as sre_constants
except ImportError:          # Python < 3.11
    import sre_parse, sre_constants   # noqa: E401

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

ALPHABET = " \t\n\raA0_.:/@$#=-+*?!\"'\\`{}()[]<>,;|&%~^é"
SUFFIXES = ("", "\0")
MAX_PREFIXES = 40
MAX_PAIRS = 300


def package_patterns():
    """(name, compiled pattern) for every pattern in the globals of a hardrun module."""
    import hardrun
    found = {}
    for module_info in pkgutil.walk_packages(hardrun.__path__, "hardrun."):
        try:
            module = importlib.import_module(module_info.name)
        except Exception:            # a runtime module whose extra is not installed
            continue
        for attribute, value in vars(module).items():
            for index, pattern in enumerate(_patterns_in(value)):
                found.setdefault(pattern, f"{module_info.name}.{attribute}[{index}]")
        for attribute, value in _string_patterns(module):
            found.setdefault(re.compile(value), f"{module_info.name}.{attribute}")
    return found


def _patterns_in(value, depth: int = 0):
    if isinstance(value, re.Pattern):
        yield value
    elif isinstance(getattr(value, "__self__", None), re.Pattern):   # a pattern's .search
        yield value.__self__
    elif depth < 3 and isinstance(value, dict):
        for item in value.values():
            yield from _patterns_in(item, depth + 1)
    elif depth < 3 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _patterns_in(item, depth + 1)


def _string_patterns(module):
    """Module-level strings passed to re.match/re.search by the module itself."""
    source_path = getattr(module, "__file__", None)
    if not source_path or not source_path.endswith(".py"):
        return
    with open(source_path, encoding="utf-8") as handle:
        source = handle.read()
    for name in set(re.findall(r"re\.(?:match|search|fullmatch|finditer|findall|sub)\((\w+)", source)):
        value = getattr(module, name, None)
        if isinstance(value, str):
            yield name, value


def audit_patterns():
    """Patterns compiled while auditing the test corpus (rule files, generated ones)."""
    re.purge()
    from hardrun.audit.engine import audit
    audit([os.path.join(ROOT, "tests", "data")])
    return {pattern: f"compiled during an audit: {pattern.pattern[:40]!r}"
            for pattern in (value for value in re._cache.values() if isinstance(value, re.Pattern))}


def example(items) -> str:
    """The shortest text matching a parsed sequence (best effort)."""
    return "".join(_example(op, av) for op, av in items)


def _example(op, av) -> str:
    c = sre_constants
    if op is c.LITERAL:
        return chr(av)
    if op is c.NOT_LITERAL:
        return "a" if av != ord("a") else "b"
    if op is c.ANY:
        return "a"
    if op is c.IN:
        return _member(av)
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
        low, _, item = av
        return example(item) * low
    if op is c.SUBPATTERN:
        return example(av[-1])
    if op is getattr(c, "ATOMIC_GROUP", None):
        return example(av)
    if op is c.BRANCH:
        return example(av[1][0])
    return ""      # AT, ASSERT, ASSERT_NOT, GROUPREF…


def _member(items) -> str:
    c = sre_constants
    negated = any(op is c.NEGATE for op, _ in items)
    members = set()
    for op, av in items:
        if op is c.LITERAL:
            members.add(chr(av))
        elif op is c.RANGE:
            members.add(chr(av[0]))
        elif op is c.CATEGORY:
            members.add({"CATEGORY_DIGIT": "0", "CATEGORY_SPACE": " ", "CATEGORY_WORD": "a",
                         "CATEGORY_NOT_DIGIT": "a", "CATEGORY_NOT_SPACE": "a",
                         "CATEGORY_NOT_WORD": " "}.get(str(av), "a"))
    if negated:
        return next(ch for ch in "a0 .x-_" if ch not in members)
    return min(members) if members else "a"


def literals(pattern) -> str:
    """Every character the pattern names."""
    chars = set()
    for op, av in _walk(sre_parse.parse(pattern.pattern, pattern.flags)):
        if op is sre_constants.LITERAL:
            chars.add(chr(av))
        elif op is sre_constants.RANGE:
            chars.update((chr(av[0]), chr(av[1])))
    return "".join(sorted(chars))


def _walk(items):
    for op, av in items:
        yield op, av
        if isinstance(av, (list, tuple, sre_parse.SubPattern)):
            for sub in av if not isinstance(av, sre_parse.SubPattern) else [av]:
                if isinstance(sub, sre_parse.SubPattern):
                    yield from _walk(sub)
                elif isinstance(sub, (list, tuple)):
                    for inner in sub:
                        if isinstance(inner, sre_parse.SubPattern):
                            yield from _walk(inner)
                        elif isinstance(inner, tuple) and len(inner) == 2:
                            yield inner


def prefixes(pattern) -> list[str]:
    """Texts that lead the matcher into each quantifier and alternative of `pattern`."""
    found = set(_prefixes(list(sre_parse.parse(pattern.pattern, pattern.flags))))
    return sorted(found, key=lambda text: (len(text), text))[:MAX_PREFIXES]


def _prefixes(items, depth: int = 0):
    c = sre_constants
    yield ""
    for k, (op, av) in enumerate(items):
        base = example(items[:k])
        yield base
        if depth > 4:
            continue
        if op is c.SUBPATTERN:
            inner = [list(av[-1])]
        elif op is c.BRANCH:
            inner = [list(branch) for branch in av[1]]
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            inner = [list(av[2])]
        else:
            inner = []
        for sub in inner:
            for text in _prefixes(sub, depth + 1):
                yield base + text


def pumps(pattern) -> list[str]:
    own = literals(pattern)
    chars = sorted(set(ALPHABET) | set(own))
    pairs = ["".join(pair) for pair in itertools.product(sorted(set(own) | set("a ")), chars)
             if pair[0] != pair[1]]
    return chars + pairs[:MAX_PAIRS]


def timed(pattern, text: str) -> float:
    start = time.perf_counter()
    pattern.search(text)
    pattern.match(text)
    return time.perf_counter() - start


def slow_operations(pattern, text: str, budget: float) -> str:
    """Which of search and match is slow on `text` (a search restarts at every position;
    a pattern used only with match from a fixed start may be harmless)."""
    slow = []
    for name in ("search", "match"):
        start = time.perf_counter()
        getattr(pattern, name)(text)
        if time.perf_counter() - start > budget:
            slow.append(name)
    return "/".join(slow) or "search+match together"


def scan(pattern, size: int, budget: float):
    """(input, seconds at size, ratio at twice the size) of a super-linear input, or None."""
    for prefix in prefixes(pattern):
        for pump in pumps(pattern):
            for suffix in SUFFIXES:
                repeat = max(1, size // len(pump))
                seconds = timed(pattern, prefix + pump * repeat + suffix)
                if seconds <= budget:
                    continue
                text = prefix + pump * repeat + suffix
                shown = f"{prefix!r} + {pump!r} * n + {suffix!r} ({slow_operations(pattern, text, budget)})"
                if seconds > 1.0:           # far beyond linear already: no need to double
                    return shown, seconds, float("inf")
                doubled = timed(pattern, prefix + pump * (2 * repeat) + suffix)
                if doubled / seconds > 3:   # one super-linear input is enough to report
                    return shown, seconds, doubled / seconds
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    patterns = package_patterns()
    for pattern, name in audit_patterns().items():
        patterns.setdefault(pattern, name)
    print(f"{len(patterns)} patterns, inputs of {args.size} characters")
    slow = 0
    for pattern, name in sorted(patterns.items(), key=lambda item: item[1]):
        started = time.perf_counter()
        worst = scan(pattern, args.size, args.budget)
        if args.verbose:
            print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)
        if worst:
            slow += 1
            text, seconds, ratio = worst
            print(f"SUPER-LINEAR {name}: {pattern.pattern!r}\n    on {text}: {seconds:.2f} s, "
                  f"x{ratio:.1f} at twice the size", flush=True)
    print(f"{slow} super-linear pattern(s)")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
