"""The line of a JSON path (`("linux", "namespaces", 2, "type")`) in JSON text, for the
errors of the readers of JSON files (seccomp profiles, hardrun-oci's config.json): they
decode with `json` (no positions) and find the line only when something is wrong.
"""
from __future__ import annotations


class JsonLocator:
    """Finds the line of a JSON path in (already validated) JSON text; used only on errors."""

    def __init__(self, text: str):
        import json
        import re

        self.json = json
        self.literal_token = re.compile(r"-?[0-9.eE+\-]+|true|false|null")
        self.string_token = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
        self.text = text
        self.lines: dict[tuple, int] = {}
        self.duplicate: int | None = None
        self.pos = 0
        self.counted, self.line_number = 0, 1
        try:
            self._value(())
        except (IndexError, ValueError, AttributeError, RecursionError):
            pass  # a best effort: callers fall back to no line

    def line_of(self, json_path: tuple) -> int | None:
        for cut in range(len(json_path), -1, -1):
            if tuple(json_path[:cut]) in self.lines:
                return self.lines[tuple(json_path[:cut])]
        return None

    def duplicate_line(self) -> int | None:
        return self.duplicate

    def _line(self) -> int:
        # counted on from the last position asked (positions only grow): linear in the text
        self.line_number += self.text.count("\n", self.counted, self.pos)
        self.counted = self.pos
        return self.line_number

    def _token(self, pattern):
        """The token at the position (ValueError, ending the best effort, when there is none)."""
        match = pattern.match(self.text, self.pos)
        if match is None:
            raise ValueError(f"no token at {self.pos}")
        return match

    def _skip(self) -> None:
        while self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def _value(self, path: tuple) -> None:
        self._skip()
        self.lines.setdefault(path, self._line())
        char = self.text[self.pos]
        if char == "{":
            self._object(path)
        elif char == "[":
            self._array(path)
        elif char == '"':
            self.pos = self._token(self.string_token).end()
        else:
            self.pos = self._token(self.literal_token).end()

    def _object(self, path: tuple) -> None:
        self.pos += 1
        seen = set()
        self._skip()
        while self.text[self.pos] != "}":
            line = self._line()
            match = self._token(self.string_token)
            key = self.json.loads(match.group(0))
            if key in seen and self.duplicate is None:
                self.duplicate = line
            seen.add(key)
            self.lines[path + (key,)] = line
            self.pos = match.end()
            self._skip()
            self.pos += 1  # ':'
            self._value_keep_line(path + (key,))
            self._skip()
            if self.text[self.pos] == ",":
                self.pos += 1
                self._skip()
        self.pos += 1

    def _value_keep_line(self, path: tuple) -> None:
        line = self.lines[path]
        self._value(path)
        self.lines[path] = line

    def _array(self, path: tuple) -> None:
        self.pos += 1
        index = 0
        self._skip()
        while self.text[self.pos] != "]":
            self._value(path + (index,))
            index += 1
            self._skip()
            if self.text[self.pos] == ",":
                self.pos += 1
                self._skip()
        self.pos += 1
