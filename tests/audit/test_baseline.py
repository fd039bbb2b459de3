"""`--baseline` / `--write-baseline`: accepted findings stay accepted across edits, new ones fail."""
import datetime
import json
import re

import pytest

from hardrun.audit.baseline import fingerprints, load_baseline
from hardrun.audit.engine import audit
from hardrun.errors import ParseError

DOCKERFILE = "FROM ubuntu\nRUN apt-get update && apt-get install -y curl\nUSER root\n"
COMPOSE = ("services:\n"
           "  web:\n    image: nginx:1.27\n    privileged: true\n"
           "  db:\n    image: postgres:16\n    privileged: true\n")


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    return tmp_path


def _json(result) -> dict:
    return json.loads(result.stdout)


def _line_keys(report) -> list:
    """What a baseline keyed on line numbers would store (the control)."""
    return sorted((f.path, f.rule, f.line) for f in report.findings)


def _audit_in(path):
    import os
    old = os.getcwd()
    os.chdir(path)
    try:
        return audit(["."])
    finally:
        os.chdir(old)


def test_write_baseline_accepts_every_finding_and_exits_0(hardrun, repo):
    plain = hardrun("audit", cwd=repo)
    assert plain.returncode == 1
    result = hardrun("audit", "--write-baseline", "baseline.yaml", "-f", "json", cwd=repo)
    assert result.returncode == 0, result.stderr
    findings = _json(result)["findings"]
    assert findings and {f["baseline"] for f in findings} == {"unchanged"}
    entries = load_baseline(str(repo / "baseline.yaml")).entries
    assert len(entries) == len(findings)


def test_a_line_inserted_above_keeps_accepted_findings_accepted(hardrun, repo):
    assert hardrun("audit", "--write-baseline", "baseline.yaml", cwd=repo).returncode == 0
    before = _audit_in(repo)
    dockerfile = repo / "app" / "Dockerfile"
    dockerfile.write_text("# syntax=docker/dockerfile:1\n# build the app\n" + DOCKERFILE)
    compose = repo / "compose.yaml"
    compose.write_text("# the stack\nname: shop\n" + COMPOSE)
    after = _audit_in(repo)
    # control: every finding of the two edited files moved, so a baseline keyed on line
    # numbers would accept none of them
    edited = [key for key in _line_keys(after) if key[0] in ("app/Dockerfile", "compose.yaml")]
    assert len(edited) > 5 and not set(edited) & set(_line_keys(before))
    result = hardrun("audit", "--baseline", "baseline.yaml", "-f", "json", cwd=repo)
    assert result.returncode == 0, result.stdout
    assert {f["baseline"] for f in _json(result)["findings"]} == {"unchanged"}


def test_reindenting_keeps_accepted_findings_accepted(hardrun, repo):
    assert hardrun("audit", "--write-baseline", "baseline.yaml", cwd=repo).returncode == 0
    (repo / "app" / "Dockerfile").write_text(DOCKERFILE.replace("RUN apt-get update &&",
                                                                "RUN   apt-get update  &&"))
    assert hardrun("audit", "--baseline", "baseline.yaml", cwd=repo).returncode == 0


def test_the_same_finding_in_two_files_never_collapses(hardrun, repo):
    assert hardrun("audit", "--write-baseline", "baseline.yaml", cwd=repo).returncode == 0
    report = _audit_in(repo)
    in_app = [f for f in report.findings if f.path == "app/Dockerfile"]
    in_worker = [f for f in report.findings if f.path == "worker/Dockerfile"]
    # control: the two files' findings are the same but for the path, so a fingerprint
    # without the path would store one entry for both
    assert [(f.rule, f.line, f.evidence) for f in in_app] == [
        (f.rule, f.line, f.evidence) for f in in_worker]
    assert set(fingerprints(in_app)).isdisjoint(fingerprints(in_worker))
    # accept the app's findings only: the worker's are new and fail the run
    baseline = repo / "baseline.yaml"
    entries = baseline.read_text().split("\n- ")
    kept = [entry for entry in entries if '"worker/Dockerfile"' not in entry]
    assert len(kept) < len(entries)
    baseline.write_text("\n- ".join(kept))
    result = hardrun("audit", "--baseline", "baseline.yaml", "-f", "json", cwd=repo)
    assert result.returncode == 1
    states = {(f["path"], f["baseline"]) for f in _json(result)["findings"]}
    assert ("worker/Dockerfile", "new") in states and ("app/Dockerfile", "unchanged") in states
    assert ("worker/Dockerfile", "unchanged") not in states


