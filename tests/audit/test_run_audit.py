"""`hardrun audit` over a tree of run configs: detection, kinds, and one-line errors."""
import json
import shutil

from tests.helpers import DATA


def _audit(hardrun, cwd, *args):
    result = hardrun("audit", "-f", "json", *args, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_tree_of_run_configs_is_detected_and_parsed(hardrun, tmp_path):
    shutil.copytree(DATA / "compose", tmp_path / "compose")
    shutil.copytree(DATA / "kubernetes", tmp_path / "k8s")
    shutil.copytree(DATA / "oci", tmp_path / "bundle")
    shutil.copytree(DATA / "oci-runtime-spec-schema", tmp_path / "schema")
    (tmp_path / "settings.yaml").write_text("services:\n  enabled: true\n")
    (tmp_path / ".gitlab-ci.yml").write_text("services:\n  - docker:dind\ntest:\n  image: x\n")
    (tmp_path / "package.json").write_text('{"name": "x"}\n')
    code, document = _audit(hardrun, tmp_path, ".")
    kinds = {entry["path"]: entry["kind"] for entry in document["files"]}
    assert kinds == {
        "compose/docker-compose.yml": "compose", "compose/extends/compose.yaml": "compose",
        "compose/v1/docker-compose.yml": "compose",
        "k8s/backup-cronjob.yaml": "kubernetes", "k8s/list.json": "kubernetes",
        "k8s/node-agent.yaml": "kubernetes", "k8s/web.yaml": "kubernetes",
        "bundle/config.json": "oci", "bundle/privileged-config.json": "oci",
    }
    assert document["errors"] == []


def test_broken_files_are_one_line_errors_and_the_rest_go_on(hardrun, tmp_path):
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: a\n    image: b\n")
    (tmp_path / "docker-compose.yml").write_text("services:\n\tweb: {}\n")
    (tmp_path / "deploy.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: 5\n")
    (tmp_path / "bomb.yaml").write_text(
        "apiVersion: v1\nkind: List\n" + "".join(
            f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9) + "]\n"
            for p, c in zip("abcdefgh", "bcdefghi")).replace("b: &b [*a", "a: &a [x]\nb: &b [*a", 1))
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "compose.yaml").write_text("services:\n  web:\n    image: nginx:1.27\n")
    code, document = _audit(hardrun, tmp_path, ".")
    assert code == 2
    errors = {entry["path"]: entry["message"] for entry in document["errors"]}
    assert errors["compose.yaml"] == "line 4, column 5: duplicate key 'image' (first on line 3)"
    assert errors["docker-compose.yml"].startswith("line 2, column 1: invalid YAML: a tab")
    assert errors["deploy.yaml"] == "line 5: Pod/p: `containers` must be a list of containers"
    assert "billion laughs" in errors["bomb.yaml"]
    assert all("\n" not in message for message in errors.values())
    assert {"path": "ok/compose.yaml", "kind": "compose"} in document["files"]


def test_kind_forces_a_front_end(hardrun, tmp_path):
    (tmp_path / "stack.txt").write_text("services:\n  web:\n    image: nginx:1.27\n")
    code, document = _audit(hardrun, tmp_path, "--kind", "compose", "stack.txt")
    assert document["files"] == [{"path": "stack.txt", "kind": "compose"}]
    assert document["errors"] == []
