"""Small helpers shared by the audit tests."""
from hardrun.audit.rules import all_rules


def rule_for(practice: str) -> str:
    """The id of the first rule of `practice` (tests name practices, not ids)."""
    for rule in all_rules().values():
        if rule.practice == practice:
            return rule.id
    raise LookupError(practice)


ROOT_DOCKERFILE = "FROM alpine:3.20\nRUN echo hi\n"
CLEAN_DOCKERFILE = ("FROM alpine:3.20@sha256:" + "a" * 64 + "\n"
                    "USER 10001:10001\n"
                    "HEALTHCHECK CMD [\"true\"]\n")
