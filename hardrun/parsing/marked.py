"""YAML with the position of every node, and JSON-Schema validation that reports at it.

`parse_marked` reads one small YAML document (a policy, a run config) into plain data
and a `Located` table of the line and column of every value and mapping key;
`validate_located` checks it against a JSON Schema (validator.py) and raises a
ParseError at the node of the first error. PyYAML is imported on first use.
"""
from __future__ import annotations

from functools import lru_cache

from ..errors import ParseError
from ..spec.record import dataclass  # not dataclasses: see record.py

MAX_NODES = 20_000            # a policy is small: alias bombs stop here


@dataclass
class Located:
    """Parsed YAML data plus the (line, column) of every value and mapping key in it."""
    data: object
    values: dict          # path tuple -> (line, column), 1-based
    keys: dict            # path tuple -> (line, column) of the key naming that path

    def where(self, path: tuple, at_key: bool = False) -> tuple[int, int]:
        table = self.keys if at_key else self.values
        while path not in table and path:
            path = path[:-1]
            table = self.values
        return table.get(path, (1, 1))


def parse_marked(text: str, path: str, empty_message: str) -> Located:
    """One YAML document with the position of every node; ParseError with line and column."""
    import yaml
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader_class)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ParseError(f"invalid YAML: {error.problem or error.context}", path=path,
                         line=line, column=column) from None
    except yaml.YAMLError as error:
        raise ParseError(f"invalid YAML: {error}", path=path, line=1, column=1) from None
    if node is None:
        raise ParseError(empty_message, path=path, line=1, column=1)
    located = Located(None, {}, {})
    counter = [0]
    located.data = _convert(node, (), located, path, counter)
    return located


def _convert(node, path: tuple, located: Located, file: str, counter: list):
    import yaml
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise ParseError(f"policy too large or too many aliases (more than {MAX_NODES} nodes)",
                         path=file, line=node.start_mark.line + 1, column=node.start_mark.column + 1)
    located.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _at(file, key_node, "merge keys (<<) are not allowed in a policy")
            key = _scalar(key_node, file) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or isinstance(key, (dict, list)):
                raise _at(file, key_node, "expected a scalar mapping key")
            if key in out:
                raise _at(file, key_node, f"duplicate key {key!r}")
            located.keys[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _convert(value_node, path + (key,), located, file, counter)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (index,), located, file, counter)
                for index, item in enumerate(node.value)]
    return _scalar(node, file)


def _scalar(node, file: str):
    import yaml
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value          # `expires: 2027-01-31` unquoted: validated as a date later
    try:
        value = _constructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as error:
        raise _at(file, node, f"invalid value: {getattr(error, 'problem', None) or error}") from None
    if isinstance(value, bytes):
        raise _at(file, node, "binary values are not allowed in a policy")
    if isinstance(value, float) and value != value:
        return "nan"
    return value


@lru_cache(maxsize=1)
def _constructor():
    import yaml
    return yaml.constructor.SafeConstructor()


def _at(file: str, node, message: str) -> ParseError:
    return ParseError(message, path=file, line=node.start_mark.line + 1,
                      column=node.start_mark.column + 1)


def located_error(path: str, document: Located, where: tuple, message: str, at_key: bool = False) -> ParseError:
    line, column = document.where(where, at_key)
    return ParseError(message, path=path, line=line, column=column)


def validate_located(schema_data: dict, document: Located, path: str) -> None:
    """Raise a ParseError at the node of the first schema error of `document`."""
    errors = located_errors(schema_data, document, path, first_only=True)
    if errors:
        raise errors[0]


def located_errors(schema_data: dict, document: Located, path: str,
                   first_only: bool = False) -> list[ParseError]:
    """The schema errors of `document` as ParseErrors at their nodes (outermost first)."""
    from .validator import validate
    errors = validate(schema_data, document.data)
    if first_only:
        errors = errors[:1]
    return [located_error(path, document, error.path, _prefixed(error), error.at_key)
            for error in errors]


def in_document_order(errors) -> list[ParseError]:
    """`errors` by line and column, each (line, column, message) once."""
    unique = {(error.line or 0, error.column or 0, error.message): error for error in errors}
    return [unique[key] for key in sorted(unique)]


def _prefixed(error) -> str:
    shown = _dotted(error.path[:-1] if error.at_key else error.path)
    return f"{shown}: {error.message}" if shown else error.message


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
