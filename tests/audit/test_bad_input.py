"""Bad input is normal input: each gets one clear line naming file and line."""
import json
import os

import pytest

from tests.helpers import ROOT_DOCKERFILE


def _errors(hardrun, cwd, *paths):
    result = hardrun("audit", "-f", "json", *paths, cwd=cwd)
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def test_binary_file(hardrun, tmp_path):
    (tmp_path / "Dockerfile").write_bytes(b"FROM alpine\n\x00\x01\x02")
    code, document = _errors(hardrun, tmp_path, "Dockerfile")
    assert code == 2
    assert document["errors"] == [{"path": "Dockerfile", "message": "line 2: binary file (NUL byte), not a text file"}]


def test_invalid_utf8_names_the_line(hardrun, tmp_path):
    (tmp_path / "Dockerfile").write_bytes(b"FROM alpine:3.20\nRUN echo \xff\xfe\n")
    code, document = _errors(hardrun, tmp_path, "Dockerfile")
    assert code == 2
    assert document["errors"][0]["message"] == "line 2: invalid UTF-8 (byte 0xff)"


def test_huge_file(hardrun, tmp_path):
    with open(tmp_path / "Dockerfile", "wb") as stream:
        stream.write(b"FROM alpine:3.20\n")
        stream.write(b"RUN true\n" * (50 * 1024 * 1024 // 9))
    code, document = _errors(hardrun, tmp_path, "Dockerfile")
    assert code == 2
    assert "file too large" in document["errors"][0]["message"]


def test_unreadable_file_does_not_stop_others(hardrun, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Dockerfile").write_text(ROOT_DOCKERFILE)
    os.symlink("/nonexistent/target", tmp_path / "Dockerfile")
    code, document = _errors(hardrun, tmp_path, ".")
    assert code == 2
    assert [e["path"] for e in document["errors"]] == ["Dockerfile"]
    assert any(f["path"] == "a/Dockerfile" for f in document["findings"])


def test_directory_of_ten_thousand_files(hardrun, tmp_path):
    for index in range(10_000):
        directory = tmp_path / f"d{index // 100}"
        directory.mkdir(exist_ok=True)
        name = "Dockerfile" if index % 1000 == 0 else f"file{index}.txt"
        (directory / name).write_text(ROOT_DOCKERFILE if name == "Dockerfile" else "x\n")
    code, document = _errors(hardrun, tmp_path, ".")
    assert code == 1
    assert len(document["files"]) == 10
    assert not document["errors"]


def test_ignored_directories_are_not_walked(hardrun, tmp_path):
    for ignored in (".git", "node_modules", "vendor"):
        (tmp_path / ignored).mkdir()
        (tmp_path / ignored / "Dockerfile").write_text(ROOT_DOCKERFILE)
    (tmp_path / "Dockerfile.prod").write_text(ROOT_DOCKERFILE)
    (tmp_path / "api.dockerfile").write_text(ROOT_DOCKERFILE)
    (tmp_path / "Containerfile").write_text(ROOT_DOCKERFILE)
    code, document = _errors(hardrun, tmp_path, ".")
    assert sorted(f["path"] for f in document["files"]) == ["Containerfile", "Dockerfile.prod", "api.dockerfile"]


def test_explicit_file_with_an_unusual_name_is_sniffed(hardrun, tmp_path):
    (tmp_path / "build-prod").write_text(ROOT_DOCKERFILE)
    (tmp_path / "notes.txt").write_text("hello\n")
    code, document = _errors(hardrun, tmp_path, "build-prod", "notes.txt")
    assert {"path": "build-prod", "kind": "dockerfile"} in document["files"]
    assert document["errors"][0]["path"] == "notes.txt"
    assert "use --kind" in document["errors"][0]["message"]


# -- special files: FIFOs and devices are never read, reads are bounded --------------

MAX_FILE_BYTES = 8 * 1024 * 1024     # the documented cap

def _blocks(read, seconds=1.0):
    """Whether `read()` is still blocked after `seconds` (it runs in a daemon thread)."""
    import threading
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(seconds)
    return thread.is_alive()


def _unblock(fifo):
    """Open the FIFO for writing once and close it: a reader blocked on it sees EOF."""
    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_fifo_named_dockerfile_is_refused_at_once_and_the_others_audited(hardrun, tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(ROOT_DOCKERFILE)
    fifo = tmp_path / "Dockerfile"
    os.mkfifo(fifo)
    # control: a plain reader (the old one) blocks on it for ever
    assert _blocks(lambda: open(fifo, "rb").read())
    _unblock(fifo)
    code, document = _errors(hardrun, tmp_path, ".")    # run_hardrun's timeout: it cannot hang
    assert code == 2
    assert document["errors"] == [{"path": "Dockerfile", "message": "not a regular file (a FIFO)"}]
    assert any(f["path"] == "app/Dockerfile" for f in document["findings"])


def test_device_given_or_linked_is_refused_without_reading(hardrun, tmp_path):
    os.symlink("/dev/zero", tmp_path / "build.Dockerfile")
    # control: the old size check saw st_size 0 and the file reads on past the cap
    assert os.stat(tmp_path / "build.Dockerfile").st_size == 0
    with open(tmp_path / "build.Dockerfile", "rb") as stream:
        assert len(stream.read(MAX_FILE_BYTES + 1)) == MAX_FILE_BYTES + 1
    for target in ("build.Dockerfile", "/dev/zero"):
        result = hardrun("audit", "-f", "json", "--kind", "dockerfile", target, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert json.loads(result.stdout)["errors"] == [
            {"path": target, "message": "not a regular file (a character device)"}]


def test_standard_input_is_bounded(hardrun, tmp_path):
    line = "RUN true\n"
    fits = "FROM alpine:3.20\n" + line * ((MAX_FILE_BYTES - 17) // len(line))
    assert len(fits) <= MAX_FILE_BYTES
    # control: just under the cap, standard input is audited
    assert hardrun("audit", "-f", "json", "--no-fail", "-", input=fits).returncode == 0
    result = hardrun("audit", "-", input=fits + line)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "<stdin>: file too large (8 MiB; the limit is 8 MiB)" in result.stderr


@pytest.mark.parametrize("special", ["fifo", "device"])
def test_every_reader_of_user_named_files_refuses_special_files(tmp_path, special):
    """The class: every reader of a file a user names goes through the bounded reader."""
    from hardrun.errors import HardrunError
    from hardrun.frontends.compose import parse_compose
    from hardrun.frontends.docker_runspec import read_env_file
    from hardrun.frontends.hardrun_config import read_run_config
    from hardrun.policy import load_policy
    from hardrun.policy.export import export_spec, seccomp_profile_data
    from hardrun.runtime.seccomp_profile import load_profile
    from hardrun.userfiles import read_text
    path = tmp_path / "input.yaml"
    if special == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)
    extends = f"services:\n  web:\n    extends:\n      file: {path}\n      service: base\n"
    readers = {
        "audit": lambda: read_text(str(path)),
        "policy": lambda: load_policy(str(path)),
        "run config": lambda: read_run_config(str(path)),
        "seccomp profile": lambda: load_profile(str(path)),
        "export --seccomp-out": lambda: seccomp_profile_data(
            export_spec(load_policy("default"), None, None).evolve(seccomp=str(path))),
        "env file": lambda: read_env_file(str(path)),
        "compose extends": lambda: parse_compose(extends, str(tmp_path / "compose.yaml")),
    }
    # policies and compose `extends` check the name first (is_file, no /dev/ path)
    refusal = {"policy": "nor a file",
               "compose extends": "not a file" if special == "fifo" else "not a compose file"}
    for what, read in readers.items():
        outcome = []

        def attempt():
            try:
                read()
                outcome.append("read")
            except HardrunError as error:
                outcome.append(str(error))
        assert not _blocks(attempt, 10), what
        assert len(outcome) == 1 and refusal.get(what, "not a regular file") in outcome[0], (what, outcome)
    if special == "fifo":
        # control: the same FIFO blocks a plain reader
        assert _blocks(lambda: open(path, "rb").read())
        _unblock(path)


# -- a walk stays inside the tree it was given ----------------------------------------

def test_symlink_out_of_the_tree_is_not_followed_nor_quoted(hardrun, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret-first-line\nmore\n")
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "sub" / "real.Dockerfile").write_text(ROOT_DOCKERFILE)
    os.symlink("../outside.txt", repo / "Dockerfile")
    os.symlink("sub/real.Dockerfile", repo / "Containerfile")   # inside the tree: followed
    os.symlink("../outside.txt", repo / "notes.txt")            # not auditable by name: silent
    # control: read as a Dockerfile, the outside file's first line is quoted in the error
    control = hardrun("audit", "-f", "json", "--kind", "dockerfile", str(outside), cwd=repo)
    assert "secret-first-line" in control.stdout
    result = hardrun("audit", "-f", "json", ".", cwd=repo)
    assert result.returncode == 2 and "secret-first-line" not in result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["errors"] == [{"path": "Dockerfile", "message": (
        "symbolic link to a file outside the audited directory: not followed "
        "(name the file itself to audit it)")}]
    assert {f["path"] for f in document["files"]} == {"Containerfile", "sub/real.Dockerfile"}


def _extending(base_file):
    return f"services:\n  web:\n    extends:\n      file: {base_file}\n      service: base\n"


TOKEN_BASE = 'services:\n  base:\n    image: "TOKEN-abc123"\n    privileged: true\n'


def test_compose_extends_out_of_the_audited_tree_is_not_read(hardrun, tmp_path):
    from hardrun.audit.engine import AuditOptions, audit_text
    (tmp_path / "token.yaml").write_text(TOKEN_BASE)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "inside.yaml").write_text(TOKEN_BASE.replace("TOKEN-abc123", "alpine:3.20"))
    (repo / "compose.yaml").write_text(_extending(tmp_path / "token.yaml"))
    (repo / "docker-compose.yml").write_text(_extending("inside.yaml"))
    os.symlink("../token.yaml", repo / "linked.yaml")
    (repo / "compose.override.yaml").write_text(_extending("linked.yaml"))
    # control: without a root to stay in, the outside file is read and quoted in findings
    unconfined = audit_text(_extending(tmp_path / "token.yaml"), "compose", "compose.yaml",
                            AuditOptions())
    assert any("TOKEN-abc123" in (f.message or "") for f in unconfined)
    for audited in (["."], ["compose.yaml", "compose.override.yaml", "docker-compose.yml"]):
        result = hardrun("audit", "-f", "json", *audited, cwd=repo)
        assert result.returncode == 2 and "TOKEN" not in result.stdout + result.stderr
        document = json.loads(result.stdout)
        assert sorted((e["path"], e["message"]) for e in document["errors"]) == [
            ("compose.override.yaml", "line 3: `extends` names linked.yaml, which is outside "
             "the audited directory: not followed"),
            ("compose.yaml", f"line 3: `extends` names {tmp_path / 'token.yaml'}, which is "
             "outside the audited directory: not followed")]
        # control: an extends inside the tree is still followed (its privileged: true counts)
        assert any(f["path"] == "docker-compose.yml" and f["practice"] == "privileged"
                   for f in document["findings"]), document["findings"]


def test_named_compose_file_extends_within_the_current_directory(hardrun, tmp_path):
    (tmp_path / "token.yaml").write_text(TOKEN_BASE)
    repo = tmp_path / "repo"
    (repo / "svc").mkdir(parents=True)
    (repo / "common.yaml").write_text(TOKEN_BASE.replace("TOKEN-abc123", "alpine:3.20"))
    (repo / "svc" / "compose.yaml").write_text(_extending("../common.yaml"))
    (repo / "svc" / "up.yaml").write_text(_extending("../../token.yaml"))
    code, document = _errors(hardrun, repo, "svc/compose.yaml", "svc/up.yaml")
    assert code == 2 and [e["path"] for e in document["errors"]] == ["svc/up.yaml"]
    assert "outside the audited directory" in document["errors"][0]["message"]
    # control: named from the parent directory, the same file may read token.yaml
    code, document = _errors(hardrun, tmp_path, "repo/svc/up.yaml")
    assert not document["errors"] and "TOKEN-abc123" in json.dumps(document["findings"])


def test_error_in_an_extended_file_names_that_file_not_its_content(hardrun, tmp_path):
    from hardrun.errors import ParseError
    from hardrun.frontends.compose import parse_compose
    bad = "services:\n  base:\n    image: alpine:3.20\n    labels: {a: SECRET-VALUE\n"
    (tmp_path / "base.yaml").write_text(bad)
    (tmp_path / "compose.yaml").write_text(_extending("base.yaml"))
    with pytest.raises(ParseError) as direct:     # control: the position is in base.yaml
        parse_compose(bad, "base.yaml")
    code, document = _errors(hardrun, tmp_path, "compose.yaml")
    assert code == 2 and "SECRET" not in json.dumps(document)
    assert document["errors"] == [{"path": "compose.yaml", "message": (
        f"line 3: base.yaml, named by `extends`, has an error at line {direct.value.line}, "
        f"column {direct.value.column} (not shown)")}]


def test_dockerignore_out_of_the_audited_tree_is_not_read(hardrun, tmp_path):
    from hardrun.audit.engine import _dockerignore
    (tmp_path / "outside-ignore").write_text("secret-pattern\n")
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "Dockerfile").write_text(ROOT_DOCKERFILE)
    os.symlink("../outside-ignore", repo / ".dockerignore")
    (repo / "sub" / "Dockerfile").write_text(ROOT_DOCKERFILE)
    (repo / "sub" / "ignore").write_text(".git\n")
    os.symlink("ignore", repo / "sub" / ".dockerignore")        # inside the tree: followed
    # control: without a root, the outside file's patterns are read
    assert _dockerignore(str(repo / "Dockerfile"), None) == ("secret-pattern",)
    for audited in (["."], ["Dockerfile", "sub/Dockerfile"]):
        code, document = _errors(hardrun, repo, *audited)
        assert code == 2 and "secret" not in json.dumps(document)
        assert document["errors"] == [{"path": "Dockerfile", "message": (
            ".dockerignore leads outside the audited directory: not followed")}]
        assert any(f["path"] == "sub/Dockerfile" for f in document["findings"])


# -- a parser that runs out of stack or memory, or fails unexpectedly, loses only its file --------------------

@pytest.mark.parametrize("exhausted, raised, message", [
    (RecursionError, RecursionError,
     "nested too deeply to audit (a parser's recursion limit was reached)"),
    (MemoryError, MemoryError, "too large to audit (out of memory)"),
    (lambda: KeyError("spec"), KeyError,
     "internal error while auditing this file (KeyError: 'spec'); please report it")])
def test_parser_exhaustion_is_the_files_error(monkeypatch, tmp_path, exhausted, raised, message):
    from hardrun import frontends
    from hardrun.audit.engine import audit
    (tmp_path / "Dockerfile").write_text(ROOT_DOCKERFILE)
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: alpine\n")
    real_parse = frontends.parse

    def parse(kind, text, path):
        if kind == "compose":
            raise exhausted()
        return real_parse(kind, text, path)
    monkeypatch.setattr(frontends, "parse", parse)
    # control: the parser itself raises exactly that
    with pytest.raises(raised) as caught:
        frontends.parse("compose", "", "compose.yaml")
    assert type(caught.value) is raised
    report = audit([str(tmp_path)])
    assert [(e.path, e.message) for e in report.errors] == [(str(tmp_path / "compose.yaml"), message)]
    assert any(f.path.endswith("Dockerfile") for f in report.findings)


def test_an_unreadable_dockerignore_is_the_dockerfiles_error_not_ignored(hardrun, tmp_path):
    """A .dockerignore that is a FIFO cannot be read: auditing as if there were none would
    judge the build context wrongly, so it is the Dockerfile's error (exit 2). Control: a
    readable one is used without an error."""
    (tmp_path / "Dockerfile").write_text(ROOT_DOCKERFILE)
    (tmp_path / ".dockerignore").write_text(".git\n")
    control = json.loads(hardrun("audit", "-f", "json", "--no-fail", "Dockerfile", cwd=tmp_path).stdout)
    assert control["errors"] == []
    (tmp_path / ".dockerignore").unlink()
    os.mkfifo(tmp_path / ".dockerignore")
    result = hardrun("audit", "-f", "json", "Dockerfile", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert json.loads(result.stdout)["errors"] == [
        {"path": "Dockerfile", "message": ".dockerignore: not a regular file (a FIFO)"}]


def test_invalid_dockerignore_class_does_not_stop_the_audit(hardrun, tmp_path):
    import re
    from hardrun.audit.checks.buildutil.buildcontext import _ignore_regex
    with pytest.raises(re.error):             # control: the translated pattern is invalid
        re.compile(_ignore_regex("[z-a]"))
    (tmp_path / "Dockerfile").write_text("FROM alpine:3.20\nCOPY . /app\nUSER 1000\n")
    (tmp_path / ".dockerignore").write_text("[z-a]\n.git\n")
    code, document = _errors(hardrun, tmp_path, ".")
    assert code == 1 and not document["errors"]
    assert any(f["practice"] == "copy-all" for f in document["findings"])


@pytest.mark.parametrize("text, message", [
    ('{"a": 1,\n  "b": }\n', "{path}: line 2, column 8: not JSON: Expecting value"),
    ("[1, 2]\n", "{path}: expected a JSON object (an OCI process)"),
    ("\0{}", "{path}: line 1: binary file (NUL byte), not a text file"),
])
def test_the_json_object_reader_names_the_file_and_where(tmp_path, text, message):
    from hardrun.errors import HardrunError, UsageError
    from hardrun.userfiles import read_json_object
    path = tmp_path / "process.json"
    path.write_text(text)
    with pytest.raises(HardrunError) as raised:
        read_json_object(str(path), expected="a JSON object (an OCI process)", error=UsageError)
    assert str(raised.value) == message.format(path=path)
    path.write_text('{"a": [1]}')
    assert read_json_object(str(path)) == {"a": [1]}


def test_a_bundle_whose_config_is_not_json_is_one_line_naming_it(tmp_path):
    from hardrun.runtime.bundle import BundleError, load
    (tmp_path / "config.json").write_text('{"ociVersion": "1.2.0",\n "process": [}\n')
    with pytest.raises(BundleError) as raised:
        load(str(tmp_path))
    assert str(raised.value) == f"{tmp_path}/config.json: line 2, column 14: not JSON: Expecting value"
