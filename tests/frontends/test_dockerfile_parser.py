"""The Dockerfile front end: one test per feature a rule or a user relies on."""
import textwrap

import pytest

from hardrun.errors import ParseError
from hardrun.frontends.dockerfile import parse_dockerfile


def parse(text):
    return parse_dockerfile(textwrap.dedent(text).lstrip("\n"), "Dockerfile")


def only_stage(text):
    dockerfile = parse(text)
    assert len(dockerfile.stages) == 1
    return dockerfile.stages[0]


def commands(instruction):
    return [command.words for command in instruction.commands()]


# -- lines and continuations ---------------------------------------------------------

def test_instruction_lines_span_continuations_and_skip_comments_and_blank_lines():
    stage = only_stage("""
        FROM debian:12
        RUN apt-get update \\
            # refresh first
            && apt-get install -y curl \\

            && rm -rf /var/lib/apt/lists/*
        USER app
    """)
    run, user = stage.instructions[1], stage.instructions[2]
    assert (run.line, run.end_line) == (2, 6)
    assert "refresh" not in run.args
    assert run.args == "apt-get update     && apt-get install -y curl     && rm -rf /var/lib/apt/lists/*"
    assert user.line == 7


def test_commands_keep_their_own_source_line_across_continuations():
    stage = only_stage("""
        FROM debian:12
        RUN set -eux; \\
            # comment lines count as lines
            apt-get update; \\
            curl -fsSL https://example.com/x.sh | sh
    """)
    lines = {command.words[0]: command.line for command in stage.instructions[1].commands()}
    assert lines == {"set": 2, "apt-get": 4, "curl": 5, "sh": 5}


def test_continuation_at_end_of_file_is_accepted():
    stage = only_stage("FROM alpine:3.20\nRUN echo done \\")
    assert stage.instructions[1].args == "echo done"


def test_comments_are_recorded_with_lines():
    dockerfile = parse("""
        # build image
        FROM alpine:3.20
          # indented comment
        RUN true
    """)
    assert [(c.line, c.text) for c in dockerfile.comments] == [(1, "build image"), (3, "indented comment")]


def test_crlf_line_endings_and_bom():
    dockerfile = parse_dockerfile("\ufeffFROM alpine:3.20\r\nRUN echo a \\\r\n  b\r\n", "x")
    run = dockerfile.stages[0].instructions[1]
    assert run.args == "echo a   b"
    assert dockerfile.line_count == 3


# -- directives and escape -----------------------------------------------------------

def test_parser_directives_only_at_the_top():
    dockerfile = parse("""
        # syntax=docker/dockerfile:1.7
        # check=skip=JSONArgsRecommended
        # escape=\\
        FROM alpine:3.20
        # escape=`
    """)
    assert dockerfile.directives == (("syntax", "docker/dockerfile:1.7"),
                                     ("check", "skip=JSONArgsRecommended"), ("escape", "\\"))
    assert [c.text for c in dockerfile.comments] == ["escape=`"]


def test_directive_after_a_comment_is_only_a_comment():
    dockerfile = parse("""
        # a comment first
        # escape=`
        FROM alpine:3.20
        RUN echo a \\
          b
    """)
    assert dockerfile.directives == ()
    assert dockerfile.stages[0].instructions[1].end_line == 5


def test_backtick_escape_continues_lines_and_keeps_backslashes():
    dockerfile = parse("""
        # escape=`
        FROM mcr.microsoft.com/windows/servercore:ltsc2022
        WORKDIR C:\\app
        RUN powershell -Command `
            Invoke-WebRequest https://example.com/x.zip -OutFile x.zip ; `
            Expand-Archive x.zip
        COPY app\\ C:\\app\\
    """)
    stage = dockerfile.stages[0]
    assert dockerfile.escape == "`"
    workdir, run, copy = stage.instructions[1:]
    assert workdir.words == ("C:\\app",)
    assert (run.line, run.end_line) == (4, 6)
    assert "Expand-Archive" in run.args
    assert copy.words == ("app\\", "C:\\app\\")
    assert run.pipelines == ()     # a Windows base runs cmd, not a POSIX shell


