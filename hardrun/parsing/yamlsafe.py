"""Safe YAML loading that remembers where every key and item was written.

Every YAML front end (compose, Kubernetes, OCI config.json, policies) reads its
input through `load_all`/`load`:

- Only the YAML *parser* runs (libyaml's CSafeLoader when present): values are built
  from its events, tags never construct objects; a scalar becomes str/int/float/
  bool/None by the YAML 1.1 safe rules, a scalar with any other tag its text.
- Mappings become `MarkedMap` (a dict) and sequences `MarkedList` (a list) that know
  the 1-based line and column where they start and where each key or item was written:
  `service.line_of("privileged")`, `caps.line_at(2)`.
- Mapping keys are always strings, taken as written (`on:` stays "on", `80:` is "80").
- Merge keys (`<<: *base`, `<<: [*a, *b]`) are resolved; duplicate keys are an error.
- An alias shares its anchor's value; alias expansion and the number of values are
  capped, so a "billion laughs" document or a huge flat list fails fast.
- Plain scalars like `80:80` stay strings (YAML 1.1 would read sexagesimal 4880).
- Every failure is a ParseError with line and column.

Treat the results as read-only: an alias and its anchor are the same object.
"""
from __future__ import annotations

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
                         SequenceEndEvent, SequenceStartEvent)

from ..errors import ParseError

LOADER = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
# Nodes built again through aliases or merge keys, per document stream. Real files
# expand at most a few thousand; a billion-laughs document needs hundreds of millions.
MAX_ALIAS_EXPANSION = 100_000
# Values written in one file (an 8 MiB file of `[1,1,1…]` has four million).
MAX_NODES = 1_000_000
MAX_DEPTH = 500

_TAG = "tag:yaml.org,2002:"
_SCALARS = SafeConstructor()


class MarkedMap(dict):
    """A mapping that remembers its own position and the line of each key."""

    __slots__ = ("line", "column", "key_lines")

    def __init__(self, line: int | None = None, column: int | None = None):
        super().__init__()
        self.line = line
        self.column = column
        self.key_lines: dict[str, int | None] = {}

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
        self.item_lines: list[int | None] = []

    def line_at(self, index: int, default: int | None = None) -> int | None:
        try:
            return self.item_lines[index]
        except IndexError:
            return default


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
    context = getattr(error, "context", None)
    if context and context != problem:
        message += f" ({context})"
    return ParseError(message, path=path, line=mark.line + 1, column=mark.column + 1)


def load_all(text: str, path: str | None = None) -> list:
    """Every document of `text` as marked plain values (an empty document is None)."""
    loader = LOADER(text)
    try:
        return _EventBuilder(loader, path).documents()
    except yaml.YAMLError as error:
        raise from_yaml_error(error, path, text) from None
    finally:
        loader.dispose()


def load(text: str, path: str | None = None):
    """The single document of `text` (None when empty); more than one is a ParseError."""
    documents = load_all(text, path)
    if len(documents) > 1:
        raise ParseError("expected one YAML document, found several", path=path)
    return documents[0] if documents else None


class _Frame:
    """A mapping or sequence being built."""

    __slots__ = ("value", "anchor", "is_map", "wants_key", "size", "key", "key_line",
                 "key_mark", "merges")

    def __init__(self, value, anchor, is_map: bool):
        self.value = value
        self.anchor = anchor
        self.is_map = is_map
        self.wants_key = is_map  # a mapping alternates key, value, key…
        self.size = 1           # nodes in this subtree, aliases counted at their full size
        self.key: object = None  # mapping: the key waiting for its value (a str or _MERGE_KEY)
        self.key_line = 0
        self.key_mark: yaml.Mark | None = None
        self.merges: list = []  # mapping: `<<` sources, applied at the end


_MERGE_KEY = object()


