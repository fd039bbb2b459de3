"""Output formats, exit codes and suppressions of `hardrun audit`."""
import json
import os
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import DATA
from tests.helpers import CLEAN_DOCKERFILE, ROOT_DOCKERFILE, hardrun_env, read_until_closed, rule_for


@pytest.fixture
def project(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(ROOT_DOCKERFILE)
    (tmp_path / "clean.Dockerfile").write_text(CLEAN_DOCKERFILE)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "Dockerfile").write_text("FROM alpine:3.20\nRUN <<EOF\necho never ends\n")
    return tmp_path


def test_json_follows_the_contract(hardrun, project):
    result = hardrun("audit", "-f", "json", ".", cwd=project)
    assert result.returncode == 2            # a file could not be parsed
    document = json.loads(result.stdout)
    assert set(document) == {"tool", "files", "findings", "errors"}
    assert document["tool"]["name"] == "hardrun"
    assert {"path": "app/Dockerfile", "kind": "dockerfile"} in document["files"]
    assert [e["path"] for e in document["errors"]] == ["broken/Dockerfile"]
    assert document["errors"][0]["message"].startswith("line 2: unterminated heredoc <<EOF")
    keys = {"rule", "practice", "severity", "path", "line", "subject", "message", "suppressed"}
    for finding in document["findings"]:
        assert set(finding) == keys
        assert finding["severity"] in ("error", "warning", "info")
        assert finding["line"] is None or finding["line"] >= 1
        assert finding["subject"] is None
    root = [f for f in document["findings"] if f["practice"] == "root-user"]
    assert [f["path"] for f in root] == ["app/Dockerfile"]
    assert root[0]["line"] == 1


def test_exit_status_never_depends_on_format(hardrun, project):
    codes = {fmt: hardrun("audit", "-f", fmt, "app", cwd=project).returncode
             for fmt in ("text", "json", "sarif", "junit")}
    assert set(codes.values()) == {1}


def test_exit_codes(hardrun, project):
    assert hardrun("audit", "clean.Dockerfile", cwd=project).returncode == 0
    assert hardrun("audit", "app/Dockerfile", cwd=project).returncode == 1
    assert hardrun("audit", "broken/Dockerfile", cwd=project).returncode == 2
    assert hardrun("audit", "missing/Dockerfile", cwd=project).returncode == 2
    assert hardrun("audit", "--format", "yaml", ".", cwd=project).returncode == 2


def test_fail_on_threshold(hardrun, tmp_path):
    # Only an informational finding (no HEALTHCHECK) remains.
    (tmp_path / "Dockerfile").write_text(CLEAN_DOCKERFILE.replace('HEALTHCHECK CMD ["true"]\n', ""))
    assert hardrun("audit", "--fail-on", "info", ".", cwd=tmp_path).returncode == 1
    assert hardrun("audit", ".", cwd=tmp_path).returncode == 0


def test_text_format(hardrun, project):
    result = hardrun("audit", "app/Dockerfile", cwd=project)
    rule = rule_for("root-user")
    assert f"app/Dockerfile:1 {rule} error " in result.stdout
    assert "\033[" not in result.stdout            # no colour when not on a terminal
    assert result.stdout.splitlines()[-1].startswith("FAIL: 1 file audited")
    coloured = hardrun("audit", "--color", "app/Dockerfile", cwd=project)
    assert "\033[31merror" in coloured.stdout


def _audit_on_a_terminal(project, *flags) -> str:
    """`hardrun audit` with its standard output on a pseudo-terminal (colour's default)."""
    import pty
    import subprocess
    import sys
    primary, secondary = pty.openpty()
    subprocess.run([sys.executable, "-m", "hardrun", "audit", *flags, "app/Dockerfile"],
                   stdout=secondary, stderr=subprocess.DEVNULL, cwd=project, env=hardrun_env(), timeout=60)
    os.close(secondary)
    output = read_until_closed(primary)
    os.close(primary)
    return output.decode()


def test_no_color_switches_off_colour_on_a_terminal(project):
    assert "\033[31merror" in _audit_on_a_terminal(project)    # control: a terminal gets colour
    plain = _audit_on_a_terminal(project, "--no-color")
    assert "error" in plain and "\033[" not in plain


def test_broken_file_does_not_stop_the_others(hardrun, project):
    result = hardrun("audit", ".", cwd=project)
    assert "broken/Dockerfile: error: line 2: unterminated heredoc <<EOF" in result.stdout
    assert "app/Dockerfile:1" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_output_file(hardrun, project):
    result = hardrun("audit", "-f", "json", "-o", "report.json", "app", cwd=project)
    assert result.returncode == 1 and result.stdout == ""
    assert json.loads((project / "report.json").read_text())["findings"]
    text = hardrun("audit", "--output", "report.txt", "app", cwd=project)
    assert text.returncode == 1 and text.stdout == ""
    assert f"app/Dockerfile:1 {rule_for('root-user')} error" in (project / "report.txt").read_text()