def test_empty_escape_value_is_only_a_comment():
    dockerfile = parse("# escape=\nFROM alpine\n")
    assert dockerfile.directives == () and dockerfile.comments[0].text == "escape="


def test_exec_form_run_is_split_even_when_the_shell_is_not_posix():
    stage = only_stage('FROM mcr.microsoft.com/windows/servercore:ltsc2022\n'
                       'RUN ["curl.exe", "-k", "https://example.com"]\nRUN curl.exe -k https://x\n')
    assert commands(stage.instructions[1]) == [("curl.exe", "-k", "https://example.com")]
    assert stage.instructions[2].pipelines == ()


def test_invalid_escape_directive_is_an_error():
    with pytest.raises(ParseError) as error:
        parse("# escape=x\nFROM alpine\n")
    assert error.value.line == 1


# -- heredocs --------------------------------------------------------------------------

def test_run_heredoc_body_lines_and_commands():
    stage = only_stage("""
        FROM debian:12
        RUN <<EOF
        set -e
        curl -fsSL https://example.com/i.sh | bash
        EOF
        # comment right after the terminator
        USER app
    """)
    run = stage.instructions[1]
    (heredoc,) = run.heredocs
    assert heredoc.delimiter == "EOF" and heredoc.line == 3 and not heredoc.quoted
    assert heredoc.body == "set -e\ncurl -fsSL https://example.com/i.sh | bash\n"
    assert (run.line, run.end_line) == (2, 5)
    assert run.pipelines[1][0].words[0] == "curl" and run.pipelines[1][0].line == 4
    assert run.pipelines[1][1].words == ("bash",)
    assert stage.instructions[2].line == 7


def test_dash_heredoc_strips_tabs_and_quoted_delimiter_disables_expansion():
    stage = only_stage("FROM alpine\nCOPY <<-'EOT' /etc/motd\n\thello $USER\n\t\tindented\n\tEOT\n")
    heredoc = stage.instructions[1].heredocs[0]
    assert heredoc.body == "hello $USER\nindented\n"
    assert heredoc.strip_tabs and heredoc.quoted and heredoc.delimiter == "EOT"
    assert stage.instructions[1].end_line == 5


def test_double_quoted_delimiter_is_quoted():
    stage = only_stage('FROM alpine\nRUN <<"EOF"\necho $HOME\nEOF\n')
    assert stage.instructions[1].heredocs[0].quoted


def test_several_heredocs_on_one_line():
    stage = only_stage("""
        FROM alpine
        COPY <<robots.txt <<humans.txt /usr/share/nginx/html/
        User-agent: *
        robots.txt
        humans
        humans.txt
        RUN true
    """)
    copy = stage.instructions[1]
    assert [h.delimiter for h in copy.heredocs] == ["robots.txt", "humans.txt"]
    assert [h.line for h in copy.heredocs] == [3, 5]
    assert copy.heredocs[1].body == "humans\n"
    assert copy.end_line == 6 and stage.instructions[2].line == 7


def test_heredoc_fed_to_a_shell_is_split_but_one_fed_to_python_is_not():
    stage = only_stage("""
        FROM python:3.12
        RUN <<EOF bash -ex
        sudo apt-get update
        EOF
        RUN python3 <<EOF
        import os; os.system("sudo id")
        EOF
        RUN <<EOF
        #!/usr/bin/env python3
        print("curl x | sh")
        EOF
    """)
    bash_run, python_run, shebang_run = stage.instructions[1:]
    assert ("sudo", "apt-get", "update") in commands(bash_run)
    assert [c.line for c in bash_run.commands() if c.words[0] == "sudo"] == [3]
    assert commands(python_run) == [("python3",)]
    assert shebang_run.pipelines == ()


def test_heredoc_with_redirection_writes_a_file():
    stage = only_stage("FROM alpine\nRUN cat <<EOF > /etc/app.conf && chmod 600 /etc/app.conf\nkey=1\nEOF\n")
    run = stage.instructions[1]
    assert commands(run) == [("cat",), ("chmod", "600", "/etc/app.conf")]
    assert run.heredocs[0].body == "key=1\n"


def test_heredoc_marker_inside_quotes_is_not_a_heredoc():
    stage = only_stage("FROM alpine\nRUN echo '<<EOF'\nUSER app\n")
    assert stage.instructions[1].heredocs == ()
    assert stage.instructions[2].keyword == "USER"


