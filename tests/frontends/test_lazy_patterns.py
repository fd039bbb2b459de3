"""hardrun/parsing/patterns.py: a lazy pattern behaves as the compiled one and compiles once."""
import re

import pytest

from hardrun.parsing.patterns import lazy


def test_a_lazy_pattern_answers_as_the_compiled_pattern():
    pattern, compiled = lazy(r"(?P<word>[a-z]+)=(\d+)", re.I), re.compile(r"(?P<word>[a-z]+)=(\d+)", re.I)
    text = "A=1 bb=22 ccc"
    assert pattern.search(text).groups() == compiled.search(text).groups()
    assert pattern.findall(text) == compiled.findall(text)
    assert pattern.sub("x", text) == compiled.sub("x", text)
    assert pattern.fullmatch("a=1") and not pattern.match(" a=1")
    assert (pattern.pattern, pattern.flags, pattern.groups, dict(pattern.groupindex)) == \
        (compiled.pattern, compiled.flags, compiled.groups, dict(compiled.groupindex))


def test_nothing_is_compiled_until_first_use_and_then_only_once():
    pattern = lazy(r"[")          # an invalid pattern: compiling it would raise
    assert "_compiled" not in vars(pattern)
    with pytest.raises(re.error):          # compiled on first use
        pattern.match("[")
    valid = lazy(r"b+")
    valid.search("abb")
    first = vars(valid)["_compiled"]
    valid.split("abba")
    assert vars(valid)["_compiled"] is first and valid.search is not None
