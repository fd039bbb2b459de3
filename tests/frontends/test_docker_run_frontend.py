"""The docker-run front end: run commands found in scripts, Makefiles, CI YAML, Markdown."""
import json
import os
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

from hardrun.errors import HardrunError, ParseError
from hardrun.frontends import detect_kind
from hardrun.frontends.detect import Peek, detect_docker_run
from hardrun.frontends.docker_run import claims, parse
from hardrun.parsing.shell_words import Snippet, commands


def specs(text, path="run.sh"):
    return parse(textwrap.dedent(text), path)


def summary(text, path="run.sh"):
    return [(s.line, s.subject) for s in specs(text, path)]


# --------------------------------------------------------------------------- scripts

def test_simple_commands_and_subjects():
    found = specs("""\
        #!/bin/sh
        docker run nginx:1.27
        podman run --rm alpine:3.20 echo hi
        docker container run -d redis:7
        docker create busybox
        nerdctl run -it debian:12 bash
        sudo -E docker run -u 1000 node:22
        docker ps
        docker build -t x .
        """)
    assert [(s.line, s.subject, s.image) for s in found] == [
        (2, "docker run nginx:1.27", "nginx:1.27"),
        (3, "podman run alpine:3.20", "alpine:3.20"),
        (4, "docker container run redis:7", "redis:7"),
        (5, "docker create busybox", "busybox"),
        (6, "nerdctl run debian:12", "debian:12"),
        (7, "docker run node:22", "node:22"),
    ]
    assert found[1].command == ("echo", "hi")
    assert found[5].user == "1000"
    assert all(s.kind == "docker-run" and s.path == "run.sh" for s in found)


def test_continuation_lines_keep_each_flag_line():
    (spec,) = specs("""\
        set -e
        docker run \\
          --privileged \\
          -v /:/host:ro \\
          -p 8080:80 \\
          -e A=1 \\
          --device /dev/fuse \\
          nginx:1.27 \\
          nginx -g 'daemon off;'
        """)
    assert spec.line == 2
    assert spec.lines["privileged"] == 3
    assert spec.mounts[0].line == 4
    assert spec.ports[0].line == 5
    assert spec.env[0].line == 6
    assert spec.lines["device:0"] == 7
    assert spec.lines["image"] == 8
    assert spec.command == ("nginx", "-g", "daemon off;")


def test_quoting():
    (spec,) = specs("""\
        docker run -e "MSG=hello world" -e 'RAW=$NOT_EXPANDED' -e A=\\"q\\" --name "my app" \\
          -l "x=a b" alpine:3.20 sh -c "echo \\"hi\\"; docker run fake"
        """)
    assert [(e.name, e.value) for e in spec.env] == [("MSG", "hello world"),
                                                     ("RAW", "$NOT_EXPANDED"), ("A", '"q"')]
    assert spec.name == "my app"
    assert spec.command == ("sh", "-c", 'echo "hi"; docker run fake')


def test_variables_are_not_values_or_images():
    (spec,) = specs("""\
        docker run -e $FOO -v "$PWD":/src -m ${MEM:-512m} "$IMAGE" --privileged
        """)
    assert spec.env[0].name == "$FOO"
    assert spec.mounts[0].source == "$PWD" and spec.mounts[0].type == "bind"
    assert spec.memory is None and "memory" in spec.unresolved
    assert spec.image == "$IMAGE" and "image" in spec.unresolved
    assert spec.subject == "docker run $IMAGE"
    assert not spec.privileged   # after the image: the command's argument


def test_unknown_flag_makes_the_image_uncertain():
    (spec,) = specs("docker run --some-new-flag value nginx\n")
    assert "image" in spec.unresolved


