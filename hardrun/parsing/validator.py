"""A small JSON Schema validator for the keywords hardrun's own schemas use.

`hardrun audit --policy` validates on every run: the jsonschema package costs about
90 ms to import (and pulls in a compiled extension), more than the whole audit of a
small repository, so the schema file is interpreted here instead. The test suite
checks the schema with jsonschema's meta-schema and that both validators agree.

Supported: type, const, enum, properties, additionalProperties, required,
minProperties, propertyNames, items, uniqueItems, minItems, pattern, minLength,
minimum, maximum, oneOf, anyOf, $ref (local `#/...`), format (date).
"""
from __future__ import annotations

import re
from functools import lru_cache

from ..spec.record import dataclass  # not dataclasses: see record.py

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "true or false",
               "null": "null"}


@dataclass(frozen=True)
class SchemaError:
    path: tuple                 # keys and indexes from the document root
    message: str                # says what was expected
    at_key: bool = False        # locate at the mapping key `path[-1]`, not at its value


def validate(schema: dict, instance) -> list[SchemaError]:
    """Every error of `instance` against `schema`, outermost first."""
    return list(_Validator(schema).errors(schema, instance, ()))


@lru_cache(maxsize=256)
def _regex(pattern: str):
    return re.compile(pattern)


def _is_type(value, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "null":
        return value is None
    raise ValueError(f"unsupported schema type {name}")


def _show(value) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return str(value)


def expected_type(schema: dict) -> str | None:
    types = schema.get("type")
    if types is None:
        return None
    types = [types] if isinstance(types, str) else types
    return " or ".join(_TYPE_NAMES[t] for t in types)


class _Validator:
    def __init__(self, root: dict):
        self.root = root

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            reference = schema["$ref"]
            if not reference.startswith("#/"):
                raise ValueError(f"only local $ref is supported: {reference}")
            target = self.root
            for part in reference[2:].split("/"):
                target = target[part]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def errors(self, schema: dict, value, path: tuple):
        schema = self.resolve(schema)
        if "type" in schema and not _is_type_any(value, schema["type"]):
            yield SchemaError(path, f"expected {expected_type(schema)}, found {_describe(value)}")
            return
        if "const" in schema and not _same(value, schema["const"]):
            yield SchemaError(path, f"expected {_show(schema['const'])}, found {_show(value)}")
            return
        if "enum" in schema and not any(_same(value, choice) for choice in schema["enum"]):
            choices = ", ".join(_show(choice) for choice in schema["enum"])
            yield SchemaError(path, f"expected one of {choices}, found {_show(value)}")
            return
        if isinstance(value, dict):
            yield from self.object_errors(schema, value, path)
        elif isinstance(value, list):
            yield from self.array_errors(schema, value, path)
        elif isinstance(value, str):
            yield from self.string_errors(schema, value, path)
        elif _is_type(value, "number"):
            yield from self.number_errors(schema, value, path)
        for keyword in ("oneOf", "anyOf"):
            if keyword in schema:
                yield from self.choice_errors(keyword, schema[keyword], value, path)

    def object_errors(self, schema: dict, value: dict, path: tuple):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                yield SchemaError(path, f"missing required key {key!r}")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            yield SchemaError(path, "expected a non-empty mapping")
        names = schema.get("propertyNames")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if not isinstance(key, str):
                yield SchemaError(path + (key,), f"expected a string key, found {_show(key)}", True)
                continue
            if names is not None:
                problems = list(self.errors(names, key, path + (key,)))
                if problems:
                    yield SchemaError(path + (key,), f"invalid key {key!r}: {problems[0].message}", True)
                    continue
            if key in properties:
                yield from self.errors(properties[key], item, path + (key,))
            elif extra is False:
                known = ", ".join(sorted(properties))
                yield SchemaError(path + (key,), f"unknown key {key!r} (expected one of: {known})", True)
            elif isinstance(extra, dict):
                yield from self.errors(extra, item, path + (key,))

    def array_errors(self, schema: dict, value: list, path: tuple):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield SchemaError(path, f"expected at least {schema['minItems']} item(s)")
        if schema.get("uniqueItems"):
            seen: list[object] = []
            for index, item in enumerate(value):
                if any(_same(item, other) for other in seen):
                    yield SchemaError(path + (index,), f"duplicate item {_show(item)}")
                seen.append(item)
        if "items" in schema:
            for index, item in enumerate(value):
                yield from self.errors(schema["items"], item, path + (index,))

    def string_errors(self, schema: dict, value: str, path: tuple):
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield SchemaError(path, "expected a non-empty string")
        elif "pattern" in schema and not _regex(schema["pattern"]).search(value):
            yield SchemaError(path, f"{_show(value)} is not valid: expected {_pattern_hint(schema)}")
        elif schema.get("format") == "date" and not _is_date(value):
            yield SchemaError(path, f"{_show(value)} is not a calendar date (expected YYYY-MM-DD)")

    def number_errors(self, schema: dict, value, path: tuple):
        if "minimum" in schema and value < schema["minimum"]:
            yield SchemaError(path, f"expected a number of at least {schema['minimum']}, found {value}")
        if "maximum" in schema and value > schema["maximum"]:
            yield SchemaError(path, f"expected a number of at most {schema['maximum']}, found {value}")

    def choice_errors(self, keyword: str, branches: list, value, path: tuple):
        results = [list(self.errors(branch, value, path)) for branch in branches]
        passing = sum(1 for result in results if not result)
        if keyword == "anyOf" and passing:
            return
        if keyword == "oneOf" and passing == 1:
            return
        if passing > 1:
            yield SchemaError(path, f"expected exactly one of {_alternatives(branches, self)}, found several")
            return
        # Report the branch the value was evidently meant for: the one whose type matches.
        typed = [result for branch, result in zip(branches, results)
                 if "type" in self.resolve(branch) and
                 _is_type_any(value, self.resolve(branch)["type"])]
        if len(typed) == 1:
            yield from typed[0]
        else:
            yield SchemaError(path, f"expected {_alternatives(branches, self)}")


def _alternatives(branches, validator) -> str:
    names = []
    for branch in branches:
        branch = validator.resolve(branch)
        if "required" in branch and "type" not in branch:
            names.append(" and ".join(repr(k) for k in branch["required"]))
        else:
            names.append(expected_type(branch) or "a valid value")
    return " or ".join(names)


def _is_type_any(value, types) -> bool:
    types = [types] if isinstance(types, str) else types
    return any(_is_type(value, t) for t in types)


def _pattern_hint(schema: dict) -> str:
    hints = {
        "^HR[0-9]{4}$": "a rule id such as HR2001",
        "^(HR|SC)[0-9]{4}$": "a rule id such as HR2001 (or a ShellCheck code such as SC2086)",
        "^[a-z][a-z0-9-]*$": "a practice name such as run-as-root",
        "^/": "an absolute path",
        "^[0-9]+[bkmgBKMG]?$": "a size such as 512m",
    }
    return hints.get(schema["pattern"], f"a string matching {schema['pattern']}")


def _is_date(text: str) -> bool:
    import datetime   # here, not at the top: only policies with dates need it (start-up time)
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _same(left, right) -> bool:
    """JSON equality: true is not 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return left == right


def _describe(value) -> str:
    for name in ("boolean", "integer", "number", "string", "object", "array", "null"):
        if _is_type(value, name):
            return _TYPE_NAMES[name] if name in ("object", "array", "null") else \
                f"{_TYPE_NAMES[name]} {_show(value)}"
    return type(value).__name__
