"""The build context: COPY/ADD sources (remote, archives, secret files) and the
.dockerignore patterns that keep files out of it."""
from __future__ import annotations


# --- COPY / ADD sources --------------------------------------------------------------

WHOLE_CONTEXT = frozenset({".", "./", "*", "./*", "./.", "/", "/*"})
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz",
                     ".tbz2", ".tb2", ".tar.zst", ".tzst", ".tar.lz", ".tar.lzma", ".tlz")
_REMOTE_PREFIXES = ("http://", "https://", "git://", "git@", "ssh://", "ftp://")


def copy_sources(instruction) -> list:
    """The sources of a COPY/ADD (heredoc sources left out), after ARG expansion."""
    sources = instruction.words[:-1]
    return [source for source in sources if not source.startswith("<<")]


def is_remote_source(source: str) -> bool:
    return source.lower().startswith(_REMOTE_PREFIXES)


def is_archive(source: str) -> bool:
    """A local tar archive (plain or compressed) that ADD unpacks: ADD has a purpose."""
    return source.lower().endswith(_ARCHIVE_SUFFIXES)


# --- .dockerignore -------------------------------------------------------------------

# What a protective .dockerignore must keep out of the build context.
_MUST_EXCLUDE = ((".git", (".git",)), (".env", (".env",)),
                 ("private keys (id_rsa, *.pem, *.key)", ("id_rsa", "server.pem", "server.key")))


def dockerignore_protects(patterns) -> bool:
    """Whether `.dockerignore` patterns keep .git, .env and private keys out of the context."""
    return patterns is not None and not dockerignore_gaps(patterns)


def dockerignore_gaps(patterns) -> str:
    """What of .git, .env and private keys the patterns do not exclude, as a phrase."""
    compiled = _compile_ignore(patterns or ())
    missing = [label for label, samples in _MUST_EXCLUDE
               if not all(_ignored(compiled, sample) for sample in samples)]
    return ", ".join(missing)


def _compile_ignore(patterns):
    import re    # here: a Dockerfile without a .dockerignore needs no `re`
    out = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:].strip() if negate else pattern.strip()
        body = body.lstrip("/").rstrip("/")
        while body.startswith("./"):
            body = body[2:]
        if body:
            try:
                out.append((negate, re.compile(_ignore_regex(body))))
            except re.error:
                continue   # Docker rejects a bad pattern ("[z-a]"); here it excludes nothing
    return out


def _ignore_regex(pattern: str) -> str:
    """Docker's .dockerignore matching (Go filepath.Match plus `**`), as a regex."""
    import re
    out, index = [], 0
    while index < len(pattern):
        ch = pattern[index]
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            if pattern.startswith("/", index):
                out[-1] = "(?:.*/)?"
                index += 1
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                inner = pattern[index + 1:end]
                out.append("[" + ("^" + inner[1:] if inner.startswith("^") else inner) + "]")
                index = end
        elif ch == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(ch))
        index += 1
    # A pattern matching a directory excludes everything below it.
    return "^" + "".join(out) + "(?:/.*)?$"


def _ignored(compiled, path: str) -> bool:
    """Whether `path` (relative to the context) is excluded: the last matching pattern wins."""
    excluded = False
    for negate, regex in compiled:
        if regex.match(path):
            excluded = not negate
    return excluded
