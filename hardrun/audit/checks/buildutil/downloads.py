"""Downloads run unverified: a downloader piped into a shell, or a shell running a
command substitution that fetches the script."""
from __future__ import annotations

from ....parsing.patterns import lazy

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
                if fetches_in_substitution(word):
                    return (f"{name} runs a script fetched by a command substitution: download it, "
                            "check its checksum, then run it")
    return None


_DOWNLOADER = lazy(r"(?:curl|wget)\b")
_OPENER = lazy(r"\$\(|<\(|`")
_SPACE = lazy(r"\s")


def fetches_in_substitution(word: str) -> bool:
    r"""Whether `word` holds `$(curl`, `<(wget`, `` `curl ``, `$( /usr/bin/curl`…: what
    `(?:\$\(|<\(|`)\s*(?:\S*/)?(?:curl|wget)\b` finds, in linear time (a search for it
    scans the rest of a long run of `$(` from each one).

    Read backwards from each curl/wget: an opener right before it, or before the blanks
    that start its run of non-blanks; or, after a `/`, an opener in that run."""
    run_start = run_end = first_opener = -1
    opener_before = False
    for match in _DOWNLOADER.finditer(word):
        at = match.start()
        if word.endswith(("$(", "<(", "`"), 0, at):
            return True
        if at >= run_end:        # a new run of non-blanks: its bounds and first opener, once
            run_start = at
            while run_start > 0 and not word[run_start - 1].isspace():
                run_start -= 1
            space = _SPACE.search(word, at)
            run_end = space.start() if space else len(word)
            opener = _OPENER.search(word, run_start, run_end)
            first_opener = opener.end() if opener else -1
            opener_before = _opener_before_blanks(word, run_start)
        after_slash = at > run_start and word[at - 1] == "/"
        if after_slash and 0 <= first_opener < at:
            return True
        if (at == run_start or after_slash) and opener_before:
            return True
    return False


def _opener_before_blanks(word: str, run_start: int) -> bool:
    blanks = run_start
    while blanks > 0 and word[blanks - 1].isspace():
        blanks -= 1
    return blanks < run_start and word.endswith(("$(", "<(", "`"), 0, blanks)


SUBSTITUTED_DOWNLOAD = lazy(
    r"(?:^|[\s;&|(])(?:sh|bash|zsh|dash|ksh|ash|eval|source|\.)\s+(?:-\S+\s+)*[\"']?"
    r"(?:\$\(|<\(|`)\s*(?:\S*/)?(?:curl|wget)\b")