def test_pipelines_chains_and_substitutions():
    found = specs("""\
        ID=$(docker run -d nginx:1.27) && docker logs "$ID" | grep ok
        docker pull a:1 && docker run a:1 || echo failed; docker run b:1 &
        echo "`docker run c:1`"
        if docker run d:1; then :; fi
        for i in 1 2; do docker run e:1; done
        time env A=1 timeout 5 docker run f:1
        cat <(docker run g:1)
        """)
    assert [(s.line, s.image) for s in found] == [
        (1, "nginx:1.27"), (2, "a:1"), (2, "b:1"), (3, "c:1"), (4, "d:1"), (5, "e:1"),
        (6, "f:1"), (7, "g:1")]


def test_shell_c_strings_are_scripts():
    found = specs("""\
        sudo bash -ec "docker run --privileged a:1 && docker run b:1"
        sh -c 'exec docker run c:1'
        ssh -c aes128-ctr host "docker run remote-arg:1"
        docker run alpine:3.20 sh -c "docker run inside-the-container:1"
        """)
    assert [(s.line, s.image) for s in found] == [(1, "a:1"), (1, "b:1"), (2, "c:1"),
                                                  (4, "alpine:3.20")]
    assert found[0].privileged


def test_shell_c_scripts_after_other_options():
    """The script is the first operand after the options, as for Dockerfile RUN lines."""
    found = specs("""\
        bash -o pipefail -c 'docker run a:1'
        sh -e -c -- "docker run b:1"
        sh -x script.sh -c "docker run not-a-script:1"
        """)
    assert [(s.line, s.image) for s in found] == [(1, "a:1"), (2, "b:1")]


def test_redirections_and_comments_are_not_arguments():
    (spec,) = specs("""\
        # docker run commented:1
        docker run alpine:3.20 echo hi > out.log 2>&1 # docker run nope:1
        """)
    assert spec.command == ("echo", "hi")


def test_heredocs_are_skipped_unless_fed_to_a_shell():
    found = specs("""\
        cat <<EOF
        docker run not-a-command:1
        EOF
        ssh host <<'EOF'
        docker run remote:1
        EOF
        docker run after:1
        """)
    assert [(s.line, s.image) for s in found] == [(5, "remote:1"), (7, "after:1")]


def test_prefix_commands_and_their_options():
    found = specs("""\
        sudo -Eu root docker run a:1
        sudo -uroot docker run b:1
        sudo --user=root -- docker run c:1
        env -u HOME -i A=1 docker run d:1
        timeout -s KILL 30 docker run e:1
        nice -n 5 nohup docker run f:1
        sudo
        """)
    assert [s.image for s in found] == ["a:1", "b:1", "c:1", "d:1", "e:1", "f:1"]


def test_global_options_before_run():
    found = specs("""\
        docker -H tcp://build:2376 --tls run a:1
        docker --context prod run b:1
        podman --remote --connection x run c:1
        nerdctl -n k8s.io run d:1
        """)
    assert [s.image for s in found] == ["a:1", "b:1", "c:1", "d:1"]


def test_unterminated_quote_in_a_script_is_a_parse_error():
    with pytest.raises(ParseError) as caught:
        specs('#!/bin/sh\necho ok\ndocker run -e "A=1 alpine\n')
    assert caught.value.line == 3 and "unterminated double quote" in str(caught.value)


def test_podman_rootfs_switch():
    (spec,) = specs("podman run --rootfs /srv/root /bin/sh\n")
    assert spec.image == "/srv/root" and spec.command == ("/bin/sh",)


# --------------------------------------------------------------------------- Makefiles

def test_makefile_recipes():
    found = specs("""\
        IMAGE ?= app:1
        DOCKER = docker run --privileged ignored:1
        define HELP
        \tdocker run in-define:1
        endef

        test:
        \t@docker run --rm -v $(CURDIR):/src:ro $(IMAGE) make check
        \t-docker run \\
        \t  -u $$(id -u) \\
        \t  busybox:1.36 true
        \t$(DOCKER) run skipped:1
        """, path="Makefile")
    assert [(s.line, s.image) for s in found] == [(8, "$(IMAGE)"), (9, "busybox:1.36")]
    assert found[0].mounts[0].source == "$(CURDIR)"
    assert found[1].user == "$(id -u)" and found[1].lines["user"] == 10


