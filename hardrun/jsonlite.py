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
    _ACCELERATED = True
except ImportError:        # another interpreter: the plain module
    _ACCELERATED = False


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


def loads(text: str | bytes, object_pairs_hook=None):
    """json.loads(text, object_pairs_hook=...). Text that is not JSON is handed to
    json.loads for its error (json.JSONDecodeError, with the line and column), so the
    message is json's own; so is any ValueError the hook raises."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    if not _ACCELERATED:
        import json
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    settings = _DecoderSettings()
    settings.object_pairs_hook = object_pairs_hook
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        # typeshed types the argument as a make_scanner; the C code reads these same
        # attributes from any object (json.JSONDecoder passes itself)
        value, end = _json.make_scanner(settings)(text, start)  # type: ignore[arg-type]
    except (StopIteration, ValueError, SystemError):    # SystemError: the scanner on a truncated object
        end = -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json
        return json.loads(text, object_pairs_hook=object_pairs_hook)     # raises, with json's message
    return value


if _ACCELERATED:
    # json.encoder.encode_basestring_ascii: a string as a JSON literal, ASCII only
    encode_basestring_ascii = _json.encode_basestring_ascii
else:
    from json.encoder import encode_basestring_ascii   # noqa: F401


def _unserialisable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value, compact: bool = False) -> str:
    """json.dumps(value) with its defaults (ASCII, ", " and ": ", no indent); `compact`:
    json.dumps(value, separators=(",", ":"), ensure_ascii=False), the form Go's
    encoding/json (Docker, containerd) writes when the text has no <, > or &."""
    if not _ACCELERATED:
        import json
        if compact:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return json.dumps(value)
    strings = _json.encode_basestring if compact else _json.encode_basestring_ascii
    if isinstance(value, str):
        return strings(value)
    encoder = _json.make_encoder({}, _unserialisable, strings, None, ":" if compact else ": ",
                                 "," if compact else ", ", False, False, True)
    return "".join(encoder(value, 0))
