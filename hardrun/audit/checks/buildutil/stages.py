"""Instructions and stages of the build model: every instruction, the final stage's
chain, the external bases, and the HEALTHCHECK and EXPOSE in effect."""
from __future__ import annotations

from ....parsing.patterns import regex

from ....spec.defaults import SENSITIVE_PORTS
from .commands import command_name, effective_words

# --- instructions and stages ----------------------------------------------------------


def instructions(dockerfile) -> tuple:
    """Every instruction (global ARGs first, in file order), ONBUILD triggers included."""
    return _listed(dockerfile)[0]


def runs(dockerfile) -> tuple:
    """Every RUN instruction, as `instructions` gives them."""
    return _listed(dockerfile)[1]


def run_commands(dockerfile) -> tuple:
    """(command, its effective words, its program name) for each command of each RUN, one
    tuple per RUN in `runs` order: what the command checks ask of every command."""
    run_instructions = runs(dockerfile)      # makes _LAST this file's
    if _LAST[3] is None:
        table = []
        for instruction in run_instructions:
            rows = []
            for command in instruction.commands():
                words = effective_words(command)
                rows.append((command, words, command_name(words)))
            table.append(tuple(rows))
        _LAST[3] = tuple(table)
    return _LAST[3]


# (the Dockerfile, its instructions, its RUNs, their commands or None until asked): the 35
# build checks of one file each walk them, and a file's checks run one after the other,
# so the lists are made once per file.
_LAST: list = [None, (), (), None]


def _listed(dockerfile) -> list:
    if _LAST[0] is not dockerfile:
        every = []
        for instruction in dockerfile.instructions():
            every.append(instruction)
            if instruction.trigger is not None:
                every.append(instruction.trigger)
        _LAST[:] = [dockerfile, tuple(every), tuple(i for i in every if i.keyword == "RUN"), None]
    return _LAST[1:]


def final_chain_indexes(dockerfile) -> set:
    """Indexes of the final stage and the stages it builds on (`FROM <stage>`)."""
    final = dockerfile.final_stage
    return {stage.index for stage in dockerfile.stage_chain(final)} if final else set()


def external_bases(dockerfile):
    """(stage, image reference to judge) for each stage built on an image, not a stage.

    `scratch` is not an image. A base that depends on a build argument without a value
    is judged as written (`python:${PY}`), so the unknown part is never guessed at.
    """
    for stage in dockerfile.stages:
        if stage.is_stage_reference:
            continue
        base = stage.base.strip()
        if base.lower() == "scratch":
            continue
        if not stage.base_is_resolved:
            base = stage.base_raw.strip()
        if base:
            yield stage, base


# --- HEALTHCHECK ---------------------------------------------------------------------

def effective_healthcheck(dockerfile, stage):
    """The HEALTHCHECK instruction in effect at the end of `stage` (following FROM <stage>)."""
    for member in dockerfile.stage_chain(stage):
        for instruction in reversed(member.instructions):
            if instruction.keyword == "HEALTHCHECK":
                return instruction
    return None


def is_healthcheck_none(instruction) -> bool:
    return instruction.args.strip().upper() == "NONE"


# --- EXPOSE --------------------------------------------------------------------------

_PORT_SPEC = regex(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")


def sensitive_ports(text: str):
    """(spec as written, [(port, service)…]) for each EXPOSE item covering remote-admin ports."""
    for spec in text.split():
        match = _PORT_SPEC.match(spec)
        if not match:
            continue
        low = int(match.group(1))
        high = int(match.group(2) or low)
        protocol = (match.group(3) or "tcp").lower()
        # These services listen on TCP; RDP also on UDP.
        covered = [(port, service) for port, (service, _) in SENSITIVE_PORTS.items()
                   if low <= port <= high and (protocol == "tcp" or port == 3389)]
        if covered:
            yield spec, covered
