"""Text edits that leave every byte they do not touch as it was.

A fix is a list of `Edit`s (replace `text[start:end]` with `new`, offsets into the whole
file); `apply` makes them all at once. YAML fixes find their offsets with PyYAML's node
marks (`YamlText`): the document is never dumped again, so comments, key order, quoting,
indentation and line endings stay as written.
"""
from __future__ import annotations

import re
from ...spec.record import dataclass  # not dataclasses: see record.py

from ...errors import ParseError

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    new: str


def apply(text: str, edits) -> str:
    """`text` with every edit made (the same edit asked twice is made once); two
    different edits over the same bytes are a bug, and refused."""
    out, position = [], 0
    for edit in sorted(set(edits), key=lambda e: (e.start, e.end, e.new)):
        if edit.start < position:
            raise ValueError(f"overlapping edits at offset {edit.start}")
        out.append(text[position:edit.start])
        out.append(edit.new)
        position = edit.end
    out.append(text[position:])
    return "".join(out)


def newline_of(text: str) -> str:
    """The file's line ending: the first line's (CRLF files stay CRLF)."""
    match = re.search(r"\r\n|\r|\n", text)
    return match.group(0) if match else "\n"


class YamlText:
    """A YAML file's text, its line offsets and its composed nodes (with marks)."""

    def __init__(self, text: str, path: str):
        import yaml
        self.text = text
        self.newline = newline_of(text)
        self.line_starts = [m.start() for m in _LINE.finditer(text)] or [0]
        try:
            # The pure-Python loader: its marks count characters of `text` (libyaml's
            # count bytes).
            self.documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError as error:
            raise ParseError(f"invalid YAML: {error}", path=path) from None
        self.indent_step = _indent_step(self.documents)

    def line_start(self, line: int) -> int:
        """The offset where 0-based `line` starts (the end of the text past the last)."""
        return self.line_starts[line] if line < len(self.line_starts) else len(self.text)

    def line_end(self, line: int) -> int:
        """The offset just past 0-based `line`'s line break."""
        return self.line_start(line + 1)

    def ensure_keys(self, mapping, wanted: dict) -> list[Edit]:
        """Edits adding the keys of `wanted` that `mapping` (a block MappingNode) lacks,
        recursing into nested mappings it has; lists it has get the missing items.
        A key already set to something else is left alone (not a mechanical fix)."""
        edits, missing = [], {}
        for key, value in wanted.items():
            found = child(mapping, key)
            if found is None:
                missing[key] = value
            elif isinstance(value, dict) and is_block_mapping(found):
                edits += self.ensure_keys(found, value)
            elif isinstance(value, list) and _is_sequence(found):
                edits += self.append_items(found, [v for v in value if v not in scalars(found)])
        if missing:
            edits.append(self.insert_keys(mapping, missing))
        return edits

    def insert_keys(self, mapping, values: dict) -> Edit:
        """An edit adding `values` as block YAML at the end of `mapping`'s keys."""
        indent = " " * mapping.value[0][0].start_mark.column
        lines = render(values, indent, " " * self.indent_step)
        offset = self.line_end(last_line(mapping))
        prefix = "" if offset == 0 or self.text[offset - 1] in "\r\n" else self.newline
        return Edit(offset, offset, prefix + self.newline.join(lines) + self.newline)

    def append_items(self, sequence, items: list) -> list[Edit]:
        """Edits adding scalar `items` at the end of a block or flow sequence."""
        if not items:
            return []
        if sequence.flow_style:
            close = sequence.end_mark.index - 1      # the `]`
            separator = ", " if sequence.value else ""
            return [Edit(close, close, separator + ", ".join(plain(item) for item in items))]
        dash = " " * sequence.start_mark.column
        offset = self.line_end(last_line(sequence))
        prefix = "" if self.text[offset - 1] in "\r\n" else self.newline
        return [Edit(offset, offset, prefix + "".join(f"{dash}- {plain(item)}{self.newline}"
                                                      for item in items))]


def child(mapping, key: str):
    """The value node of `key` in a MappingNode, or None."""
    for key_node, value_node in mapping.value:
        if getattr(key_node, "value", None) == key:
            return value_node
    return None


def scalars(sequence) -> list[str]:
    return [item.value for item in sequence.value if _is_scalar(item)]


def last_line(node) -> int:
    """The 0-based line of the last character written for `node`."""
    import yaml
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        return last_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return last_line(node.value[-1])
    end = node.end_mark
    line = end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line
    return line


def render(values: dict, indent: str, step: str) -> list[str]:
    """Block YAML lines for `values` (mappings nested, lists in flow style)."""
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines += render(value, indent + step, step)
        elif isinstance(value, list):
            lines.append(f"{indent}{key}: [{', '.join(plain(item) for item in value)}]")
        else:
            lines.append(f"{indent}{key}: {plain(value)}")
    return lines


def plain(value) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def is_block_mapping(node) -> bool:
    import yaml
    return isinstance(node, yaml.MappingNode) and not node.flow_style and bool(node.value)


def _is_sequence(node) -> bool:
    import yaml
    return isinstance(node, yaml.SequenceNode)


def _is_scalar(node) -> bool:
    import yaml
    return isinstance(node, yaml.ScalarNode)


def _indent_step(documents) -> int:
    """The file's indentation step: how far the first nested block mapping is indented
    past its parent's keys (2 when there is none)."""
    import yaml
    stack = list(documents)
    while stack:
        node = stack.pop(0)
        if isinstance(node, yaml.MappingNode) and not node.flow_style:
            for key_node, value_node in node.value:
                if is_block_mapping(value_node) and \
                        value_node.start_mark.line > key_node.start_mark.line:
                    step = value_node.start_mark.column - key_node.start_mark.column
                    if step > 0:
                        return step
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return 2
