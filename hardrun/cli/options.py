"""One declaration of a command's options, read by two parsers: click (help, completion,
every error message) and a small parser for the common case that never imports click.

`hardrun audit` runs once per commit, often once per file from pre-commit: importing click
is about a third of its start-up. The fast parser takes only what it is sure of (known
long options, `--name=value`, separate short options, known choices) and hands anything
else, `--help` and every mistake included, to click, so that the two never disagree.
"""
from __future__ import annotations


class Option:
    """One option: its names, the parameter it fills and how (a value, a flag, a
    repeatable value, or a `--x/--no-x` flag pair when `negation` is set)."""

    __slots__ = ("names", "dest", "help", "choices", "default", "flag", "multiple",
                 "metavar", "negation", "show_default", "path")

    def __init__(self, *names: str, dest: str, help: str, choices: tuple | None = None,
                 default=None, flag: bool = False, multiple: bool = False,
                 metavar: str | None = None, negation: str | None = None,
                 show_default: bool = False, path: bool = False):
        self.names, self.dest, self.help, self.choices = names, dest, help, choices
        self.default, self.flag, self.multiple, self.metavar = default, flag, multiple, metavar
        self.negation, self.show_default, self.path = negation, show_default, path


class NotFast(Exception):
    """The words need click: help, a mistake, or a form the fast parser does not take."""


def parse(argv: list[str], options: tuple[Option, ...]) -> tuple[dict, tuple[str, ...]]:
    """(values by parameter name, positional words), as click would give them."""
    values = {option.dest: () if option.multiple else option.default for option in options}
    by_name = {name: option for option in options for name in option.names}
    negations = {option.negation: option for option in options if option.negation}
    positional: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            positional.extend(words)
            break
        if word == "-" or not word.startswith("-"):
            positional.append(word)
            continue
        name, equals, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in negations and not equals:
            values[negations[name].dest] = False
            continue
        option = by_name.get(name)
        if option is None or (option.flag and equals):
            raise NotFast(word)
        if option.flag:
            values[option.dest] = True
            continue
        if not equals:
            following = next(words, None)
            if following is None:
                raise NotFast(word)
            value = following
        if option.choices is not None and value not in option.choices:
            raise NotFast(word)
        if option.path and _is_directory(value):   # click's own message for it
            raise NotFast(word)
        values[option.dest] = values[option.dest] + (value,) if option.multiple else value
    return values, tuple(positional)


def _is_directory(path: str) -> bool:
    import os
    return os.path.isdir(path)


def click_params(options: tuple[Option, ...]) -> list:
    """The same options as click parameters (imported only when click is)."""
    import click
    params = []
    for option in options:
        declarations = list(option.names)
        if option.negation:
            declarations = [f"{option.names[0]}/{option.negation}"]
        params.append(click.Option(
            declarations + [option.dest], help=option.help, default=option.default,
            is_flag=option.flag, multiple=option.multiple,
            metavar=option.metavar, show_default=option.show_default,
            type=(click.Choice(option.choices) if option.choices is not None
                  else click.Path(dir_okay=False) if option.path else None)))
    return params