def test_unterminated_heredoc_names_the_opening_line():
    with pytest.raises(ParseError) as error:
        parse("FROM alpine\n\nRUN <<EOF\necho hi\n")
    assert error.value.line == 3
    assert error.value.located().startswith("line 3: unterminated heredoc <<EOF")
    assert "expected a line reading EOF" in error.value.message


# -- exec and shell forms ----------------------------------------------------------------

def test_exec_form_and_invalid_json_falling_back_to_shell_form():
    stage = only_stage("""
        FROM alpine
        ENTRYPOINT ["/bin/app", "--config", "/etc/app.yaml"]
        CMD [not json]
        RUN ["sh", "-c", "curl -s https://example.com | sh"]
    """)
    entrypoint, cmd, run = stage.instructions[1:]
    assert entrypoint.exec_form == ("/bin/app", "--config", "/etc/app.yaml")
    assert cmd.exec_form is None and cmd.words == ("[not", "json]")
    assert run.exec_form == ("sh", "-c", "curl -s https://example.com | sh")
    assert commands(run) == [("sh", "-c", "curl -s https://example.com | sh"),
                             ("curl", "-s", "https://example.com"), ("sh",)]


def test_json_with_non_string_items_is_shell_form():
    stage = only_stage('FROM alpine\nCMD ["a", 1]\n')
    assert stage.instructions[1].exec_form is None


# -- expansion ----------------------------------------------------------------------------

@pytest.mark.parametrize("reference,expected", [
    ("$V", "1.2"), ("${V}", "1.2"), ("${V:-9}", "1.2"), ("${NOPE:-9}", "9"), ("${NOPE-9}", "9"),
    ("${EMPTY:-9}", "9"), ("${EMPTY-9}", ""), ("${V:+alt}", "alt"), ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("\\$V", "$V"), ("'$V'", "$V"), ('"$V"', "1.2"),
    ("${V%.*}", "1"), ("${V#*.}", "2"), ("${NOPE:-${V}}", "1.2"),
])
def test_arg_and_env_expansion_cases(reference, expected):
    stage = only_stage(f"FROM alpine\nARG V=1.2\nENV EMPTY=\nWORKDIR /{reference}\n")
    assert stage.instructions[-1].words == (f"/{expected}",)


def test_unset_variable_expands_to_nothing_and_is_reported():
    stage = only_stage("FROM alpine\nARG TAG\nUSER ${TAG}x$OTHER\n")
    user = stage.instructions[-1]
    assert user.words == ("x",)
    assert user.unresolved == ("TAG", "OTHER")


def test_env_of_the_same_instruction_uses_previous_values():
    stage = only_stage("FROM alpine\nENV A=old\nENV A=new B=$A\n")
    assert stage.instructions[-1].pairs == (("A", "new"), ("B", "old"))


def test_env_forms_legacy_and_quoted():
    stage = only_stage("""
        FROM alpine
        ENV LEGACY hello big world
        ENV A="x y" B='$not' C=plain\\ text
        LABEL org.opencontainers.image.title="My App" version=1
    """)
    legacy, quoted, label = stage.instructions[1:]
    assert legacy.pairs == (("LEGACY", "hello big world"),)
    assert quoted.pairs == (("A", "x y"), ("B", "$not"), ("C", "plain text"))
    assert label.pairs == (("org.opencontainers.image.title", "My App"), ("version", "1"))


def test_global_args_feed_from_but_not_stages_unless_redeclared():
    dockerfile = parse("""
        ARG BASE=alpine:3.20
        ARG VERSION=7
        FROM ${BASE}
        RUN echo hi
        WORKDIR /v$VERSION
        ARG VERSION
        WORKDIR /v$VERSION
    """)
    stage = dockerfile.stages[0]
    assert [a.pairs for a in dockerfile.global_args] == [(("BASE", "alpine:3.20"),), (("VERSION", "7"),)]
    assert stage.base == "alpine:3.20" and stage.base_raw == "${BASE}"
    assert stage.instructions[2].words == ("/v",) and stage.instructions[2].unresolved == ("VERSION",)
    assert stage.instructions[4].words == ("/v7",)