def test_stdin(hardrun):
    result = hardrun("audit", "-f", "json", "-", input=ROOT_DOCKERFILE)
    document = json.loads(result.stdout)
    assert document["files"] == [{"path": "<stdin>", "kind": "dockerfile"}]
    assert any(f["practice"] == "root-user" for f in document["findings"])


def test_sarif_validates_against_the_schema(hardrun, project):
    import jsonschema   # a test dependency: missing, the test fails rather than skips
    schema = json.loads((DATA / "sarif" / "sarif-schema-2.1.0.json").read_text())
    result = hardrun("audit", "-f", "sarif", ".", cwd=project)
    document = json.loads(result.stdout)
    jsonschema.Draft4Validator(schema).validate(document)
    results = document["runs"][0]["results"]
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    notes = document["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["message"]["text"].startswith("line 2: unterminated heredoc <<EOF")


# SARIF 2.1.0 §3.27.10: error, warning, note (written here, not read from the formatter)
SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def test_sarif_level_of_each_severity(hardrun, tmp_path):
    """root-user (error), copy-all (warning), no-healthcheck (info): each result and each
    rule carries its severity's SARIF level."""
    (tmp_path / "Dockerfile").write_text("FROM alpine:3.20\nCOPY . /app\n")
    document = json.loads(hardrun("audit", "-f", "json", ".", cwd=tmp_path).stdout)
    severity = {f["rule"]: f["severity"] for f in document["findings"]}
    assert set(severity.values()) == set(SARIF_LEVELS), severity
    run = json.loads(hardrun("audit", "-f", "sarif", ".", cwd=tmp_path).stdout)["runs"][0]
    results = run["results"]
    assert {r["ruleId"] for r in results} == set(severity)
    for result in results:
        assert result["level"] == SARIF_LEVELS[severity[result["ruleId"]]], result
    for rule in run["tool"]["driver"]["rules"]:
        if rule["id"] in severity:
            assert rule["defaultConfiguration"]["level"] == SARIF_LEVELS[severity[rule["id"]]], rule


def test_junit_is_well_formed(hardrun, project):
    result = hardrun("audit", "-f", "junit", ".", cwd=project)
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    assert int(root.get("failures")) >= 1 and root.get("errors") == "1"
    failures = root.findall(".//failure")
    assert any("app/Dockerfile:1" in (f.text or "") for f in failures)


def test_line_suppression_keeps_the_finding_marked(hardrun, tmp_path):
    rule = rule_for("root-user")
    (tmp_path / "Dockerfile").write_text(
        f'# hardrun ignore={rule} reason="distroless nonroot tag sets the user"\n' + ROOT_DOCKERFILE)
    document = json.loads(hardrun("audit", "-f", "json", ".", cwd=tmp_path).stdout)
    root = [f for f in document["findings"] if f["rule"] == rule]
    assert root and all(f["suppressed"] for f in root)
    sarif = json.loads(hardrun("audit", "-f", "sarif", ".", cwd=tmp_path).stdout)
    suppressed = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == rule]
    assert suppressed[0]["suppressions"][0]["justification"] == "distroless nonroot tag sets the user"


def test_global_suppression(hardrun, tmp_path):
    rule = rule_for("root-user")
    (tmp_path / "Dockerfile").write_text(ROOT_DOCKERFILE + f"# hardrun global ignore={rule} reason=x\n")
    document = json.loads(hardrun("audit", "-f", "json", ".", cwd=tmp_path).stdout)
    covered = [f for f in document["findings"] if f["rule"] == rule]
    assert covered and all(f["suppressed"] for f in covered)
    assert not [f for f in document["findings"] if f["rule"] == "HR0001"]


def test_unknown_rule_in_suppression_is_an_error(hardrun, tmp_path):
    (tmp_path / "Dockerfile").write_text("# hardrun ignore=HR9999 reason=x\n" + ROOT_DOCKERFILE)
    result = hardrun("audit", "-f", "json", ".", cwd=tmp_path)
    assert result.returncode == 2
    error = json.loads(result.stdout)["errors"][0]
    assert error["message"].startswith("line 1: unknown rule id HR9999")