# --------------------------------------------------------------------------- Markdown

def test_markdown_code_blocks():
    found = specs("""\
        # Usage

        Run it with docker run (not in a block).

        ```sh
        $ docker run -p 8080:80 web:1.0
        ```

        ```console
        $ docker run --rm \\
        >   -e A=1 alpine:3.20 env
        A=1
        docker run output-line:1
        ```

        ```python
        os.system("docker run python-block:1")
        ```

        ~~~
        docker run nolang:1
        ~~~

        - list item:
          ```bash
          docker run indented:1
          ```
        """, path="README.md")
    assert [(s.line, s.image) for s in found] == [
        (6, "web:1.0"), (10, "alpine:3.20"), (21, "nolang:1"), (26, "indented:1")]
    assert found[1].env[0].line == 11


def test_markdown_unbalanced_quote_does_not_fail():
    found = specs("""\
        ```
        echo "it's
        ```
        ```sh
        docker run ok:1
        ```
        """, path="README.md")
    assert [s.image for s in found] == ["ok:1"]


# --------------------------------------------------------------------------- CI YAML

def test_github_actions_lines():
    text = """\
        name: ci
        on: push
        jobs:
          test:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: docker run --rm alpine:3.20 true
              - name: block
                run: |
                  echo start
                  docker run \\
                    --privileged \\
                    app:1
              - name: folded
                run: >
                  docker run
                  --network host
                  folded:1
              - run: "docker run -v /:/host quoted:1"
              - shell: pwsh
                run: docker run `
                  --rm powershell:1
              - shell: bash -e {0}
                run: docker run bash-step:1
        """
    found = specs(text, path=".github/workflows/ci.yml")
    assert [(s.line, s.image) for s in found] == [(8, "alpine:3.20"), (12, "app:1"),
                                                  (17, "folded:1"), (20, "quoted:1"),
                                                  (25, "bash-step:1")]
    assert found[1].lines["privileged"] == 13
    assert found[2].lines["namespace:network"] == 18
    assert found[2].lines["image"] == 19


def test_github_expressions_are_unresolved_values():
    from hardrun.audit.engine import AuditOptions, audit_text
    text = ("jobs:\n  a:\n    steps:\n      - run: docker run -e TOKEN=${{ secrets.TOKEN }} "
            "-u ${{ env.UID }} ${{ env.IMAGE }} echo\n")
    (spec,) = specs(text, path=".github/workflows/x.yml")
    assert spec.image == "${{ env.IMAGE }}" and spec.env[0].value == "${{ secrets.TOKEN }}"
    found = {f.practice for f in audit_text(text, "docker-run", ".github/workflows/x.yml",
                                            AuditOptions())}
    assert not found & {"secret", "run-as-root", "untrusted-base", "unpinned-digest"}


def test_gitlab_ci_lines():
    text = """\
        .docker: &docker
          before_script:
            - docker info
        build:
          <<: *docker
          image: docker:27
          script:
            - docker run --rm -v /var/run/docker.sock:/var/run/docker.sock tool:1
            - |
              docker run \\
                -p 2375:2375 dind:1
          after_script: docker run cleanup:1
        """
    found = specs(text, path=".gitlab-ci.yml")
    assert [(s.line, s.image) for s in found] == [(8, "tool:1"), (10, "dind:1"), (12, "cleanup:1")]
    assert found[1].ports[0].line == 11


def test_yaml_aliases_are_visited_once():
    text = "a: &x\n  script: [docker run one:1]\nb: *x\nc: *x\n"
    assert [s.image for s in specs(text, path=".gitlab-ci.yml")] == ["one:1"]


