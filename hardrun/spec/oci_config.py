"""Typed access to a decoded OCI runtime `config.json`: one wording for what is wrong
with a field, named by its JSON path (`linux.namespaces[2].type: expected a string`).

The first step of one OCI reader for the runtime and the audit (docs/architecture.md,
"One OCI reader"): hardrun-oci's reader (hardrun/runtime/bundle.py) decodes through
`OciFields`, and turns an `OciFieldError` into its own error class where it fails.
Plain JSON values only (what `json`/`hardrun.jsonlite` decode): no `json`, no `re`, so
that hardrun-oci's `create` imports nothing more for it.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any, Collection, NoReturn

# An unsupported key set to one of these asks for nothing (`"intelRdt": {}`, `"domainname": ""`).
EMPTY_VALUES: tuple = (None, "", [], {}, 0, False)
EXPECTED = {dict: "an object", list: "an array", str: "a string", bool: "true or false"}


class OciFieldError(ValueError):
    """A field of config.json that is malformed, unknown or not supported (`where`: its JSON path)."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def json_path(where: str, document: Any) -> tuple:
    """`where` (`linux.namespaces[2].type`) as the parts of a JSON path into `document`
    (`("linux", "namespaces", 2, "type")`). Keys may hold dots (`annotations.io.k8s.x`):
    the longest key of the object at hand that fits is taken. Stops at what the document
    does not hold (a line of the nearest enclosing value is then the best there is)."""
    parts: list = []
    node, rest = document, where
    while rest:
        if rest.startswith("[") and isinstance(node, list):
            index, _, rest = rest[1:].partition("]")
            if not index.isdigit() or int(index) >= len(node):
                break
            parts.append(int(index))
            node = node[int(index)]
        elif isinstance(node, dict):
            keys = [key for key in node if isinstance(key, str) and
                    (rest == key or rest.startswith((key + ".", key + "[")))]
            if not keys:
                break
            key = max(keys, key=len)
            parts.append(key)
            node, rest = node[key], rest[len(key):]
        else:
            break
        rest = rest[1:] if rest.startswith(".") else rest
    return tuple(parts)


def child_path(where: str, key: str) -> str:
    """The JSON path of `key` inside the object at `where` ("" is the document)."""
    return f"{where}.{key}" if where else key


class OciFields:
    """The typed access of a config.json reader; `fail` is where a reader's own error is raised."""

    def fail(self, where: str, message: str) -> NoReturn:
        raise OciFieldError(where, message)

    def take(self, parent: Any, where: str, allowed: Collection[str], unsupported: Collection[str] = ()) -> dict:
        """`parent` checked to be an object with only known keys; a key hardrun knows but
        cannot apply is an error when set to anything but an empty value."""
        if not isinstance(parent, dict):
            self.fail(where, "expected an object")
        for key, value in parent.items():
            if key in allowed:
                continue
            if key in unsupported and value in EMPTY_VALUES:
                continue
            self.fail(child_path(where, key), "not supported by hardrun" if key in unsupported else "unknown field")
        return parent

    def typed(self, value: Any, kind: type, where: str) -> Any:
        """`value` checked to be of `kind` (int excludes true and false), or None when absent."""
        if value is None:
            return None
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(where, "expected an integer")
        if kind is not int and not isinstance(value, kind):
            self.fail(where, f"expected {EXPECTED.get(kind, kind.__name__)}")
        return value

    def strings(self, value: Any, where: str) -> list[str]:
        """An array of strings (none holding a NUL byte), or [] when absent."""
        items = self.typed(value, list, where) or []
        for item in items:
            if not isinstance(item, str) or "\0" in item:
                self.fail(where, "expected strings without NUL bytes")
        return items

    def paths(self, value: Any, where: str) -> list[str]:
        """An array of absolute paths, or [] when absent."""
        items = self.strings(value, where)
        for item in items:
            if not item.startswith("/"):
                self.fail(where, f"{item!r} is not an absolute path")
        return items
