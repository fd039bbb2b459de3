"""The command-line surface: version, help, rules, explain, completion."""
from hardrun import __version__


def test_version(hardrun):
    result = hardrun("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_lists_commands_and_examples(hardrun):
    result = hardrun("--help")
    assert result.returncode == 0
    for word in ("audit", "rules", "explain", "Examples:", "_HARDRUN_COMPLETE"):
        assert word in result.stdout


def test_rules_lists_every_rule(hardrun):
    from hardrun.audit.rules import all_rules
    result = hardrun("rules")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.splitlines()}
    assert listed == set(all_rules())


def test_rules_practice_lists_only_that_practice(hardrun):
    from hardrun.audit.rules import all_rules
    result = hardrun("rules", "--practice", "copy-all")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.splitlines()}
    assert listed == {r.id for r in all_rules().values() if r.practice == "copy-all"} != set()


def test_rules_unknown_practice_is_a_usage_error(hardrun):
    result = hardrun("rules", "--practice", "copy-al")
    assert result.returncode == 2
    assert "copy-al" in result.stderr and "Traceback" not in result.stderr


def test_explain_prints_the_rule_file(hardrun):
    from hardrun.audit.rules import all_rules
    rule = all_rules()["HR0001"]
    result = hardrun("explain", "hr0001")
    assert result.returncode == 0
    assert rule.title in result.stdout
    assert rule.why.splitlines()[0] in result.stdout
    assert "Bad (dockerfile)" in result.stdout and "Good (dockerfile)" in result.stdout


def test_explain_unknown_rule_is_a_usage_error(hardrun):
    result = hardrun("explain", "HR9999")
    assert result.returncode == 2
    assert "HR9999" in result.stderr
    assert "Traceback" not in result.stderr


def test_bash_completion_script(hardrun):
    result = hardrun(env={"_HARDRUN_COMPLETE": "bash_source"})
    assert result.returncode == 0
    assert "complete" in result.stdout and "_hardrun_completion" in result.stdout


def test_completion_offers_subcommands(hardrun):
    result = hardrun(env={"_HARDRUN_COMPLETE": "bash_complete", "COMP_WORDS": "hardrun au",
                          "COMP_CWORD": "1"})
    assert "audit" in result.stdout


def test_completion_knows_run_and_its_flags(hardrun):
    commands = hardrun(env={"_HARDRUN_COMPLETE": "bash_complete", "COMP_WORDS": "hardrun ru",
                            "COMP_CWORD": "1"})
    assert "plain,run" in commands.stdout.splitlines()
    flags = hardrun(env={"_HARDRUN_COMPLETE": "bash_complete",
                         "COMP_WORDS": "hardrun run -u app --cap", "COMP_CWORD": "4"})
    assert {"plain,--cap-add", "plain,--cap-drop"} <= set(flags.stdout.splitlines())


def test_run_through_the_click_group_is_hardrun_run():
    from click.testing import CliRunner
    from hardrun.cli import cli
    done = CliRunner().invoke(cli, ["run", "--dry-run", "-h", "box", "--", "sh", "-c", "true"])
    assert done.exit_code == 0, done.output
    assert '"hostname": "box"' in done.output        # -h is --hostname, as in `hardrun run`
    refused = CliRunner().invoke(cli, ["run", "--detach", "--", "true"])
    assert refused.exit_code == 125 and "unknown flag: --detach" in refused.output
