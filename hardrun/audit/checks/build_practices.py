"""Checks over the build model for the Dockerfile practices hadolint users rely on
(docs/hadolint.md maps its DL rules to these) and BuildKit's RUN flags.

Same contract as build.py: each check yields `Hit`s for one Dockerfile.
"""
from __future__ import annotations

from ...parsing.patterns import regex
from ..findings import Hit
from . import check
from .buildutil import commands, installs, stages


# --- packages --------------------------------------------------------------------------

@check("HR1021")
def unpinned_packages(dockerfile, context):
    for instruction in stages.runs(dockerfile):
        for manager, verb, options, packages, command in installs.install_commands(instruction):
            loose = installs.unpinned(manager, options, packages)
            if loose:
                shown = ", ".join(loose[:3]) + (" …" if len(loose) > 3 else "")
                yield Hit(command.line, f"`{command.name} {verb}` installs {shown} without a "
                                        "version: pin each one so that rebuilds install the same "
                                        "software")


@check("HR1022")
def install_asks(dockerfile, context):
    for rows in stages.run_commands(dockerfile):
        for command, words, name in rows:
            asking = installs.asks(words, name)
            if asking:
                yield Hit(command.line, f"`{asking}` without -y (zypper: -n) stops at its "
                                        "question, which a build cannot answer")


@check("HR1023")
def distribution_upgrade(dockerfile, context):
    for rows in stages.run_commands(dockerfile):
        for command, words, name in rows:
            upgrade = installs.upgrades_distribution(words, name)
            if upgrade:
                yield Hit(command.line, f"`{upgrade}` upgrades the whole distribution inside the "
                                        "build: use a newer base image instead")


@check("HR1024")
def apt_in_build(dockerfile, context):
    for rows in stages.run_commands(dockerfile):
        for command, words, name in rows:
            if name == "apt" and len(words) > 1:
                yield Hit(command.line, "`apt` is for people at a terminal (its output and "
                                        "options may change): use apt-get or apt-cache in a build")
                break


# --- WORKDIR and cd --------------------------------------------------------------------

_ABSOLUTE = regex(r"^(?:/|\$|[A-Za-z]:[\\/]|\\)")


