"""The GitHub Action (action.yml) and the GitLab CI template (ci/gitlab/): their
structure, and their shell steps run here as the CI services would run them (inputs
and variables set as they set them), installing hardrun from a copy of this checkout
with no network (conftest.py's wheelhouse)."""
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.ci.conftest import copy_checkout
from tests.helpers import DATA, ROOT

BAD_DOCKERFILE = "FROM ubuntu\nUSER root\nRUN apt-get install -y curl\n"
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
GITLAB_FILE = ROOT / "ci" / "gitlab" / "hardrun.gitlab-ci.yml"
GITLAB = yaml.safe_load(GITLAB_FILE.read_text())
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def _codeclimate_schema() -> dict:
    return json.loads((DATA / "codeclimate" / "gitlab-code-quality.schema.json").read_text())


def _sarif_schema() -> dict:
    return json.loads((DATA / "sarif" / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture
def workspace(tmp_path):
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "Dockerfile").write_text(BAD_DOCKERFILE)
    (repo / "worker").mkdir()
    (repo / "worker" / "Dockerfile").write_text(BAD_DOCKERFILE)
    return repo


def _clean_env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "INPUT_", "GITHUB_", "RUNNER_", "HARDRUN_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


# --- GitHub Action ---------------------------------------------------------------

def _substitute(text: str, inputs: dict, action_path: Path) -> str:
    """`${{ … }}` replaced as the runner does for the expressions the action uses."""
    def value(match):
        expression = match.group(1)
        if expression.startswith("inputs."):
            return inputs[expression[len("inputs."):]]
        if expression == "github.action_path":
            return str(action_path)
        raise AssertionError(f"an expression this test does not evaluate: {expression}")
    return EXPRESSION.sub(value, text)


def _inputs(**given) -> dict:
    """Every input: the given ones (key spelt with _ for -), the others at their default."""
    values = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    values.update({name.replace("_", "-"): value for name, value in given.items()})
    return values


def _run_step(step: dict, inputs: dict, action: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """One composite step as the runner runs a `shell: bash` step: its script in a file,
    `bash --noprofile --norc -eo pipefail FILE`, with the step's env; (result, outputs)."""
    assert step["shell"] == "bash"
    script = action["temp"] / "step.sh"
    script.write_text(_substitute(step["run"], inputs, action["path"]))
    output = action["temp"] / "github_output"
    output.write_text("")
    env = {name: _substitute(str(value), inputs, action["path"])
           for name, value in (step.get("env") or {}).items()}
    env.update(RUNNER_TEMP=str(action["temp"]), GITHUB_OUTPUT=str(output),
               GITHUB_ACTION_PATH=str(action["path"]), GITHUB_WORKSPACE=str(cwd), **action["pip"])
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                            cwd=cwd, env=_clean_env(env), capture_output=True, text=True, timeout=600)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return result, outputs


@pytest.fixture(scope="module")
def action(tmp_path_factory, offline_pip_env):
    """The action's checkout and its runner temp with the install step already run."""
    base = tmp_path_factory.mktemp("action")
    setup = {"path": copy_checkout(base / "action"), "temp": base / "runner-temp", "pip": offline_pip_env}
    setup["temp"].mkdir()
    install = ACTION["runs"]["steps"][0]
    result, _ = _run_step(install, _inputs(), setup, base)
    assert result.returncode == 0, result.stdout + result.stderr
    return setup


def _audit_step() -> dict:
    return next(step for step in ACTION["runs"]["steps"] if step.get("id") == "audit")


def test_action_is_composite_and_every_step_names_its_shell():
    assert ACTION["runs"]["using"] == "composite"
    for step in ACTION["runs"]["steps"]:
        assert step.get("shell") == "bash" and step.get("run")


def test_action_inputs_used_are_declared_and_declared_are_used():
    used = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", (ROOT / "action.yml").read_text()))
    assert used == set(ACTION["inputs"])
    assert set(ACTION["inputs"]) >= {"path", "policy", "format", "fail-on", "output-file",
                                     "baseline", "no-fail"}


def test_action_outputs_come_from_the_audit_step():
    for output in ACTION["outputs"].values():
        assert re.fullmatch(r"\$\{\{ steps\.audit\.outputs\.[\w-]+ \}\}", output["value"])


def test_action_inputs_never_pasted_into_a_script():
    for step in ACTION["runs"]["steps"]:
        assert not EXPRESSION.search(step["run"]), step["name"]


def test_action_and_template_scripts_pass_shellcheck(tmp_path):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (scripts/setup.sh --test installs it)"
    scripts = [(step["run"], "bash") for step in ACTION["runs"]["steps"]]
    scripts.append(("\n".join(GITLAB["hardrun-audit"]["script"]), "sh"))
    for index, (script, shell) in enumerate(scripts):
        path = tmp_path / f"{index}.sh"
        path.write_text(script)
        result = subprocess.run([shellcheck, "-s", shell, str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_action_defaults_write_sarif_and_fail_on_findings(action, workspace):
    result, outputs = _run_step(_audit_step(), _inputs(), action, workspace)
    assert result.returncode == 1, result.stderr
    assert outputs == {"exit-code": "1", "output-file": "hardrun.sarif"}
    assert result.stdout.startswith("FAIL: 2 files audited") and len(result.stdout.splitlines()) == 1
    sarif = json.loads((workspace / "hardrun.sarif").read_text())
    jsonschema.validate(sarif, _sarif_schema())
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in sarif["runs"][0]["results"]} == {"app/Dockerfile", "worker/Dockerfile"}


def test_action_no_fail_and_fail_on(action, workspace):
    result, outputs = _run_step(_audit_step(), _inputs(no_fail="true"), action, workspace)
    assert result.returncode == 0 and outputs["exit-code"] == "0"
    # only info findings would remain below error? the Dockerfile has errors: fail-on error fails
    result, outputs = _run_step(_audit_step(), _inputs(fail_on="error"), action, workspace)
    assert result.returncode == 1
    (workspace / "app" / "Dockerfile").write_text("FROM alpine:3.20\nUSER 10001\n")
    result, _ = _run_step(_audit_step(), _inputs(fail_on="error", path="app"), action, workspace)
    assert result.returncode == 0, result.stdout


def test_action_baseline_accepts_todays_findings(action, workspace):
    hardrun = action["temp"] / "hardrun-venv" / "bin" / "hardrun"
    written = subprocess.run([str(hardrun), "audit", "--write-baseline", "baseline.yaml", "-q"],
                             cwd=workspace, capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    result, _ = _run_step(_audit_step(), _inputs(baseline="baseline.yaml"), action, workspace)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((workspace / "hardrun.sarif").read_text())["runs"][0]["results"]
    assert {r["baselineState"] for r in results} == {"unchanged"}


def test_action_policy_and_paths(action, workspace):
    result, _ = _run_step(_audit_step(), _inputs(policy="nope", path="app"), action, workspace)
    assert result.returncode == 2 and "nope" in result.stderr
    result, _ = _run_step(_audit_step(), _inputs(path="app worker", format="json", output_file=""),
                          action, workspace)
    assert result.returncode == 1
    assert {f["path"] for f in json.loads(result.stdout)["findings"]} == {"app/Dockerfile",
                                                                          "worker/Dockerfile"}


def test_action_input_cannot_inject_shell(action, workspace):
    hostile = "app $(touch injected) `touch injected2`"
    result, _ = _run_step(_audit_step(), _inputs(path=hostile), action, workspace)
    assert result.returncode == 2          # the odd words are paths that do not exist
    assert not (workspace / "injected").exists() and not (workspace / "injected2").exists()
    # control: the same input pasted into a script, as `run: hardrun audit ${{ inputs.path }}` does
    naive = {"shell": "bash", "run": "echo ${{ inputs.path }}"}
    _run_step(naive, _inputs(path=hostile), action, workspace)
    assert (workspace / "injected").exists()


# --- GitLab CI template ----------------------------------------------------------

@pytest.fixture(scope="module")
def gitlab_checkout(tmp_path_factory):
    return copy_checkout(tmp_path_factory.mktemp("gitlab") / "hardrun")


def _run_gitlab_job(workspace: Path, builds: Path, pip_env: dict, spec: Path, **variables):
    """The job's script entries in one `sh -e` session, as a runner runs them, with the
    template's variables (and the given ones) in the environment; `python` on PATH as
    in the job's python image."""
    job = GITLAB["hardrun-audit"]
    tools = builds / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    if not (tools / "python").exists():
        (tools / "python").symlink_to(sys.executable)
    env = {**GITLAB["variables"], "HARDRUN_PIP_SPEC": str(spec), **variables, **pip_env,
           "CI_BUILDS_DIR": str(builds), "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["sh", "-e", "-c", "\n".join(job["script"])], cwd=workspace,
                          env=_clean_env(env), capture_output=True, text=True, timeout=600)


def test_gitlab_job_declares_its_reports():
    job = GITLAB["hardrun-audit"]
    reports = job["artifacts"]["reports"]
    script = "\n".join(job["script"])
    assert f"--output {reports['codequality']}" in script and "--format codeclimate" in script
    assert f"--output {reports['junit']}" in script and "--format junit" in script
    assert job["artifacts"]["when"] == "always"
    used = set(re.findall(r"\$\{?(HARDRUN_\w+)", script))
    assert used == set(GITLAB["variables"])


def test_gitlab_job_writes_code_quality_and_junit(tmp_path, workspace, offline_pip_env, gitlab_checkout):
    result = _run_gitlab_job(workspace, tmp_path / "builds", offline_pip_env, gitlab_checkout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("FAIL: 2 files audited")
    issues = json.loads((workspace / "gl-code-quality-report.json").read_text())
    jsonschema.validate(issues, _codeclimate_schema())
    findings = json.loads(subprocess.run(
        [str(tmp_path / "builds" / "hardrun-venv" / "bin" / "hardrun"), "audit", "-f", "json"],
        cwd=workspace, capture_output=True, text=True).stdout)["findings"]
    assert len(issues) == len(findings)
    junit = ET.parse(workspace / "hardrun-junit.xml").getroot()
    assert int(junit.get("failures")) == len(findings)
    # no-fail: the job passes, and both reports are still written
    (workspace / "gl-code-quality-report.json").unlink()
    result = _run_gitlab_job(workspace, tmp_path / "builds", offline_pip_env, gitlab_checkout,
                             HARDRUN_NO_FAIL="true")
    assert result.returncode == 0 and (workspace / "gl-code-quality-report.json").exists()
    # a baseline: the job passes, and the baselined findings stay in Code Quality with
    # the baseline's fingerprints
    hardrun = str(tmp_path / "builds" / "hardrun-venv" / "bin" / "hardrun")
    subprocess.run([hardrun, "audit", "--write-baseline", "b.yaml", "-q"], cwd=workspace, check=True,
                   capture_output=True)
    result = _run_gitlab_job(workspace, tmp_path / "builds", offline_pip_env, gitlab_checkout,
                             HARDRUN_BASELINE="b.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    issues = json.loads((workspace / "gl-code-quality-report.json").read_text())
    assert len(issues) == len(findings)
    assert {i["fingerprint"] for i in issues} == set(
        re.findall(r"fingerprint: (\w+)", (workspace / "b.yaml").read_text()))




# --- the codeclimate format itself -----------------------------------------------

def test_codeclimate_output_validates_and_maps_severities(hardrun, workspace):
    (workspace / "compose.yaml").write_text("services:\n  web:\n    image: nginx\n    privileged: true\n")
    (workspace / "broken.Dockerfile").write_text("FROM alpine\nRUN <<EOF\n")
    result = hardrun("audit", "-f", "codeclimate", cwd=workspace)
    assert result.returncode == 2
    issues = json.loads(result.stdout)
    jsonschema.validate(issues, _codeclimate_schema())
    report = json.loads(hardrun("audit", "-f", "json", cwd=workspace).stdout)
    expected = {"error": "critical", "warning": "major", "info": "info"}
    by_key = {(i["location"]["path"], i["location"]["lines"]["begin"], i["check_name"]): i["severity"]
              for i in issues}
    for finding in report["findings"]:
        assert by_key[(finding["path"], finding["line"] or 1, finding["rule"])] == expected[finding["severity"]]
    assert [i for i in issues if i["severity"] == "blocker"][0]["location"]["path"] == "broken.Dockerfile"
    assert len({i["fingerprint"] for i in issues}) == len(issues)


def test_codeclimate_schema_rejects_what_gitlab_rejects():
    # control: the schema is not vacuous
    schema = _codeclimate_schema()
    good = {"description": "d", "check_name": "c", "fingerprint": "f", "severity": "minor",
            "location": {"path": "a", "lines": {"begin": 1}}}
    jsonschema.validate([good], schema)
    for bad in ({**good, "severity": "warning"}, {k: v for k, v in good.items() if k != "fingerprint"},
                {**good, "location": {"path": "a"}}, {**good, "location": {"path": "./a", "lines": {"begin": 1}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate([bad], schema)
