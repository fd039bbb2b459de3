"""Line suppressions across blank lines, other comments and continuation lines.

Each case checks the finding is suppressed AND that no HR0001 ("suppresses nothing")
is reported; the control is the same file without the comment, where the finding is
reported unsuppressed (so the rule does fire on that line).
"""
import json

import pytest

from tests.helpers import rule_for

CURL = rule_for("curl-pipe-shell")
COMMENT = f'# hardrun ignore={CURL} reason="pinned installer"\n'
HEAD = "FROM alpine:3.20\nUSER 1000\n"
CASES = {
    "directly above": COMMENT + "RUN curl -s https://x.example | sh\n",
    "a blank line between": COMMENT + "\nRUN curl -s https://x.example | sh\n",
    "blank lines and comments between":
        COMMENT + "\n# fetch the installer\n\n# and run it\nRUN curl -s https://x.example | sh\n",
    "the finding on a continuation line": COMMENT + "RUN apk add curl && \\\n    curl -s https://x.example | sh\n",
    "a blank line and a comment inside the continuation":
        COMMENT + "\nRUN apk add curl && \\\n\n    # installer\n    curl -s https://x.example | sh\n",
    "inside the continuation": "RUN apk add curl && \\\n" + COMMENT + "    curl -s https://x.example | sh\n",
}


def findings(hardrun, tmp_path, text):
    (tmp_path / "Dockerfile").write_text(HEAD + text)
    done = hardrun("audit", "-f", "json", ".", cwd=tmp_path)
    return json.loads(done.stdout)["findings"]


@pytest.mark.parametrize("case", CASES)
def test_suppression_covers_the_instruction(hardrun, tmp_path, case):
    text = CASES[case]
    control = [f for f in findings(hardrun, tmp_path, text.replace(COMMENT, "")) if f["rule"] == CURL]
    assert control and not any(f["suppressed"] for f in control)
    result = findings(hardrun, tmp_path, text)
    covered = [f for f in result if f["rule"] == CURL]
    assert covered and all(f["suppressed"] for f in covered), result
    assert not [f for f in result if f["rule"] == "HR0001"], result


def test_suppression_stops_at_the_end_of_the_instruction(hardrun, tmp_path):
    """The next instruction is not covered, even right after a continued one."""
    text = COMMENT + "RUN apk add curl && \\\n    true\nRUN curl -s https://x.example | sh\n"
    result = findings(hardrun, tmp_path, text)
    assert [f["suppressed"] for f in result if f["rule"] == CURL] == [False]
    unused = [f for f in result if f["rule"] == "HR0001"]
    assert unused and unused[0]["line"] == 3
