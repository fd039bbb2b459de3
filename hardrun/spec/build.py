"""The build model: a parsed Dockerfile/Containerfile.

Front end: hardrun.frontends.dockerfile.parse_dockerfile(text, path) -> Dockerfile.
Every value keeps the 1-based source line it came from so findings point at it.
"""
from __future__ import annotations

from .record import dataclass  # not dataclasses: see record.py


@dataclass(frozen=True)
class Command:
    """One simple shell command of a RUN body, after quote removal.

    `words` are the command and its arguments with `VAR=value` prefixes moved to
    `assignments`; a leading `sudo`, `env` or `exec` is kept in `words` (rules decide).
    """
    words: tuple[str, ...]
    line: int
    assignments: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """The program name without its directory (`/usr/bin/curl` -> `curl`), or ''."""
        return self.words[0].rsplit("/", 1)[-1] if self.words else ""


# A pipeline is a tuple of commands joined by `|`; `a && b; c` are separate pipelines.
Pipeline = tuple[Command, ...]


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to an instruction (`RUN <<EOF`, `COPY <<EOF /dst`)."""
    delimiter: str
    body: str
    line: int                 # line of the first body line
    strip_tabs: bool = False  # `<<-EOF`
    quoted: bool = False      # `<<'EOF'` / `<<"EOF"`: no expansion in the body


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its flags and arguments.

    `args` is the argument text after the flags, continuation lines joined with
    the escape character and newline removed, comments inside continuations dropped.
    `expanded` is `args` after ARG/ENV substitution where Docker substitutes
    (FROM, COPY/ADD, ENV, ARG, EXPOSE, USER, WORKDIR, LABEL, STOPSIGNAL, VOLUME, ONBUILD
    is not expanded). For RUN/CMD/ENTRYPOINT/SHELL it equals `args` (the shell expands).
    `exec_form` is the parsed JSON array for the exec form, else None.
    `pipelines` holds the shell commands for RUN (shell form, exec form run via a
    shell, and heredoc bodies that are scripts), empty otherwise, and empty when the
    stage's shell is not a POSIX shell (`SHELL ["pwsh", ...]`, Windows base images).
    `words` are the arguments after expansion and quote removal, split as the builder
    splits them (the JSON items for the exec form); for shell-form CMD/ENTRYPOINT/
    HEALTHCHECK they are unexpanded shell words; empty for shell-form RUN (see pipelines).
    `pairs` are the `(name, value)` items of ENV, LABEL and ARG after expansion and
    quote removal (`ARG NAME` without a default gives `(NAME, None)`).
    `unresolved` names the variables referenced by the expanded text or flags that have
    no known value (an `ARG` without a default, an unset name): they expanded to ''.
    """
    keyword: str                          # upper case: FROM, RUN, COPY…
    line: int                             # first source line
    end_line: int                         # last source line (heredoc terminator included)
    args: str
    expanded: str
    # ("from", "builder"), ("link", None)…: quotes removed, values substituted when every
    # variable in them has a value, else kept as written (`--platform=$BUILDPLATFORM`).
    flags: tuple[tuple[str, str | None], ...] = ()
    exec_form: tuple[str, ...] | None = None
    heredocs: tuple[Heredoc, ...] = ()
    pipelines: tuple[Pipeline, ...] = ()
    trigger: "Instruction | None" = None  # the instruction inside ONBUILD
    words: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str | None], ...] = ()
    unresolved: tuple[str, ...] = ()

    def flag(self, name: str) -> str | None:
        """Value of `--name=value` (the last one wins), '' for a bare `--name`, None if absent."""
        found = None
        for key, value in self.flags:
            if key == name:
                found = "" if value is None else value
        return found

    def commands(self):
        """Every command of every pipeline, in order."""
        for pipeline in self.pipelines:
            yield from pipeline


@dataclass(frozen=True)
class Stage:
    """A build stage: FROM and what follows up to the next FROM."""
    index: int
    line: int                     # line of FROM
    base: str                     # image reference after ARG expansion (`scratch`, `alpine:3.20`…)
    base_raw: str                 # as written (`${BASE}`)
    name: str | None              # `AS name`, lower case (compare `COPY --from=` values lowered)
    parent: int | None            # index of the stage named by `base`, if it names one
    platform: str | None          # the --platform flag (as written when it uses an unset ARG)
    instructions: tuple[Instruction, ...]   # FROM first
    base_unresolved: tuple[str, ...] = ()   # variables of the FROM image with no known value

    @property
    def base_is_resolved(self) -> bool:
        """False when the image depends on a build argument nobody gave a value."""
        return not self.base_unresolved and bool(self.base)

    @property
    def is_stage_reference(self) -> bool:
        return self.parent is not None


@dataclass(frozen=True)
class Comment:
    line: int
    text: str                     # without the leading `#` and surrounding blanks


@dataclass(frozen=True)
class Dockerfile:
    path: str
    stages: tuple[Stage, ...]
    directives: tuple[tuple[str, str], ...]   # ("syntax", "docker/dockerfile:1"), ("escape", "`")
    comments: tuple[Comment, ...]
    global_args: tuple[Instruction, ...]      # ARGs before the first FROM
    line_count: int

    @property
    def escape(self) -> str:
        """The escape character of the `# escape=` directive (a backslash by default)."""
        for key, value in self.directives:
            if key == "escape":
                return value
        return "\\"

    @property
    def final_stage(self) -> Stage | None:
        return self.stages[-1] if self.stages else None

    def instructions(self):
        """Every instruction of every stage (global ARGs first), in file order."""
        yield from self.global_args
        for stage in self.stages:
            yield from stage.instructions

    def stage_chain(self, stage: Stage | None):
        """`stage` and the stages it builds on through `FROM <stage>`, nearest first."""
        seen = set()
        while stage is not None and stage.index not in seen:
            seen.add(stage.index)
            yield stage
            stage = self.stages[stage.parent] if stage.parent is not None else None