@check("HR1025")
def relative_workdir(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "WORKDIR":
            continue
        path = instruction.args.strip().strip("\"'")
        if path and not _ABSOLUTE.match(path):
            yield Hit(instruction.line, f"WORKDIR {path} is relative to whatever WORKDIR came "
                                        "before: give an absolute path")


@check("HR1026")
def cd_instead_of_workdir(dockerfile, context):
    for instruction in stages.runs(dockerfile):
        for command in instruction.commands():
            if command.name == "cd" and len(command.words) > 1:
                yield Hit(command.line, f"`cd {command.words[1]}` in RUN: use WORKDIR (or "
                                        "absolute paths) so later steps do not depend on it")
                break


# --- instructions ----------------------------------------------------------------------

_ONCE = ("CMD", "ENTRYPOINT", "HEALTHCHECK")


@check("HR1027")
def repeated_instruction(dockerfile, context):
    for stage in dockerfile.stages:
        seen: dict = {}
        for instruction in stage.instructions:
            if instruction.keyword not in _ONCE:
                continue
            if instruction.keyword in seen:
                yield Hit(seen[instruction.keyword].line, f"{instruction.keyword} at line "
                          f"{seen[instruction.keyword].line} is overridden by the one at line "
                          f"{instruction.line}: only the last {instruction.keyword} of a stage "
                          "counts")
            seen[instruction.keyword] = instruction


@check("HR1028")
def maintainer(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword == "MAINTAINER":
            yield Hit(instruction.line, "MAINTAINER is deprecated: use "
                                        "LABEL org.opencontainers.image.authors=\"…\"")


@check("HR1029")
def shell_form_command(dockerfile, context):
    final = dockerfile.final_stage
    for stage in dockerfile.stage_chain(final) if final else ():
        for instruction in stage.instructions:
            if instruction.keyword in ("CMD", "ENTRYPOINT") and instruction.exec_form is None \
                    and instruction.args.strip():
                yield Hit(instruction.line, f"{instruction.keyword} in shell form runs under "
                                            "/bin/sh -c, which does not pass SIGTERM on: write it "
                                            "as a JSON array")


# --- COPY --from -----------------------------------------------------------------------

@check("HR1030")
def copy_from_stage(dockerfile, context):
    names: dict[str, int] = {}
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            source = instruction.flag("from") if instruction.keyword in ("COPY", "ADD") else None
            if not source or "$" in source:
                continue
            yield from _judge_from(instruction, source.lower(), stage, names)
        if stage.name is not None:
            names[stage.name] = stage.index


def _judge_from(instruction, source: str, stage, names: dict):
    if source == stage.name or source == str(stage.index):
        yield Hit(instruction.line, f"COPY --from={source} names its own stage: a stage cannot "
                                    "copy from itself", severity="error")
    elif source.isdigit():
        if int(source) >= stage.index:
            yield Hit(instruction.line, f"COPY --from={source} names a stage that is not "
                                        "defined before this one", severity="error")
    elif source not in names and not any(mark in source for mark in ":/@."):
        yield Hit(instruction.line, f"COPY --from={source} names no earlier stage, so the "
                                    f"builder pulls an image called `{source}` from Docker Hub: "
                                    "name a stage defined above (or the image in full)")


# --- users -----------------------------------------------------------------------------

_LARGE_UID = 100000


@check("HR1031")
def useradd_high_uid(dockerfile, context):
    for rows in stages.run_commands(dockerfile):
        for command, words, name in rows:
            if name != "useradd":
                continue
            uid = _option_value(words, ("-u", "--uid"))
            if uid and uid.isdigit() and int(uid) >= _LARGE_UID \
                    and not {"-l", "--no-log-init"}.intersection(words):
                yield Hit(command.line, f"useradd -u {uid} without -l (--no-log-init) writes a "
                                        "sparse /var/log/lastlog that grows the layer by gigabytes")


def _option_value(words, names) -> str | None:
    for index, word in enumerate(words):
        if word in names and index + 1 < len(words):
            return words[index + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
            if not name.startswith("--") and word.startswith(name) and len(word) > len(name):
                return word[len(name):]
    return None


# --- pipefail --------------------------------------------------------------------------

_SHELLS_WITH_PIPEFAIL = regex(r"(?:^|\s)-[a-zA-Z]*o\s+pipefail\b|-o\s*pipefail")


@check("HR1032")
def pipe_without_pipefail(dockerfile, context):
    for stage in dockerfile.stages:
        for instruction, shell in _runs_with_shell(dockerfile, stage):
            if _pipefail(shell):
                continue
            yield from _unguarded_pipes(instruction)


def _runs_with_shell(dockerfile, stage):
    """(RUN, the SHELL exec form in effect) for the RUNs of `stage` itself."""
    shell = None
    for member in list(dockerfile.stage_chain(stage))[:0:-1]:       # parents, furthest first
        for instruction in member.instructions:
            if instruction.keyword == "SHELL" and instruction.exec_form:
                shell = instruction.exec_form
    for instruction in stage.instructions:
        if instruction.keyword == "SHELL" and instruction.exec_form:
            shell = instruction.exec_form
        elif instruction.keyword == "RUN" and instruction.exec_form is None:
            yield instruction, shell


def _pipefail(shell) -> bool:
    return bool(shell) and bool(_SHELLS_WITH_PIPEFAIL.search(" ".join(shell)))


def _unguarded_pipes(instruction):
    """Hits for the pipelines of a RUN that run before any `set -o pipefail` in it."""
    for pipeline in instruction.pipelines:
        if any(_sets_pipefail(command) for command in pipeline):
            return
        if len(pipeline) < 2 or commands.command_name(commands.effective_words(pipeline[-1])) \
                in commands.SHELLS:
            continue     # a download piped into a shell is HR1010's
        feeding = [commands.command_name(commands.effective_words(c)) for c in pipeline[:-1]]
        download = next((name for name in feeding if name in commands.DOWNLOADERS), None)
        last = pipeline[-1].name
        if download:
            yield Hit(pipeline[0].line, f"`{download} … | {last}` without pipefail: a failed "
                                        "download is hidden and the build goes on with what "
                                        f"{last} made of it; add `set -o pipefail &&` (bash) or "
                                        "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]")
        else:
            yield Hit(pipeline[0].line, f"a pipe into {last} without pipefail: the RUN "
                                        "succeeds even when an earlier command fails",
                      severity="info")
        return


def _sets_pipefail(command) -> bool:
    return command.name == "set" and "pipefail" in command.words and any(
        word.startswith("-") and "o" in word for word in command.words[1:])


# --- BuildKit RUN flags ------------------------------------------------------------------

_DAEMON_SOCKETS = ("docker.sock", "containerd.sock", "podman.sock", "crio.sock", "buildkitd.sock")


@check("HR1033")
def buildkit_breach(dockerfile, context):
    for instruction in stages.runs(dockerfile):
        if instruction.flag("security") == "insecure":
            yield Hit(instruction.line, "RUN --security=insecure runs this step with every "
                                        "capability and no seccomp or AppArmor confinement, like "
                                        "a privileged container", severity="error")
        if instruction.flag("network") == "host":
            yield Hit(instruction.line, "RUN --network=host gives this step the build host's "
                                        "network: its local services and interfaces",
                      severity="warning")
        for key, value in instruction.flags:
            if key == "mount" and value and any(sock in value for sock in _DAEMON_SOCKETS):
                yield Hit(instruction.line, f"RUN --mount={value} hands the build a container "
                                            "daemon's socket: whoever controls the step controls "
                                            "the host", severity="error")


# --- COPY destinations -------------------------------------------------------------------

@check("HR1034")
def copy_to_relative_destination(dockerfile, context):
    for stage in dockerfile.stages:
        workdir = any(instruction.keyword == "WORKDIR" for parent in dockerfile.stage_chain(stage)
                      if parent is not stage for instruction in parent.instructions)
        for instruction in stage.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = True
            elif instruction.keyword in ("COPY", "ADD") and not workdir and len(instruction.words) >= 2:
                destination = instruction.words[-1]
                if not _ABSOLUTE.match(destination) and not destination.startswith("~"):
                    yield Hit(instruction.line, f"{instruction.keyword} to {destination}, a relative "
                                                "path, with no WORKDIR set: where it lands depends on "
                                                "the base image's working directory")


@check("HR1035")
def copy_whole_stage(dockerfile, context):
    for instruction in stages.instructions(dockerfile):
        if instruction.keyword != "COPY" or not instruction.flag("from") or len(instruction.words) < 2:
            continue
        whole = [source for source in instruction.words[:-1] if source.rstrip("/.") == ""]
        if whole:
            yield Hit(instruction.line, f"COPY --from={instruction.flag('from')} {whole[0]} copies that "
                                        "stage's whole file system: its compilers, caches and "
                                        "secrets come along; copy only what the image needs")