def test_env_wins_over_arg_of_the_same_name():
    stage = only_stage("FROM alpine\nENV MODE=env\nARG MODE=arg\nWORKDIR /$MODE\n")
    assert stage.instructions[-1].words == ("/env",)


def test_unresolvable_from_still_parses():
    dockerfile = parse("ARG IMAGE\nFROM ${IMAGE}\nFROM ${UNSET:-debian}:${TAG}\n")
    first, second = dockerfile.stages
    assert first.base == "" and first.base_raw == "${IMAGE}" and first.base_unresolved == ("IMAGE",)
    assert not first.base_is_resolved
    assert second.base == "debian:" and second.base_unresolved == ("TAG",)


def test_global_arg_default_with_default_modifier_resolves():
    dockerfile = parse("ARG TAG\nFROM alpine:${TAG:-latest}\n")
    assert dockerfile.stages[0].base == "alpine:latest" and dockerfile.stages[0].base_is_resolved


# -- stages -------------------------------------------------------------------------------

def test_stage_references_are_not_images_and_inherit_env():
    dockerfile = parse("""
        FROM golang:1.22 AS Build
        ENV CGO_ENABLED=0 APP=/src
        FROM build AS test
        WORKDIR $APP
        FROM gcr.io/distroless/static:nonroot
        COPY --from=build /out/app /app
    """)
    build, test, final = dockerfile.stages
    assert build.name == "build" and build.parent is None
    assert test.parent == 0 and test.is_stage_reference and test.base == "build"
    assert test.instructions[1].words == ("/src",)
    assert final.parent is None and not final.is_stage_reference
    assert final.instructions[1].flag("from") == "build"
    assert [s.index for s in dockerfile.stage_chain(test)] == [1, 0]


def test_later_stage_name_is_an_image_not_a_reference():
    dockerfile = parse("FROM app AS base\nFROM base\n")
    assert dockerfile.stages[0].parent is None     # `app` names no earlier stage
    assert dockerfile.stages[1].parent == 0


def test_duplicate_stage_name_is_an_error():
    with pytest.raises(ParseError) as error:
        parse("FROM a AS x\nFROM b AS X\n")
    assert error.value.line == 2


def test_platform_flag_keeps_automatic_args_as_written():
    dockerfile = parse("ARG ARCH=arm64\nFROM --platform=$BUILDPLATFORM golang AS b\n"
                       "FROM --platform=linux/$ARCH alpine\n")
    assert dockerfile.stages[0].platform == "$BUILDPLATFORM"
    assert dockerfile.stages[0].instructions[0].unresolved == ("BUILDPLATFORM",)
    assert dockerfile.stages[1].platform == "linux/arm64"


# -- ONBUILD and flags ------------------------------------------------------------------

def test_onbuild_trigger_is_parsed():
    stage = only_stage("FROM node:20\nONBUILD COPY --chown=node . /app\nONBUILD RUN sudo npm ci\n")
    copy, run = stage.instructions[1].trigger, stage.instructions[2].trigger
    assert copy.keyword == "COPY" and copy.flag("chown") == "node" and copy.words == (".", "/app")
    assert run.keyword == "RUN" and commands(run) == [("sudo", "npm", "ci")]


@pytest.mark.parametrize("keyword", ["FROM", "ONBUILD", "MAINTAINER"])
def test_onbuild_of_forbidden_instruction_is_an_error(keyword):
    with pytest.raises(ParseError) as error:
        parse(f"FROM alpine\n\nONBUILD {keyword} x\n")
    assert error.value.line == 3 and keyword in error.value.message


