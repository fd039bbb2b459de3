"""hardrun-oci --explain's kept records (`delete` keeps them in the state root's .explain/,
`hardrun gc` prunes them) when .explain is not the directory it should be.

The state root is trusted (the caller's, 0700), so only its owner can plant a link there; still,
neither the keeping nor the pruning goes through one: a link named .explain would send records
elsewhere and have gc delete another directory's old files."""
from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import pytest

from hardrun.runtime.oci_explain import DENIALS_FILE, KEPT_DAYS, KEPT_DIR, keep_record, prune_kept

pytestmark = pytest.mark.runtime


def _old(path) -> None:
    path.write_text("{}")
    os.utime(path, (time.time() - (KEPT_DAYS + 1) * 86400,) * 2)


def test_gc_prunes_only_inside_a_real_kept_directory(tmp_path):
    """The control: an old record inside .explain/ is pruned. The attack: .explain a link to
    another directory, whose old file must be left alone."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / KEPT_DIR).mkdir(parents=True)
    elsewhere.mkdir()
    _old(root / KEPT_DIR / "c-20000101T000000Z.json")
    assert prune_kept(str(root)) == [f"--explain record {root / KEPT_DIR / 'c-20000101T000000Z.json'}"]
    (root / KEPT_DIR).rmdir()
    (root / KEPT_DIR).symlink_to(elsewhere)
    _old(elsewhere / "precious.json")
    assert prune_kept(str(root)) == []
    assert (elsewhere / "precious.json").exists()


def _container(tmp_path, container_id: str = "c1") -> SimpleNamespace:
    state = tmp_path / "oci" / container_id
    state.mkdir(parents=True, mode=0o700)
    (state / DENIALS_FILE).write_text(json.dumps({"profile": "built-in", "denials": [{"syscall": "unshare"}]}))
    return SimpleNamespace(id=container_id, path=str(state), record={"bundle": "/b"})


def test_delete_keeps_the_record_only_in_a_real_kept_directory(tmp_path, monkeypatch):
    """The control: the record is kept in .explain/. The attack: .explain a link elsewhere,
    where nothing may be written; the keeping fails with the reason (delete reports it)."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir(mode=0o700)
    elsewhere.mkdir()
    monkeypatch.setenv("HARDRUN_STATE_DIR", str(root))
    kept = keep_record(_container(tmp_path), incomplete=False)
    assert kept is not None and os.path.dirname(kept) == str(root / KEPT_DIR)
    with open(kept) as handle:
        assert json.load(handle)["denials"] == [{"syscall": "unshare"}]
    os.unlink(kept)
    (root / KEPT_DIR).rmdir()
    (root / KEPT_DIR).symlink_to(elsewhere)
    with pytest.raises(OSError):
        keep_record(_container(tmp_path, "c2"), incomplete=False)
    assert os.listdir(elsewhere) == []


def test_a_record_whose_name_is_too_long_says_so(tmp_path, monkeypatch):
    """An id of 230 characters is a valid container id (its state directory is made), but
    `<id>-<time>.json` and its temporary name pass the file system's 255 bytes: the keeping
    fails with that reason, not 'no trusted state root'. The control: a short id is kept."""
    from hardrun.runtime.oci import _keep_explain_record
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    monkeypatch.setenv("HARDRUN_STATE_DIR", str(root))
    warnings: list[str] = []
    _keep_explain_record(_container(tmp_path, "short"), False, warnings.append)
    assert warnings == [] and len(os.listdir(root / KEPT_DIR)) == 1
    long_id = "a" * 230
    _keep_explain_record(_container(tmp_path, long_id), False, warnings.append)
    assert len(warnings) == 1 and "no trusted state root" not in warnings[0], warnings
    assert f"{long_id}-" in warnings[0] and "cannot be written" in warnings[0]