def test_suppression_that_matches_nothing_is_reported(hardrun, tmp_path):
    rule = rule_for("curl-pipe-shell")
    (tmp_path / "Dockerfile").write_text(f"FROM alpine:3.20\n# hardrun ignore={rule} reason=x\nRUN true\n")
    document = json.loads(hardrun("audit", "-f", "json", ".", cwd=tmp_path).stdout)
    unused = [f for f in document["findings"] if f["rule"] == "HR0001"]
    assert unused and unused[0]["line"] == 2 and rule in unused[0]["message"]


def test_no_fail_reports_but_exits_zero(hardrun, project):
    result = hardrun("audit", "--no-fail", "app/Dockerfile", cwd=project)
    assert result.returncode == 0 and "root" in result.stdout.lower()
    assert hardrun("audit", "--no-fail", "broken/Dockerfile", cwd=project).returncode == 2


# -- -o never writes through what is planted under its name ---------------------------

OUTPUT_COMMANDS = {
    "audit -o": ("audit", "-f", "sarif", "--no-fail", "-o", "{out}", "."),
    "export -o": ("export", "--to", "docker-run", "-o", "{out}"),
    "export --seccomp-out": ("export", "--to", "docker-run", "--seccomp-out", "{out}"),
}


def _command(name, out):
    return [arg.replace("{out}", out) for arg in OUTPUT_COMMANDS[name]]


@pytest.mark.parametrize("name", OUTPUT_COMMANDS)
def test_output_symlink_planted_in_the_repository_is_refused(hardrun, project, tmp_path_factory, name):
    victim = tmp_path_factory.mktemp("victim") / "important"
    victim.write_text("precious\n")
    planted = project / "hardrun.sarif"
    planted.symlink_to(victim)
    # control: a plain open follows the planted link and overwrites the victim
    with open(planted, "w") as stream:
        stream.write("overwritten\n")
    assert victim.read_text() == "overwritten\n"
    victim.write_text("precious\n")
    result = hardrun(*_command(name, "hardrun.sarif"), cwd=project)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "hardrun.sarif is a symbolic link: refusing to write through it" in result.stderr
    assert victim.read_text() == "precious\n" and planted.is_symlink()


@pytest.mark.parametrize("name", OUTPUT_COMMANDS)
def test_output_through_a_directory_symlink_planted_in_the_repository_is_refused(
        hardrun, project, tmp_path_factory, name):
    victim_dir = tmp_path_factory.mktemp("victim")
    (project / "reports").symlink_to(victim_dir)
    # control: a plain open follows the planted directory link out of the repository
    with open(project / "reports" / "probe", "w") as stream:
        stream.write("x")
    assert (victim_dir / "probe").exists()
    (victim_dir / "probe").unlink()
    result = hardrun(*_command(name, "reports/hardrun.sarif"), cwd=project)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "reports leads through a symbolic link" in result.stderr
    assert list(victim_dir.iterdir()) == []
    # the same path written absolute, as CI passes it ($PWD/reports/…): refused too
    result = hardrun(*_command(name, str(project / "reports" / "hardrun.sarif")), cwd=project)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{project / 'reports'} leads through a symbolic link" in result.stderr
    assert list(victim_dir.iterdir()) == []
    # the real directory named by its absolute path is the caller's own choice: written
    result = hardrun(*_command(name, str(victim_dir / "hardrun.sarif")), cwd=project)
    assert "Traceback" not in result.stderr and (victim_dir / "hardrun.sarif").is_file()


def test_absolute_output_below_the_current_directory_as_the_shell_names_it(
        hardrun, project, tmp_path_factory):
    """$PWD may name the current directory through a symlink (/home -> /data/home): an
    absolute output path under that name is below the current directory too."""
    victim_dir = tmp_path_factory.mktemp("victim")
    (project / "reports").symlink_to(victim_dir)
    alias = tmp_path_factory.mktemp("alias") / "checkout"
    alias.symlink_to(project)
    out = str(alias / "reports" / "hardrun.sarif")
    # control: under the resolved name alone, the path does not look below the current
    # directory, and a plain open follows the planted link
    assert os.path.relpath(out, os.path.realpath(project)).startswith("..")
    with open(alias / "reports" / "probe", "w") as stream:
        stream.write("x")
    (victim_dir / "probe").unlink()
    result = hardrun(*_command("audit -o", out), cwd=alias, env={"PWD": str(alias)})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "leads through a symbolic link" in result.stderr
    assert list(victim_dir.iterdir()) == []