def test_flags_only_at_the_start_and_bare_flags():
    stage = only_stage("""
        FROM alpine
        COPY --link --chmod=0644 --chown=1000:1000 --exclude=*.md --parents ./src/ /app/ --not-a-flag
        ADD --keep-git-dir=true --checksum=sha256:abc https://example.com/x.tgz /x
        RUN --mount=type=cache,target=/var/cache/apk --network=none --security=insecure apk add curl
        HEALTHCHECK --interval=30s --start-period=5s CMD ["curl", "-f", "http://localhost/"]
    """)
    copy, add, run, healthcheck = stage.instructions[1:]
    assert copy.flags == (("link", None), ("chmod", "0644"), ("chown", "1000:1000"),
                          ("exclude", "*.md"), ("parents", None))
    assert copy.flag("link") == "" and copy.flag("from") is None
    assert copy.words == ("./src/", "/app/", "--not-a-flag")
    assert add.flag("keep-git-dir") == "true" and add.flag("checksum") == "sha256:abc"
    assert run.flag("mount") == "type=cache,target=/var/cache/apk" and run.flag("security") == "insecure"
    assert commands(run) == [("apk", "add", "curl")]
    assert healthcheck.flag("start-period") == "5s"
    assert healthcheck.exec_form == ("curl", "-f", "http://localhost/")


def test_flag_values_are_expanded():
    stage = only_stage("FROM alpine\nARG UID=1001\nCOPY --chown=${UID}:${UID} a /a\n")
    assert stage.instructions[-1].flag("chown") == "1001:1001"


# -- other instructions ---------------------------------------------------------------------

def test_instructions_are_case_insensitive_and_simple_ones_have_words():
    stage = only_stage("""
        from alpine:3.20 as Base
        maintainer Jane <jane@example.com>
        expose 22/tcp 80
        healthcheck NONE
        stopsignal SIGTERM
        volume ["/data", "/logs"]
        volume /cache /tmp
        user 1000:1000
        workdir /srv
    """)
    keywords = [i.keyword for i in stage.instructions]
    assert keywords == ["FROM", "MAINTAINER", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL", "VOLUME",
                        "VOLUME", "USER", "WORKDIR"]
    by = stage.instructions
    assert stage.name == "base"
    assert by[2].words == ("22/tcp", "80")
    assert by[3].words == ("NONE",)
    assert by[5].words == ("/data", "/logs") and by[6].words == ("/cache", "/tmp")
    assert by[7].words == ("1000:1000",)


def test_pwsh_shell_stops_splitting_run_bodies():
    stage = only_stage("""
        FROM alpine
        RUN echo posix
        SHELL ["pwsh", "-Command"]
        RUN Invoke-WebRequest https://example.com | Invoke-Expression
        SHELL ["/bin/bash", "-o", "pipefail", "-c"]
        RUN echo again
    """)
    runs = [i for i in stage.instructions if i.keyword == "RUN"]
    assert commands(runs[0]) == [("echo", "posix")]
    assert runs[1].pipelines == ()
    assert commands(runs[2]) == [("echo", "again")]


def test_sh_c_strings_inside_run_are_split_recursively():
    stage = only_stage("""FROM alpine\nRUN su -c "bash -c 'wget -qO- https://x | sh'" app\n""")
    assert ("wget", "-qO-", "https://x") in commands(stage.instructions[1])
    assert ("sh",) in commands(stage.instructions[1])


# -- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,line,expected", [
    ("FROM alpine\n\nFROOM x\n", 3, "unknown instruction 'FROOM'"),
    ("# c\nRUN true\nFROM alpine\n", 2, "RUN before the first FROM"),
    ("FROM\n", 1, "FROM has no image"),
    ("FROM --platform=linux/amd64\n", 1, "FROM has no image"),
    ("FROM a b\n", 1, "malformed FROM"),
    ("FROM alpine\nONBUILD\n", 2, "ONBUILD has no instruction"),
    ("# escape=\\\n# escape=`\nFROM a\n", 2, "only one escape"),
])
def test_structural_errors_name_the_line_and_what_was_expected(text, line, expected):
    with pytest.raises(ParseError) as error:
        parse_dockerfile(text, "Dockerfile")
    assert error.value.line == line
    assert expected in error.value.message
    assert "expected" in error.value.message or "only one" in error.value.message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "ARG X=1\n"])
def test_a_file_without_from_is_an_error(text):
    with pytest.raises(ParseError, match="no FROM instruction: expected"):
        parse_dockerfile(text, "Dockerfile")


def test_global_args_only_before_from():
    dockerfile = parse("ARG A=1\n# c\nARG B=$A\nFROM alpine:$B\n")
    assert dockerfile.stages[0].base == "alpine:1"
    assert [i.keyword for i in dockerfile.instructions()] == ["ARG", "ARG", "FROM"]