def test_alias_bombs_are_not_expanded():
    lines = ["a0: &a0 [docker run x:1]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    lines.append("script: *a39")
    assert [s.image for s in specs("\n".join(lines) + "\n", path=".gitlab-ci.yml")] == ["x:1"]


@pytest.mark.parametrize("pure", [False, True])
def test_absurd_nesting_is_a_parse_error(monkeypatch, pure):
    import yaml
    from hardrun.parsing import yamlsafe
    if pure:
        monkeypatch.setattr(yamlsafe, "LOADER", yaml.SafeLoader)
    with pytest.raises(ParseError, match="invalid YAML"):
        specs("script: docker run x:1\na: " + "[" * 5000 + "]" * 5000 + "\n", path=".gitlab-ci.yml")


def test_invalid_ci_yaml_is_a_parse_error():
    with pytest.raises(ParseError) as caught:
        specs("jobs:\n  x: [docker run a:1\n", path=".github/workflows/ci.yml")
    assert caught.value.line is not None


# --------------------------------------------------------------------------- detection

def detect(path, head=None):
    """The registry's docker-run detector for `path` (head: its first 4 KiB if read)."""
    return detect_docker_run(os.path.basename(path), Peek(path, head))


@pytest.mark.parametrize("path,kind", [
    ("run.sh", "docker-run"), ("scripts/deploy.bash", "docker-run"), ("Makefile", "docker-run"),
    ("build/rules.mk", "docker-run"), ("README.md", "docker-run"),
    (".github/workflows/ci.yml", "docker-run"), (".gitlab-ci.yml", "docker-run"),
    ("app/config.yml", None), ("main.py", None), ("notes.txt", None),
])
def test_detect_by_name(path, kind):
    assert detect(path, "") == kind


def test_detect_shebang_only_for_names_without_extension(tmp_path):
    script = tmp_path / "entrypoint"
    script.write_text("#!/usr/bin/env bash\ndocker run x:1\n")
    assert detect(str(script)) == "docker-run"            # reads the head itself
    assert detect_kind(str(script)) == "docker-run"
    assert detect("tool", "#!/bin/dash\n") == "docker-run"
    assert detect("tool", "#!/usr/bin/python3\n") is None
    assert detect("tool.py", "#!/bin/sh\n") is None


def test_claims_only_files_with_run_commands():
    assert claims("docker run a:1\n", "run.sh")
    assert not claims("echo docker is nice; run tests\n", "run.sh")
    assert not claims("# Build with docker build, then run it.\n", "README.md")
    assert not claims("```sh\ndocker build .\n```\nRun it.\n", "README.md")


def test_walking_a_tree_reports_only_files_with_run_lines(tmp_path):
    from hardrun.audit.engine import audit
    (tmp_path / "with.sh").write_text("docker run --privileged alpine:3.20\n")
    (tmp_path / "without.sh").write_text("echo docker and run but no command\n")
    (tmp_path / "README.md").write_text("Nothing here.\n")
    (tmp_path / "tool").write_text("#!/bin/sh\nexec docker run -d nginx\n")
    (tmp_path / "data").write_bytes(b"\x00\x01binary")
    report = audit([str(tmp_path)])
    shown = sorted(f.path.rsplit("/", 1)[-1] for f in report.files)
    assert shown == ["tool", "with.sh"]
    assert not report.errors
    privileged = [f for f in report.findings if f.practice == "privileged"]
    assert [(f.line, f.subject) for f in privileged] == [(1, "docker run alpine:3.20")]


def test_fixture_tree_end_to_end(hardrun):
    from tests.helpers import DATA
    result = hardrun("audit", "-f", "json", ".", cwd=DATA / "docker-run")
    document = json.loads(result.stdout)
    assert sorted(f["path"] for f in document["files"]) == [
        ".github/workflows/ci.yml", "Makefile", "README.md", "deploy.sh"]
    assert document["errors"] == []
    found = {(f["path"], f["line"], f["practice"]) for f in document["findings"]}
    assert {("deploy.sh", 43, "privileged"), ("deploy.sh", 44, "host-namespace"),
            ("deploy.sh", 45, "sensitive-host-mount"), ("deploy.sh", 46, "socket-mount"),
            ("deploy.sh", 47, "secret"), ("deploy.sh", 48, "untrusted-base"),
            (".github/workflows/ci.yml", 20, "host-namespace"),
            (".github/workflows/ci.yml", 26, "publish-all-interfaces"),
            (".github/workflows/ci.yml", 29, "socket-mount"),
            ("Makefile", 14, "publish-all-interfaces"),
            ("README.md", 12, "secret")} <= found
    # the hardened web container (inside `$(…)`, lines 27-37) breaks no run practice
    web = {practice for p, line, practice in found if p == "deploy.sh" and 27 <= line <= 37}
    assert web == set()
    # `$IMAGE` and `$DB_IMAGE` are not judged; the Makefile's `$(DOCKER_RUN)` is no command
    assert not [f for f in document["findings"] if f["practice"] == "untrusted-base"
                and f["subject"] in ("docker run $IMAGE", "docker run $DB_IMAGE")]
    assert result.returncode == 1


def test_command_line_option(hardrun):
    result = hardrun("audit", "-f", "json", "--docker-run",
                     "docker run --privileged -v /:/host alpine sh")
    document = json.loads(result.stdout)
    assert document["files"] == [{"path": "<command-line>", "kind": "docker-run"}]
    practices = {f["practice"] for f in document["findings"]}
    assert {"privileged", "sensitive-host-mount", "rw-volume", "untrusted-base"} <= practices
    assert all(f["path"] == "<command-line>" and f["line"] == 1
               and f["subject"] == "docker run alpine" for f in document["findings"])
    assert result.returncode == 1


def test_command_line_option_without_a_run_command(hardrun):
    result = hardrun("audit", "-f", "json", "--docker-run", "docker build -t x .")
    document = json.loads(result.stdout)
    assert document["errors"] == [{"path": "<command-line>", "message":
                                   "expected a docker run, docker create, podman run or "
                                   "nerdctl run command"}]
    assert result.returncode == 2


def test_command_line_option_with_a_bad_line(hardrun):
    result = hardrun("audit", "-f", "json", "--docker-run", "docker run -e 'A=1 alpine")
    document = json.loads(result.stdout)
    assert document["errors"] == [{"path": "<command-line>",
                                   "message": "line 1: unterminated single quote"}]
    assert result.returncode == 2


# --------------------------------------------------------------------------- lexer and fuzz

def test_lexer_words_and_lines():
    words = commands(Snippet("a 'b c'\\\n d\"e\"f $X ${Y:-z} $(g h) `i`\n", 5))
    first = [(w.text, w.line, w.unresolved) for w in words[-1]]
    assert ("g", 6, False) in [(w.text, w.line, w.unresolved) for w in words[0]]
    assert first == [("a", 5, False), ("b c", 5, False), ("def", 6, False), ("$X", 6, True),
                     ("${Y:-z}", 6, True), ("$(g h)", 6, True), ("`i`", 6, True)]


def test_deep_nesting_does_not_recurse_forever():
    text = "echo " + "$(" * 200 + "docker run x:1" + ")" * 200 + "\n"
    parse(text, "run.sh")   # no RecursionError


SHELLISH = st.lists(st.sampled_from([
    "docker", "run", "podman", "sudo", "-v", "/:/x", "-e", "A=b", "$X", "${Y", "$(", ")", "`",
    "'", '"', "\\", "\n", " ", "|", "&&", ";", "<<EOF", "EOF", "#", "-p", "80:80", "--rm",
    "alpine", "\t", "```", "```sh", "$ ", "run:", "script:", "- ", "  ", "|\n", ":", "{", "}",
]), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(SHELLISH | st.text(max_size=80),
       st.sampled_from(["run.sh", "Makefile", "README.md", ".github/workflows/ci.yml", "<x>"]))
def test_fuzz_extractor_raises_only_hardrun_errors(text, path):
    try:
        for spec in parse(text, path):
            assert spec.kind == "docker-run" and spec.line >= 1
    except HardrunError as error:
        assert "\n" not in str(error)
