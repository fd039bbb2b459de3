"""Shell commands of a RUN: their words without wrappers (`sudo`, `env`, `busybox`…),
the program they run, and the text pieces of a RUN to scan."""
from __future__ import annotations

from ....parsing.patterns import regex

from ....parsing.shell import SHELLS as POSIX_SHELLS


# --- shell commands ------------------------------------------------------------------

# Programs that run a script given on stdin or with -c: the POSIX shells, and fish.
SHELLS = POSIX_SHELLS | {"fish"}
INTERPRETERS = regex(r"^(?:python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|php[0-9.]*)$")
PIP = regex(r"^pip[0-9.]*$")
DOWNLOADERS = frozenset({"curl", "wget", "fetch"})
_SUDO_VALUE_OPTIONS = frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U",
                                 "--user", "--group", "--prompt", "--chdir"})
_WRAPPERS = frozenset({"sudo", "doas", "env", "exec", "nohup", "time", "command", "nice",
                       "busybox", "chronic", "stdbuf", "eatmydata"})


# effective_words by the command's words: a dozen checks ask it of every command of a
# RUN, each in turn. Bounded: cleared when full.
_EFFECTIVE: dict[tuple, tuple] = {}
_EFFECTIVE_MAX = 4096


def effective_words(command) -> tuple:
    """The command's words with wrappers (`sudo -E`, `env A=1`, `busybox`, `nohup`…) removed."""
    words = tuple(command.words)
    found = _EFFECTIVE.get(words)
    if found is None:
        if len(_EFFECTIVE) >= _EFFECTIVE_MAX:
            _EFFECTIVE.clear()
        found = _EFFECTIVE[words] = _unwrapped(words)
    return found


def _unwrapped(words: tuple) -> tuple:
    while words:
        name = words[0].rsplit("/", 1)[-1]
        if name not in _WRAPPERS:
            break
        index = 1
        while index < len(words):
            word = words[index]
            if name == "env" and "=" in word and not word.startswith("-"):
                index += 1
            elif word.startswith("-") and name not in ("busybox", "command"):
                index += 2 if word in _SUDO_VALUE_OPTIONS or (name == "nice" and word == "-n") else 1
            else:
                break
        words = words[index:]
    return words


def command_name(words) -> str:
    return words[0].rsplit("/", 1)[-1] if words else ""


def run_texts(instruction):
    """(line, text) pieces of a RUN to scan as text: its arguments, then each heredoc line."""
    yield instruction.line, instruction.args
    for heredoc in instruction.heredocs:
        for offset, text in enumerate(heredoc.body.split("\n")):
            yield heredoc.line + offset, text