def test_two_services_with_the_same_line_are_two_entries(repo):
    report = _audit_in(repo)
    by_subject = {}
    for finding, fingerprint in zip(report.findings, fingerprints(report.findings)):
        if finding.path == "compose.yaml" and finding.evidence == "    privileged: true":
            by_subject[finding.subject] = fingerprint
    assert set(by_subject) == {"web", "db"}
    assert len(set(by_subject.values())) == 2


def test_identical_lines_in_one_file_are_told_apart(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM alpine:3.20\nADD a /a\nADD a /a\n")
    report = _audit_in(tmp_path)
    prints = fingerprints(report.findings)
    assert len(set(prints)) == len(prints)


def test_a_new_finding_fails_and_is_the_only_new_one(hardrun, repo):
    assert hardrun("audit", "--write-baseline", "baseline.yaml", cwd=repo).returncode == 0
    with open(repo / "app" / "Dockerfile", "a") as dockerfile:
        dockerfile.write("RUN sudo make install\n")
    result = hardrun("audit", "--baseline", "baseline.yaml", "-f", "json", cwd=repo)
    assert result.returncode == 1
    new = [f for f in _json(result)["findings"] if f["baseline"] == "new"]
    assert new and {f["line"] for f in new} == {4}
    text = hardrun("audit", "--baseline", "baseline.yaml", cwd=repo)
    summary = text.stdout.splitlines()[-1]
    assert summary.startswith("FAIL") and re.search(r"\d+ baselined", summary)
    assert "app/Dockerfile:4" in text.stdout and "(baselined)" in text.stdout


def test_sarif_marks_baseline_state(hardrun, repo):
    assert hardrun("audit", "--write-baseline", "baseline.yaml", cwd=repo).returncode == 0
    with open(repo / "app" / "Dockerfile", "a") as dockerfile:
        dockerfile.write("RUN sudo make install\n")
    result = hardrun("audit", "--baseline", "baseline.yaml", "-f", "sarif", cwd=repo)
    results = _json(result)["runs"][0]["results"]
    states = {r["baselineState"] for r in results}
    assert states == {"unchanged", "new"}
    assert all(r["partialFingerprints"]["hardrun/v1"] for r in results)
    plain = hardrun("audit", "-f", "sarif", cwd=repo)
    assert all("baselineState" not in r for r in _json(plain)["runs"][0]["results"])


def test_junit_skips_baselined_findings(hardrun, repo):
    assert hardrun("audit", "--write-baseline", "baseline.yaml", cwd=repo).returncode == 0
    result = hardrun("audit", "--baseline", "baseline.yaml", "-f", "junit", cwd=repo)
    assert result.returncode == 0
    assert 'failures="0"' in result.stdout and 'message="baselined"' in result.stdout


def test_json_without_baseline_keeps_its_contract(hardrun, repo):
    findings = _json(hardrun("audit", "-f", "json", cwd=repo))["findings"]
    assert all("baseline" not in f and "fingerprint" not in f for f in findings)


def _accept_with(baseline, **fields):
    text = baseline.read_text()
    extra = "".join(f"\n  {key}: {value}" for key, value in fields.items())
    baseline.write_text(re.sub(r"(- fingerprint: [0-9a-f]+)", lambda m: m.group(1) + extra, text))


def test_an_expired_entry_stops_accepting_and_says_so(hardrun, repo):
    assert hardrun("audit", "--write-baseline", "baseline.yaml", cwd=repo).returncode == 0
    baseline = repo / "baseline.yaml"
    yesterday = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    _accept_with(baseline, reason='"legacy image, replaced in Q3"', expires=yesterday)
    result = hardrun("audit", "--baseline", "baseline.yaml", "-f", "json", cwd=repo)
    assert result.returncode == 1
    assert {f["baseline"] for f in _json(result)["findings"]} == {"expired"}
    notices = [line for line in result.stderr.splitlines() if "expired on" in line]
    assert notices and all(re.match(r"hardrun audit: baseline\.yaml:\d+: ", n) for n in notices)
    # control: the same entries with a future date still accept
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    baseline.write_text(baseline.read_text().replace(yesterday, tomorrow))
    assert hardrun("audit", "--baseline", "baseline.yaml", cwd=repo).returncode == 0


def test_rewriting_keeps_reasons_and_expiry(hardrun, repo):
    assert hardrun("audit", "--write-baseline", "baseline.yaml", cwd=repo).returncode == 0
    baseline = repo / "baseline.yaml"
    _accept_with(baseline, reason='"accepted by the platform team"', expires="2099-01-31")
    result = hardrun("audit", "--baseline", "baseline.yaml", "--write-baseline", "baseline.yaml",
                     cwd=repo)
    assert result.returncode == 0
    entries = load_baseline(str(baseline)).entries
    assert {(e.reason, e.expires) for e in entries} == {
        ("accepted by the platform team", datetime.date(2099, 1, 31))}


def test_suppressed_findings_are_not_written(hardrun, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM alpine:3.20\n# hardrun ignore=HR1001 reason='a build image'\nUSER root\n")
    assert hardrun("audit", "--write-baseline", "b.yaml", cwd=tmp_path).returncode == 0
    assert "HR1001" not in (tmp_path / "b.yaml").read_text()


@pytest.mark.parametrize("text, where, expected", [
    ("version: 1\nfindings: [\n", "line 3", "invalid YAML"),
    ("version: 2\nfindings: []\n", "line 1", "version"),
    ("version: 1\nfindings:\n- fingerprint: xyz\n  rule: HR1001\n  path: Dockerfile\n",
     "line 3", "fingerprint"),
    ("version: 1\nfindings:\n- fingerprint: " + "a" * 32 + "\n  rule: HR1001\n  path: D\n"
     "  expires: soon\n", "line 6", "date"),
    ("version: 1\nfindings:\n- fingerprint: " + "a" * 32 + "\n  rule: HR1001\n  path: D\n"
     "  colour: red\n", "line 6", "colour"),
    ("version: 1\nfindings:\n- {fingerprint: " + "a" * 32 + ", rule: R, path: D}\n"
     "- {fingerprint: " + "a" * 32 + ", rule: R, path: E}\n", "line 4", "twice"),
    ("", "line 1", "empty baseline"),
])
def test_a_malformed_baseline_is_one_line_naming_file_and_line(hardrun, repo, text, where, expected):
    (repo / "baseline.yaml").write_text(text)
    result = hardrun("audit", "--baseline", "baseline.yaml", cwd=repo)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"hardrun audit: baseline.yaml: {where}")
    assert expected in lines[0]


def test_a_missing_baseline_is_one_line(hardrun, repo):
    result = hardrun("audit", "--baseline", "nope.yaml", cwd=repo)
    assert result.returncode == 2
    assert result.stderr.startswith("hardrun audit: nope.yaml: ") and len(result.stderr.splitlines()) == 1


def test_load_baseline_raises_a_located_parse_error(tmp_path):
    (tmp_path / "b.yaml").write_text("version: 1\nfindings:\n- rule: HR1001\n")
    with pytest.raises(ParseError) as caught:
        load_baseline(str(tmp_path / "b.yaml"))
    assert caught.value.line == 3


def test_quiet_prints_only_the_summary_line(hardrun, repo):
    result = hardrun("audit", "--quiet", cwd=repo)
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1 and result.stdout.startswith("FAIL: 3 files audited")
    loud = hardrun("audit", cwd=repo)
    assert loud.stdout.splitlines()[-1] == result.stdout.strip()
    written = hardrun("audit", "-q", "-f", "json", "-o", "r.json", cwd=repo)
    assert written.stdout == result.stdout and json.loads((repo / "r.json").read_text())["findings"]
    refused = hardrun("audit", "-q", "-f", "json", cwd=repo)
    assert refused.returncode == 2 and "-o FILE" in refused.stderr
