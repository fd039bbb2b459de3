"""Property tests: whatever the text, the Dockerfile parser raises only ParseError and
the shell splitter raises nothing, and both finish."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardrun.errors import ParseError
from hardrun.frontends.dockerfile import parse_dockerfile
from hardrun.frontends.shell import split_argv, split_script

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYWORDS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "CMD", "ENTRYPOINT", "USER",
            "WORKDIR", "EXPOSE", "VOLUME", "ONBUILD", "SHELL", "HEALTHCHECK", "STOPSIGNAL",
            "MAINTAINER", "from", "Run", "BOGUS"]
PIECES = ["<<EOF", "<<-EOF", "<<'EOF'", '<<"EOF"', "EOF", "\tEOF", "\\", "`", "'", '"', "$X",
          "${X:-d}", "${X:+a}", "${", "}", "$(", ")", "(", "|", "||", "&&", ";", "&", "#",
          "--mount=type=cache,target=/x", "--from=build", "--link", "--platform=$P", "AS", "as",
          "build", "[", "]", '["sh", "-c", "x"]', "sh -c", "bash -c '", "curl -s u | sh",
          "sudo", "if", "then", "fi", "for", "do", "done", "case", "in", "esac", ";;", "{", "}",
          "=", "A=1", "a b", "\n", "\n", "\n", " ", " ", "\t", "\r\n", "# escape=`", "# syntax=x",
          "-", "2>&1", ">", "<", "\u00e9", "\u2028", "\x0c", "ARG", "NONE", "CMD"]


def lines_strategy():
    instruction = st.builds(lambda k, parts: k + " " + " ".join(parts),
                            st.sampled_from(KEYWORDS), st.lists(st.sampled_from(PIECES), max_size=8))
    line = st.one_of(instruction, st.lists(st.sampled_from(PIECES), max_size=6).map(" ".join),
                     st.text(max_size=30))
    return st.lists(line, max_size=25).map("\n".join)


def parses_or_parse_error(text):
    """A ParseError with a line inside the text, or stages whose instructions keep their
    source lines in order, never more instructions than the text has non-blank lines."""
    last_line = len(text.replace("\r\n", "\n").split("\n"))
    try:
        parsed = parse_dockerfile(text, "Dockerfile")
    except ParseError as error:
        assert error.message
        assert error.line is None or 1 <= error.line <= last_line
        return
    lines = [i.line for stage in parsed.stages for i in stage.instructions]
    assert lines == sorted(lines) and all(1 <= line <= last_line for line in lines), (lines, last_line)
    assert len(lines) <= sum(1 for line in text.splitlines() if line.strip())


PLAIN_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789./_-", min_size=1, max_size=8)
SIMPLE_KEYWORDS = ["RUN", "COPY", "ENV", "LABEL", "CMD", "USER", "WORKDIR", "EXPOSE", "STOPSIGNAL"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(SIMPLE_KEYWORDS), st.lists(PLAIN_WORD, min_size=2, max_size=4)),
                max_size=20),
       st.lists(st.sampled_from(["", "# a comment"]), max_size=20))
def test_a_parsed_dockerfile_keeps_its_instruction_count(instructions, fillers):
    """One instruction per line (blank and comment lines between): as many instructions,
    with their keywords and lines, come out."""
    lines, expected = ["FROM alpine:3.20"], [("FROM", 1)]
    for index, (keyword, words) in enumerate(instructions):
        if index < len(fillers):
            lines.append(fillers[index])
        text = " ".join(words) if keyword not in ("ENV", "LABEL") else f"K{index}={words[0]}"
        lines.append(f"{keyword} {text}")
        expected.append((keyword, len(lines)))
    parsed = parse_dockerfile("\n".join(lines) + "\n", "Dockerfile")
    got = [(i.keyword, i.line) for stage in parsed.stages for i in stage.instructions]
    assert got == expected


@FUZZ
@given(st.text(max_size=400))
def test_random_text_raises_only_parse_error(text):
    parses_or_parse_error(text)


@FUZZ
@given(st.builds(lambda body: "FROM alpine\n" + body, lines_strategy()))
def test_structured_dockerfiles_raise_only_parse_error(text):
    parses_or_parse_error(text)


@FUZZ
@given(st.lists(st.sampled_from(PIECES), max_size=40).map(" ".join))
def test_piece_soup_after_from_raises_only_parse_error(soup):
    parses_or_parse_error("ARG X=1\nFROM alpine AS build\nRUN " + soup + "\nCOPY " + soup)


@FUZZ
@given(st.text(max_size=300))
def test_shell_splitter_never_raises_on_random_text(text):
    for pipeline in split_script(text):
        for command in pipeline:
            assert 1 <= command.line <= text.count("\n") + 1
            assert all(isinstance(word, str) for word in command.words)


@FUZZ
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_shell_splitter_never_raises_on_shell_like_text(text):
    """Lines start at 3 and count the newlines plus the three joined breaks."""
    for pipeline in split_script(text, 3, [1, 5, 5]):
        for command in pipeline:
            assert 3 <= command.line <= 3 + text.count("\n") + 3, command.line


@FUZZ
@given(st.lists(st.text(max_size=20), max_size=6))
def test_exec_form_never_raises(argv):
    """The exec form is the first command, word for word, on the instruction's line; the
    commands of its script come from that line on."""
    pipelines = split_argv(["sh", "-c"] + argv, 7)
    assert pipelines[0][0].words == tuple(["sh", "-c"] + argv) and pipelines[0][0].line == 7
    assert all(command.line >= 7 for pipeline in pipelines for command in pipeline)


def test_deep_nesting_stays_bounded():
    nested = "x"
    for _ in range(60):
        nested = f'sh -c "$(echo {nested})"'
    split_script(nested)
    parses_or_parse_error("FROM a\nRUN " + "$(" * 2000 + "\nCMD " + "[" * 5000 + "]" * 5000)
    parses_or_parse_error("FROM a\nENV X=" + "${A:-" * 500 + "}" * 500)
    for nesting in ('"$(', '$("', '"${', "sh -c '", '"$(`${"\''):
        split_script(nesting * 3000)
        parses_or_parse_error("FROM a\nRUN " + nesting * 3000)


def test_many_substitutions_in_one_heredoc_keep_their_lines():
    script = "".join(f"echo $(id -u) {n}\n" for n in range(3000))
    parsed = parse_dockerfile("FROM a\nRUN <<EOF\n" + script + "EOF\n", "Dockerfile")
    echo_lines = [c.line for c in parsed.stages[0].instructions[1].commands() if c.words[0] == "echo"]
    assert echo_lines == list(range(3, 3003))