class _EventBuilder:
    """Builds marked values straight from parser events.

    No node graph is kept (composing keeps every node and mark alive: an 8 MiB list
    took gigabytes), an alias shares the value its anchor built, and two budgets
    stop hostile input early: MAX_NODES written nodes and MAX_ALIAS_EXPANSION
    nodes reached again through aliases (counted at the anchor's full size, so a
    "billion laughs" document fails at its first levels).
    """

    def __init__(self, loader, path: str | None):
        self.loader = loader
        self.path = path
        self.nodes = 0
        self.expanded = 0
        self.first_chars = type(loader).yaml_implicit_resolvers

    def error(self, message: str, mark) -> ParseError:
        return ParseError(message, path=self.path, line=mark.line + 1, column=mark.column + 1)

    def documents(self) -> list:
        loader = self.loader
        documents = []
        loader.get_event()                      # StreamStart
        while not loader.check_event(yaml.StreamEndEvent):
            loader.get_event()                  # DocumentStart
            documents.append(self.document())
            loader.get_event()                  # DocumentEnd
        loader.get_event()                      # StreamEnd
        return documents

    def document(self):
        # One loop over the events, with locals: this is the hot path of every YAML audit.
        get_event = self.loader.get_event
        scalar = self.scalar
        place = self.place
        anchors: dict[str, tuple[object, int]] = {}
        stack: list[_Frame] = []
        top: _Frame | None = None       # stack[-1]
        while True:
            event = get_event()
            kind = type(event)
            if kind is ScalarEvent:
                self.nodes += 1
                if self.nodes > MAX_NODES:
                    raise self.too_many(event)
                if top is not None and top.wants_key:
                    self.take_key(top, event)
                    if event.anchor is not None:
                        anchors[event.anchor] = (event.value, 1)
                    continue
                value = scalar(event)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                size, line = 1, event.start_mark.line + 1
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self.nodes += 1
                if self.nodes > MAX_NODES:
                    raise self.too_many(event)
                if top is not None and top.wants_key:
                    raise self.error("a mapping key must be a plain value, not a list or mapping",
                                     event.start_mark)
                if len(stack) >= MAX_DEPTH:
                    raise self.error(f"YAML nested deeper than {MAX_DEPTH} levels",
                                     event.start_mark)
                mark = event.start_mark
                is_map = kind is MappingStartEvent
                container = (MarkedMap if is_map else MarkedList)(mark.line + 1, mark.column + 1)
                top = _Frame(container, event.anchor, is_map)
                stack.append(top)
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                top = stack[-1] if stack else None
                if frame.merges:
                    self.apply_merges(frame)
                value, size = frame.value, frame.size
                line = value.line
                if frame.anchor is not None:
                    anchors[frame.anchor] = (value, size)
            elif kind is AliasEvent:
                value, size = self.alias(event, anchors, stack)
                line = event.start_mark.line + 1
                if top is not None and top.wants_key:
                    if not isinstance(value, str):
                        raise self.error("a mapping key must be a plain value, not a list or "
                                         "mapping", event.start_mark)
                    top.key, top.key_line, top.key_mark = value, line, event.start_mark
                    top.wants_key = False
                    continue
            else:
                raise self.error("unexpected YAML structure", event.start_mark)
            if top is None:
                return value
            place(top, value, size, line)

    def too_many(self, event) -> ParseError:
        return self.error(f"YAML document has more than {MAX_NODES} values", event.start_mark)

    def alias(self, event, anchors: dict, stack: list) -> tuple[object, int]:
        """The value an alias names (shared, not copied), counted at its full size."""
        if event.anchor not in anchors:
            if any(frame.anchor == event.anchor for frame in stack):
                raise self.error("recursive YAML alias (a node contains itself)", event.start_mark)
            raise self.error(f"undefined YAML alias *{event.anchor}", event.start_mark)
        value, size = anchors[event.anchor]
        self.expanded += size
        if self.expanded > MAX_ALIAS_EXPANSION:
            raise self.error(f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION} "
                             "nodes (a \"billion laughs\" document?)", event.start_mark)
        return value, size

    def take_key(self, frame: _Frame, event) -> None:
        # A plain `<<` resolves to the merge tag; a quoted "<<" is an ordinary key.
        if event.tag is None and event.implicit[0] and event.value == "<<":
            frame.key = _MERGE_KEY
        else:
            frame.key = event.value
        frame.wants_key = False
        frame.key_line = event.start_mark.line + 1
        frame.key_mark = event.start_mark
        frame.size += 1

    def place(self, frame: _Frame, value, size: int, line: int) -> None:
        frame.size += size
        container = frame.value
        if not frame.is_map:
            container.append(value)
            container.item_lines.append(line)
            return
        key = frame.key
        frame.key = None
        frame.wants_key = True
        if key is _MERGE_KEY:
            frame.merges.append((value, frame.key_mark))
            return
        if key in container.key_lines:
            raise self.error(f"duplicate key {key!r} (first on line {container.key_lines[key]})",
                             frame.key_mark)
        container[key] = value
        container.key_lines[key] = frame.key_line

    def apply_merges(self, frame: _Frame) -> None:
        """`<<` sources fill keys not written explicitly; earlier sources win."""
        out = frame.value
        for value, mark in frame.merges:
            sources = value if isinstance(value, MarkedList) else [value]
            for source in sources:
                if not isinstance(source, MarkedMap):
                    raise self.error("a merge key `<<` needs a mapping or a list of mappings",
                                     mark)
                for key, item in source.items():
                    if key not in out.key_lines:
                        out[key] = item
                        out.key_lines[key] = source.key_lines[key]

    def scalar(self, event):
        tag = event.tag
        value = event.value
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return value                    # quoted: always a string
            if (value[:1] if value else "") not in self.first_chars:
                return value                    # no implicit type starts with this character
            tag = self.loader.resolve(yaml.ScalarNode, value, event.implicit)
        return _scalar(tag, value)


def _scalar(tag: str, value: str):
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
            node = yaml.ScalarNode(tag, value)
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
