"""Bad input is normal input: each gets one clear line naming file and line."""
import json
import os

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
