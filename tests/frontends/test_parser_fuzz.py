"""Property tests: whatever the text, the Dockerfile parser raises only ParseError and
the shell splitter raises nothing, and both finish."""
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardrun.errors import ParseError
from hardrun.frontends.dockerfile import parse_dockerfile
from hardrun.parsing.shell import split_argv, split_script

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


# -- deep nesting: any parser of one file raises only a hardrun error -----------------

NESTINGS = [("$(", ")"), ('"$(', ')"'), ("${A:-", "}"), ("`", "`"), ("(", ")"), ("{ ", "; }"),
            ("[", "]"), ("{", "}"), ("- ", ""), ("if true; then ", "; fi"), ("sh -c '", "'"),
            ("<<EOF\n", "\nEOF"), ("\\\n", "")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(NESTINGS), st.integers(1, 3000)), min_size=1, max_size=3),
       st.sampled_from(["FROM a\nRUN ", "FROM a\nENV X=", "ARG A\nFROM ", "FROM a\nCMD ",
                        "services:\n  web:\n    image: ", "docker run ", "x: "]))
def test_deep_nesting_raises_only_hardrun_errors(nestings, head):
    """Every front end (and the YAML loader, interpolation, the shell splitter) with up to
    9000 levels of nesting: a result or a HardrunError, never RecursionError."""
    from hardrun.errors import HardrunError
    from hardrun.frontends import parse
    from hardrun.parsing.interpolate import interpolate
    from hardrun.parsing.yamlsafe import load_all
    body = "x"
    for (opener, closer), depth in nestings:
        body = opener * depth + body + closer * depth
    text = head + body + "\n"
    kinds = {"FROM": ["dockerfile"], "ARG ": ["dockerfile"], "services": ["compose"],
             "docker run": ["docker-run"], "x: ": ["kubernetes", "oci", "hardrun"]}
    for kind in next(v for k, v in kinds.items() if head.startswith(k)):
        try:
            parse(kind, text, "f")
        except HardrunError:
            pass
    for run in (lambda: load_all(text), lambda: interpolate(text), lambda: split_script(body)):
        try:
            run()
        except HardrunError:
            pass


# -- the rewritten patterns match what the quadratic ones matched ---------------------

_OLD_DIRECTIVE = re.compile(r"[ \t]*#[ \t]*([A-Za-z0-9]+)[ \t]*=[ \t]*(.+?)[ \t]*$")
_OLD_URL_USERINFO = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://([^\s/:@'\"]+):([^\s/@'\"]+)@[^\s/@'\"]")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="# \t=aZ9x.\n\r\u00a0", max_size=24))
def test_directive_pattern_matches_as_before(line):
    from hardrun.frontends.dockerfile import _DIRECTIVE
    old, new = _OLD_DIRECTIVE.match(line), _DIRECTIVE.match(line)
    assert (old and old.groups()) == (new and new.groups())


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="aZ0+.-_:/@ \n'\"x", max_size=40))
def test_url_userinfo_matches_as_before(text):
    from hardrun.audit.secrets import _url_userinfo
    def found(matches):
        return [(text.count("\n", 0, m.start()), m.end(), m.groups()) for m in matches]
    assert found(_url_userinfo(text)) == found(_OLD_URL_USERINFO.finditer(text))


def test_rewritten_patterns_on_the_reported_inputs():
    """The inputs of the report, at the sizes that took 20-30 s, still give the old results
    (the timing itself is in bench/pathological.py)."""
    from hardrun.audit.secrets import find_credential_literals
    from hardrun.frontends.dockerfile import _DIRECTIVE
    blanks = " \t" * 32 * 1024
    assert _DIRECTIVE.match("# escape=`" + blanks).groups() == ("escape", "`")
    assert _DIRECTIVE.match("# syntax=x" + blanks + "y").group(2) == "x" + blanks + "y"
    assert find_credential_literals("RUN echo " + "a." * 80 * 1024 + " ://@") == []
    (credential,) = find_credential_literals("RUN echo " + "a." * 1024 + "b://u:p@host")
    assert credential.kind == "url-userinfo"


_OLD_EXPANSION = re.compile(r"\$\{[^}]*\}|\$\([^)]*\)|`[^`]*`|\$[A-Za-z_][A-Za-z0-9_]*|\$[0-9@*#?$!-]")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="${}()`a_1@x- \n", max_size=30))
def test_expansion_stripping_matches_as_before(value):
    from hardrun.audit.secrets import without_expansions
    assert without_expansions(value) == _OLD_EXPANSION.sub("", value)


def test_expansion_stripping_on_a_run_of_unclosed_expansions():
    """`${` repeated with no `}` after it took 40 s at 100 KB in a URL password (timing in
    bench/pathological.py); the result is the old one."""
    from hardrun.audit.secrets import find_credential_literals, without_expansions
    value = "${" * 100_000 + "$(" * 100_000
    assert without_expansions(value) == value
    (credential,) = find_credential_literals("RUN echo http://u:" + "${" * 100_000 + "x@h")
    assert credential.kind == "url-userinfo"


