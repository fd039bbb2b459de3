"""Safe YAML loading that remembers where every key and item was written.

Every YAML front end (compose, Kubernetes, OCI config.json, policies) reads its
input through `load_all`/`load`:

- Only the YAML *composer* runs (CSafeLoader when libyaml is there): tags never
  construct objects; a scalar becomes str/int/float/bool/None, anything else its text.
- Mappings become `MarkedMap` (a dict) and sequences `MarkedList` (a list) that know
  the 1-based line and column where they start and where each key or item was written:
  `service.line_of("privileged")`, `caps.line_at(2)`.
- Mapping keys are always strings, taken as written (`on:` stays "on", `80:` is "80").
- Merge keys (`<<: *base`, `<<: [*a, *b]`) are resolved; duplicate keys are an error.
- Alias expansion is capped, so a "billion laughs" document fails fast.
- Plain scalars like `80:80` stay strings (YAML 1.1 would read sexagesimal 4880).
- Every failure is a ParseError with line and column.
"""
from __future__ import annotations

import yaml
from yaml.constructor import SafeConstructor

from ..errors import ParseError

LOADER = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
# Nodes built again through aliases or merge keys, per document stream. Real files
# expand at most a few thousand; a billion-laughs document needs hundreds of millions.
MAX_ALIAS_EXPANSION = 100_000
MAX_DEPTH = 500

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"
_SCALARS = SafeConstructor()


class MarkedMap(dict):
    """A mapping that remembers its own position and the line of each key."""

    __slots__ = ("line", "column", "key_lines")

    def __init__(self, line: int | None = None, column: int | None = None):
        super().__init__()
        self.line = line
        self.column = column
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str, default: int | None = None) -> int | None:
        """The line where `key` was written (for merged keys: in the anchor), else `default`."""
        return self.key_lines.get(key, default)


class MarkedList(list):
    """A sequence that remembers its own position and the line of each item."""

    __slots__ = ("line", "column", "item_lines")

    def __init__(self, line: int | None = None, column: int | None = None):
        super().__init__()
        self.line = line
        self.column = column
        self.item_lines: list[int] = []

    def line_at(self, index: int, default: int | None = None) -> int | None:
        try:
            return self.item_lines[index]
        except IndexError:
            return default


def line_of(value, default: int | None = None) -> int | None:
    """The start line of a MarkedMap/MarkedList, else `default`."""
    return getattr(value, "line", default)


def from_yaml_error(error: yaml.YAMLError, path: str | None = None,
                    text: str | None = None) -> ParseError:
    """Our one-line ParseError for any PyYAML error, located by its mark."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or getattr(error, "context", None)
    if isinstance(error, yaml.reader.ReaderError):
        # Raised for control characters; it knows a character offset, not a mark.
        line = text.count("\n", 0, error.position) + 1 if text is not None else None
        return ParseError(f"invalid YAML: unacceptable character #x{error.character:04x}",
                          path=path, line=line)
    if mark is None:
        return ParseError(f"invalid YAML: {problem or error}", path=path)
    message = f"invalid YAML: {problem}" if problem else "invalid YAML"
    if text is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        message = "invalid YAML: a tab character where YAML allows only spaces"
    if getattr(error, "context", None) and error.context != problem:
        message += f" ({error.context})"
    return ParseError(message, path=path, line=mark.line + 1, column=mark.column + 1)


def load_all(text: str, path: str | None = None) -> list:
    """Every document of `text` as marked plain values (an empty document is None)."""
    builder = _Builder(path)
    documents = []
    try:
        for node in yaml.compose_all(text, Loader=LOADER):
            documents.append(None if node is None else builder.build(node, 0))
    except yaml.YAMLError as error:
        raise from_yaml_error(error, path, text) from None
    except RecursionError:
        raise ParseError("YAML nested too deeply", path=path) from None
    return documents


def load(text: str, path: str | None = None):
    """The single document of `text` (None when empty); more than one is a ParseError."""
    documents = load_all(text, path)
    if len(documents) > 1:
        raise ParseError("expected one YAML document, found several", path=path)
    return documents[0] if documents else None


def _line(node) -> int:
    return node.start_mark.line + 1


class _Builder:
    """Turns composed nodes into MarkedMap/MarkedList/scalars, counting alias expansion."""

    def __init__(self, path: str | None):
        self.path = path
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.expanded = 0

    def error(self, message: str, node) -> ParseError:
        return ParseError(message, path=self.path, line=_line(node),
                          column=node.start_mark.column + 1)

    def build(self, node, depth: int):
        if id(node) in self.seen:
            # The same node again: an alias (or a merge source) being expanded.
            self.expanded += 1
            if self.expanded > MAX_ALIAS_EXPANSION:
                raise self.error(f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION} "
                                 "nodes (a \"billion laughs\" document?)", node)
        else:
            self.seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        if depth > MAX_DEPTH:
            raise self.error(f"YAML nested deeper than {MAX_DEPTH} levels", node)
        if id(node) in self.active:
            raise self.error("recursive YAML alias (a node contains itself)", node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self.sequence(node, depth)
            return self.mapping(node, depth)
        finally:
            self.active.discard(id(node))

    def sequence(self, node, depth: int) -> MarkedList:
        out = MarkedList(_line(node), node.start_mark.column + 1)
        for item in node.value:
            out.append(self.build(item, depth + 1))
            out.item_lines.append(_line(item))
        return out

    def mapping(self, node, depth: int) -> MarkedMap:
        out = MarkedMap(_line(node), node.start_mark.column + 1)
        merged: list = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.append((key_node, value_node))
                continue
            key = self.key(key_node)
            if key in out.key_lines:
                raise self.error(f"duplicate key {key!r} (first on line {out.key_lines[key]})",
                                 key_node)
            out[key] = self.build(value_node, depth + 1)
            out.key_lines[key] = _line(key_node)
        for key_node, value_node in merged:
            self.merge_into(out, key_node, value_node, depth)
        return out

    def merge_into(self, out: MarkedMap, key_node, value_node, depth: int) -> None:
        """`<<:` sources fill keys not written explicitly; earlier sources win."""
        if isinstance(value_node, yaml.MappingNode):
            sources = [value_node]
        elif isinstance(value_node, yaml.SequenceNode):
            sources = value_node.value
        else:
            raise self.error("a merge key `<<` needs a mapping or a list of mappings", key_node)
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise self.error("a merge key `<<` needs a mapping or a list of mappings", key_node)
            built = self.build(source, depth + 1)
            for key, value in built.items():
                if key not in out.key_lines:
                    out[key] = value
                    out.key_lines[key] = built.key_lines[key]

    def key(self, node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error("a mapping key must be a plain value, not a list or mapping", node)
        return node.value


def _scalar(node):
    tag = node.tag
    value = node.value
    if not tag.startswith(_TAG) or tag == _TAG + "str":
        return value
    kind = tag[len(_TAG):]
    try:
        if kind == "null":
            return None
        if kind == "bool":
            return _SCALARS.bool_values[value.lower()]
        if kind in ("int", "float"):
            if ":" in value:  # YAML 1.1 sexagesimal: `80:80` is a port mapping, not 4880
                return value
            if kind == "int":
                return _SCALARS.construct_yaml_int(node)
            return _SCALARS.construct_yaml_float(node)
    except (ValueError, KeyError, yaml.YAMLError):
        pass
    return value


def to_plain(value):
    """A copy with plain dict/list (for comparisons and JSON dumps)."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value
