"""`hardrun policy import .hadolint.yaml`: the written policy is valid and changes the
audit as the hadolint configuration changes hadolint's."""
import json

from tests.helpers import DATA

CONFIG = DATA / "hadolint" / "hadolint.yaml"
DOCKERFILE = """\
FROM quay.io/example/app:1.0
USER 10001
HEALTHCHECK CMD ["true"]
RUN cd /src && apt update && apt install -y --no-install-recommends curl \\
 && rm -rf /var/lib/apt/lists/*
RUN echo $1
RUN pip install --no-cache-dir flask
"""


def audit(hardrun, tmp_path, *policy):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(DOCKERFILE)
    result = hardrun("audit", "-f", "json", *policy, str(dockerfile))
    return result.returncode, {(f["rule"], f["severity"]) for f in json.loads(result.stdout)["findings"]}


def test_the_imported_policy_is_valid_and_judges_as_hadolint_is_configured(hardrun, tmp_path):
    written = tmp_path / "policy.yaml"
    result = hardrun("policy", "import", str(CONFIG), "-o", str(written))
    assert result.returncode == 0, result.stderr
    assert hardrun("policy", "validate", str(written)).returncode == 0
    code, before = audit(hardrun, tmp_path)
    code_after, after = audit(hardrun, tmp_path, "--policy", str(written))
    # control: the default policy reports cd, apt at warning, SC2086 and trusts quay.io
    assert {("HR1026", "info"), ("HR1024", "warning"), ("SC2086", "info")} <= before
    assert not any(rule == "HR1021" for rule, _ in before) and code == 1
    # ignored: DL3003 (cd) and SC2086; override: DL3027 (apt) at info
    assert not any(rule in ("HR1026", "SC2086") for rule, _ in after)
    assert ("HR1024", "info") in after
    # hadolint pins versions by default (DL3008 ignored, DL3013 not): HR1021 is on
    assert ("HR1021", "warning") in after
    # trustedRegistries: quay.io is not one of them; failure-threshold: error
    assert ("HR1007", "error") in after and code_after == 1
    text = written.read_text()
    assert "fail-on: error" in text and '  - "registry.example.com:5000"' in text
    assert "#   ignored DL3048: hardrun has no rule for it" in text


def test_the_failure_threshold_decides_the_exit_status(hardrun, tmp_path):
    config = tmp_path / ".hadolint.yaml"
    config.write_text("failure-threshold: error\nignored: [DL3008]\n")
    written = tmp_path / "policy.yaml"
    assert hardrun("policy", "import", str(config), "-o", str(written)).returncode == 0
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text('FROM debian:12\nUSER 10001\nHEALTHCHECK CMD ["true"]\nWORKDIR app\n')
    assert hardrun("audit", str(dockerfile)).returncode == 1       # control: HR1025 warning fails
    assert hardrun("audit", "--policy", str(written), str(dockerfile)).returncode == 0


def test_bad_configuration_is_one_line_naming_file_and_line(hardrun, tmp_path):
    config = tmp_path / ".hadolint.yaml"
    config.write_text("ignored:\n  - DL3008\noverride:\n  fatal: [DL3000]\n")
    result = hardrun("policy", "import", str(config), "-o", "-")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"hardrun policy import: {config}: line 4, column 3: override: unknown key 'fatal' "
        "(expected one of: error, info, style, warning)"]


def test_an_existing_policy_is_not_replaced_without_force(hardrun, tmp_path):
    written = tmp_path / ".hardrun.yaml"
    written.write_text("version: 1\n")
    result = hardrun("policy", "import", str(CONFIG), "-o", str(written))
    assert result.returncode == 2 and "exists: use --force" in result.stderr
    assert written.read_text() == "version: 1\n"
    assert hardrun("policy", "import", str(CONFIG), "-o", str(written), "--force").returncode == 0
    assert written.read_text().startswith("# Imported from")