_OLD_SUBSTITUTION = re.compile(r"(?:\$\(|<\(|`)\s*(?:\S*/)?(?:curl|wget)\b")
_OLD_TRUSTED_APT = re.compile(r"\[\s*(?:[^\]]*\s)?trusted=yes[^\]]*\]\s*(?!file:|copy:)[\"']?[a-z]+:")
_OLD_CURLRC = re.compile(r"\b(?:insecure|-k)\b[^\n]*>>?\s*\S*\.curlrc", re.I)


def _soup(pieces, size=12):
    return st.lists(st.sampled_from(pieces), max_size=size).map("".join)


@settings(max_examples=3000, deadline=None)
@given(_soup(["$(", "<(", "`", "/", " ", "\n", "\t", "curl", "wget", "curlx", "x", "(", "$", "_"]))
def test_substitution_check_finds_what_the_old_pattern_found(word):
    from hardrun.audit.checks.buildutil.downloads import fetches_in_substitution
    assert fetches_in_substitution(word) == bool(_OLD_SUBSTITUTION.search(word))


@settings(max_examples=3000, deadline=None)
@given(_soup(["[", "]", " ", "\n", "\t", "trusted=yes", "x", "http:", "file:", "copy:", "'", ":"]))
def test_trusted_apt_check_finds_what_the_old_pattern_found(text):
    from hardrun.audit.checks.buildutil.tls import has_trusted_apt_source
    assert has_trusted_apt_source(text) == bool(_OLD_TRUSTED_APT.search(text))


@settings(max_examples=3000, deadline=None)
@given(_soup(["insecure", "INSECURE", "-k", "x-k", ">", ">>", " ", "\n", "\t", ".curlrc", ".CurlRC",
              "x", "/", "k"]))
def test_curlrc_check_finds_what_the_old_pattern_found(text):
    from hardrun.audit.checks.buildutil.tls import writes_insecure_curlrc
    assert writes_insecure_curlrc(text) == bool(_OLD_CURLRC.search(text))


def test_config_checks_on_their_pathological_inputs():
    """Inputs that took 50-120 s at 100 KB before (timing in bench/pathological.py)."""
    from hardrun.audit.checks.buildutil.downloads import fetches_in_substitution
    from hardrun.audit.checks.buildutil.tls import has_trusted_apt_source, writes_insecure_curlrc
    n = 100_000
    assert not fetches_in_substitution("$(" * n) and not fetches_in_substitution("`" * n)
    assert fetches_in_substitution("$(" * n + " /usr/bin/curl")
    assert not has_trusted_apt_source("trusted=yes " + "[" * n)
    assert has_trusted_apt_source("[ " + "trusted=yes " * n + "] http://x")
    assert not writes_insecure_curlrc("insecure " + ">" * n + " curlrc")
    assert writes_insecure_curlrc("insecure " + ">" * n + " ~/.curlrc")


_OLD_TRUSTED_HOST = re.compile(r"(?:^|\\n|\n)\s*trusted[-_]host\s*=", re.I)


@settings(max_examples=3000, deadline=None)
@given(_soup(["trusted-host", "TRUSTED_host", "=", " ", "\n", "\t", "\\n", "\\", "n", "x", "[global]"]))
def test_trusted_host_check_finds_what_the_old_pattern_found(text):
    from hardrun.audit.checks.buildutil.tls import sets_trusted_host
    assert sets_trusted_host(text) == bool(_OLD_TRUSTED_HOST.search(text))


def test_trusted_host_check_on_a_run_of_newlines():
    """Minutes at 100 KB before (timing in bench/pathological.py)."""
    from hardrun.audit.checks.buildutil.tls import sets_trusted_host
    assert not sets_trusted_host("\n" * 100_000 + "x trusted-host=")
    assert sets_trusted_host("\n" * 100_000 + " trusted-host=")


def _old_interpolate_closing_brace(text, start):
    """interpolate._closing_brace before it kept the `}` it found (quadratic on `${${${…}`)."""
    depth = 1
    i = start
    while True:
        close = text.find("}", i)
        if close < 0:
            return -1
        nested = text.find("${", i, close)
        if nested >= 0:
            depth += 1
            i = nested + 2
            continue
        depth -= 1
        if depth == 0:
            return close
        i = close + 1


@settings(max_examples=3000, deadline=None)
@given(_soup(["${", "$", "{", "}", "a", ":-", " "], size=16), st.integers(min_value=0, max_value=40))
def test_compose_closing_brace_finds_what_the_old_scan_found(text, start):
    from hardrun.parsing.interpolate import _closing_brace
    assert _closing_brace(text, start) == _old_interpolate_closing_brace(text, start)


def test_compose_closing_brace_on_a_run_of_openers():
    """`${` repeated before one `}` took 11 s at 1.28 MB through `hardrun audit` (timing in
    bench/pathological.py); the result is the old one."""
    from hardrun.parsing.interpolate import _closing_brace, interpolate
    text = "${" * 20_000 + "}"
    assert _closing_brace(text, 2) == _old_interpolate_closing_brace(text, 2) == -1
    assert _closing_brace(text, len(text) - 1) == len(text) - 1
    assert interpolate(text) == text
