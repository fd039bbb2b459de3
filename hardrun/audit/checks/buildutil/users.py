"""Who the image runs as: the USER in effect at the end of a stage."""
from __future__ import annotations


# --- USER ----------------------------------------------------------------------------

def effective_user(dockerfile, stage):
    """(user, USER instruction) in effect at the end of `stage`, following FROM <stage>.

    (None, None) when no stage of the chain sets USER; (None, instruction) when the last
    USER names a variable without a value (a build argument decides it).
    """
    for member in dockerfile.stage_chain(stage):
        for instruction in reversed(member.instructions):
            if instruction.keyword == "USER":
                user = instruction.expanded.strip()
                if instruction.unresolved or not user:
                    return None, instruction
                return user, instruction
    return None, None


def base_runs_as_non_root(dockerfile, stage) -> bool:
    """Whether the image at the root of `stage`'s chain says it runs as non-root by its
    tag (distroless `:nonroot`, `:debug-nonroot`, chainguard-style `-nonroot`)."""
    root = list(dockerfile.stage_chain(stage))[-1]
    if root.is_stage_reference:
        return False
    reference = root.base.rsplit("/", 1)[-1].split("@", 1)[0]
    _, colon, tag = reference.partition(":")
    return bool(colon) and "nonroot" in tag.lower()