@pytest.mark.parametrize("name", OUTPUT_COMMANDS)
def test_output_over_a_hard_link_replaces_the_name_only(hardrun, project, tmp_path_factory, name):
    victim = tmp_path_factory.mktemp("victim") / "important"
    victim.write_text("precious\n")
    linked = project / "out.json"
    try:
        os.link(victim, linked)
    except OSError:                      # tmp dirs on different filesystems: same dir then
        victim = project / "important"
        victim.write_text("precious\n")
        os.link(victim, linked)
    # control: a plain open writes through the hard link into the victim
    with open(linked, "r+") as stream:
        stream.write("over")
    assert victim.read_text().startswith("over")
    victim.write_text("precious\n")
    result = hardrun(*_command(name, "out.json"), cwd=project)
    assert result.returncode in (0, 2) and "Traceback" not in result.stderr
    assert victim.read_text() == "precious\n"
    assert linked.read_text() != "precious\n" and os.stat(linked).st_nlink == 1
    assert not [p for p in os.listdir(project) if p.endswith(".tmp")]


def test_output_fifo_is_refused_without_blocking(hardrun, project):
    os.mkfifo(project / "report.txt")
    result = hardrun("audit", "-o", "report.txt", ".", cwd=project, timeout=60)
    assert result.returncode == 2
    assert "hardrun audit: report.txt is a FIFO: refusing to write through it" in result.stderr


def test_output_to_a_new_and_to_an_existing_file(hardrun, project):
    (project / "old.json").write_text("stale\n")
    for out in ("new.json", "old.json"):
        result = hardrun("audit", "-f", "json", "-o", out, ".", cwd=project)
        assert result.returncode == 2 and result.stdout == ""
        assert json.loads((project / out).read_text())["tool"]["name"] == "hardrun"


# -- control characters from audited files never reach the terminal -------------------

ESCAPES = "\x1b[2J\x1b]0;pwned\x07"


@pytest.fixture
def hostile(tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM alpine{ESCAPES}\nUSER app\n")
    (tmp_path / f"x{ESCAPES}.Dockerfile").write_text(f"FROM alpine:3.20\n{ESCAPES}BOGUS x\n")
    return tmp_path


def test_escape_sequences_are_escaped_in_text_and_junit(hardrun, hostile):
    # control: the finding, the error and the path carry the raw sequences (JSON escapes them)
    document = json.loads(hardrun("audit", "-f", "json", ".", cwd=hostile).stdout)
    assert any(ESCAPES in f["message"] for f in document["findings"])
    assert ESCAPES in document["errors"][0]["path"]
    text = hardrun("audit", "--no-color", ".", cwd=hostile).stdout
    junit = hardrun("audit", "-f", "junit", ".", cwd=hostile).stdout
    for output in (text, junit):
        assert not any(ord(char) < 32 and char != "\n" or 0x7f <= ord(char) < 0xa0 for char in output)
        assert "alpine\\x1b[2J\\x1b]0;pwned\\x07" in output
    assert "x\\x1b[2J\\x1b]0;pwned\\x07.Dockerfile: error: line 2: unknown instruction" in text
    ET.fromstring(junit)                 # control characters would make it invalid XML


def test_colours_are_still_ours(hardrun, hostile):
    text = hardrun("audit", "--color", ".", cwd=hostile).stdout
    assert "\x1b[33mwarning\x1b[0m" in text and "\x1b[2J" not in text


def test_the_json_findings_template_writes_what_the_generic_writer_writes():
    """formats/json.py writes a plain finding from one template: the same bytes as the
    generic writer (and json.dumps) for every shape a finding takes."""
    from hardrun.audit.findings import Finding, ImageLocation, Report
    from hardrun.audit.formats.json import _findings, _list, render_json
    plain = Finding("HR2001", "least-privilege", "error", "dir/compose.yaml", 3, "web", "runs as root")
    shapes = [
        plain,
        Finding("HR1001", "pinning", "warning", "Dockerfile", None, None, "no USER \u00e9\u2603 \"q\"\n\\"),
        Finding("HR1020", "shellcheck", "info", "Dockerfile", 2, None, "SC2086", suppressed=True, column=5),
        Finding("HR2001", "least-privilege", "error", "a.yaml", 1, "x", "m", baseline="new", fingerprint="ab"),
        Finding("HR4001", "secrets", "error", "img", None, None, "key",
                image=ImageLocation("alpine", "sha256:" + "0" * 64, 1, "sha256:" + "1" * 64, "/etc/x", None)),
        Finding("HR2002", "least-privilege", "warning", "dir/compose.yaml", 7, "web", "runs as root",
                suppressed=True, suppression_reason="ok"),
    ]
    assert _findings(shapes) == _list(f.as_json() for f in shapes)
    assert _findings([]) == _list([]) == "[]"
    document = json.loads(render_json(Report(findings=shapes)))
    assert render_json(Report(findings=shapes)) == json.dumps(document, indent=2) + "\n"
