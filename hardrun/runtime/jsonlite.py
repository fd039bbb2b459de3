"""JSON for the start-up paths of `hardrun-oci`, without importing `json`.

`import json` costs about 8 ms here (json.decoder compiles regular expressions, which
imports `re`, `enum` and `functools`): more than the rest of a `hardrun-oci state` or
`delete`, which engines call several times per container. The standard library's own C
accelerator (`_json`, what `json.loads` and `json.dumps` run on CPython) does the work
here, called the way `json` calls it, so the text read and written is the same; where the
accelerator is missing, `json` itself is used.
"""
from __future__ import annotations

_WHITESPACE = " \t\n\r"

try:
    import _json
except ImportError:        # another interpreter: the plain module
    _json = None


class _DecoderSettings:
    """What `_json.make_scanner` reads from a decoder: json.JSONDecoder()'s defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def loads(text: str | bytes):
    """json.loads(text). Text that is not JSON is handed to json.loads for its error
    (json.JSONDecodeError, with the line and column), so the message is json's own."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    if _json is None:
        import json
        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _json.make_scanner(_DecoderSettings)(text, start)
    except (StopIteration, ValueError):
        end = -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json
        return json.loads(text)     # raises, with json's message
    return value


def _unserialisable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value) -> str:
    """json.dumps(value) with its defaults (ASCII, ", " and ": ", no indent)."""
    if _json is None:
        import json
        return json.dumps(value)
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    encoder = _json.make_encoder({}, _unserialisable, _json.encode_basestring_ascii, None, ": ", ", ",
                                 False, False, True)
    return "".join(encoder(value, 0))
