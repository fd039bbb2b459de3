"""userfiles' writers of hardrun's own files: write_private (False on failure) and
replace_private (the OSError raised), both leaving no temporary file behind."""
from __future__ import annotations

import os
import stat

import pytest

from hardrun.userfiles import replace_private, write_private


def test_a_failed_rename_raises_or_is_false_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "taken" / "inside").mkdir(parents=True)       # a directory holds the name
    with pytest.raises(OSError):
        replace_private(str(tmp_path), "taken", b"x")
    assert write_private(str(tmp_path), "taken", b"x") is False
    assert os.listdir(tmp_path) == ["taken"]
    # control: a free name is written whole, 0600
    replace_private(str(tmp_path), "free", b"x")
    assert (tmp_path / "free").read_bytes() == b"x"
    assert stat.S_IMODE((tmp_path / "free").stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["free", "taken"]
