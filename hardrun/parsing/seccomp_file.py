"""The one reader of a seccomp profile file (Docker's JSON format, or the same data as
YAML): the runtime's loader validates what it returns, `hardrun run --explain` and
`--seccomp-learn` rewrite it, HR2030 judges the profile a run config names, and `hardrun
export` copies it.

JSON is decoded with duplicate keys refused; YAML through parsing/yamlsafe (aliases and
size capped, duplicate keys refused). Either way the reader also returns `locate`, which
gives the line of a JSON path (`("syscalls", 3, "action")`) for an error found later.
"""
from __future__ import annotations

from ..errors import HardrunError, ParseError, UsageError
from ..spec.json_lines import JsonLocator
from ..userfiles import MAX_FILE_BYTES, read_text

TYPE_CHECKING = False  # typing costs start-up time; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any, Callable

    Located = tuple[Any, Callable[[tuple], "int | None"]]


def read_profile(path: str, limit: int = MAX_FILE_BYTES) -> Located:
    """(data, locate) of the profile file at `path`: `.yaml`/`.yml` are YAML, `.json` JSON,
    anything else is told by its first character. A file that cannot be read is a
    UsageError naming it."""
    try:
        text = read_text(path, limit)
    except HardrunError as error:
        raise UsageError(f"cannot read seccomp profile: {error.located()}", path=path) from None
    lower = path.lower()
    fmt = "yaml" if lower.endswith((".yaml", ".yml")) else "json" if lower.endswith(".json") else None
    return parse_profile_text(text, path=path, fmt=fmt)


def parse_profile_text(text: str, *, path: str = "<profile>", fmt: str | None = None) -> Located:
    """(data, locate) of profile text (`fmt` "json"/"yaml"; None: JSON when it starts with `{`)."""
    fmt = fmt or ("json" if text.lstrip().startswith("{") else "yaml")
    return _parse_json(text, path) if fmt == "json" else _parse_yaml(text, path)


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _parse_json(text: str, path: str):
    import json  # imported here: a cached default filter is found without it

    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as error:
        raise ParseError(f"invalid JSON: {error.msg}", path=path, line=error.lineno,
                         column=error.colno) from None
    except _DuplicateKey as error:
        line = JsonLocator(text).duplicate_line()
        raise UsageError(f"duplicate key {error.args[0]!r}", path=path, line=line) from None
    except RecursionError:
        raise ParseError("JSON nested too deeply", path=path) from None
    found: list[JsonLocator] = []    # scanned on the first call only, and once

    def locate(json_path: tuple) -> int | None:
        if not found:
            found.append(JsonLocator(text))
        return found[0].line_of(json_path)
    return data, locate


def _parse_yaml(text: str, path: str) -> Located:
    from .yamlsafe import MarkedList, MarkedMap, load   # only profiles written in YAML import yaml

    data = load(text, path)
    if data is None:
        raise UsageError("the profile is empty", path=path)

    def locate(json_path: tuple) -> int | None:
        node, line = data, getattr(data, "line", None)
        for part in json_path:
            if isinstance(node, MarkedMap) and isinstance(part, str) and part in node:
                line, node = node.line_of(part, line), node[part]
            elif isinstance(node, MarkedList) and isinstance(part, int) and part < len(node):
                line, node = node.line_at(part, line), node[part]
            else:
                break
        return line
    return data, locate
