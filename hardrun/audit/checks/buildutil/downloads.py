"""Downloads run unverified: a downloader piped into a shell, or a shell running a
command substitution that fetches the script."""
from __future__ import annotations

import re

from .commands import DOWNLOADERS, INTERPRETERS, SHELLS, command_name, effective_words


# --- downloads run as scripts -------------------------------------------------------

def pipe_to_shell(pipeline) -> str | None:
    """`curl … | sh`-style: a downloader's output piped into a shell or an interpreter."""
    downloader = None
    for command in pipeline:
        words = effective_words(command)
        name = command_name(words)
        if downloader is None:
            if name in DOWNLOADERS:
                downloader = name
            continue
        if _reads_script_from_stdin(name, words):
            via = " via sudo" if command.name in ("sudo", "doas") else ""
            return (f"{downloader} output is piped into {name}{via}: the script runs unverified; "
                    "download it, check its checksum, then run it")
    return None


def _reads_script_from_stdin(name: str, words) -> bool:
    arguments = words[1:]
    if name in SHELLS:
        return "-c" not in arguments
    if INTERPRETERS.match(name):
        return not [word for word in arguments if not word.startswith("-")] or "-" in arguments
    return False


def shell_runs_download(pipeline) -> str | None:
    """`sh -c "$(curl …)"`, `bash <(curl …)`, `eval "$(wget -O- …)"`, `source <(curl …)`."""
    for command in pipeline:
        words = effective_words(command)
        name = command_name(words)
        if name in SHELLS or name in ("eval", "source", "."):
            for word in words[1:]:
                if _SUBSTITUTION.search(word):
                    return (f"{name} runs a script fetched by a command substitution: download it, "
                            "check its checksum, then run it")
    return None


_SUBSTITUTION = re.compile(r"(?:\$\(|<\(|`)\s*(?:\S*/)?(?:curl|wget)\b")
SUBSTITUTED_DOWNLOAD = re.compile(
    r"(?:^|[\s;&|(])(?:sh|bash|zsh|dash|ksh|ash|eval|source|\.)\s+(?:-\S+\s+)*[\"']?"
    r"(?:\$\(|<\(|`)\s*(?:\S*/)?(?:curl|wget)\b")
