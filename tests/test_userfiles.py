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


def test_a_link_planted_at_the_name_is_replaced_not_followed(tmp_path):
    """A link at the name (to a file elsewhere) is replaced by the new 0600 file; the file it
    named is untouched. Control: writing through the link, as a plain open does, changes it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"theirs")
    directory = tmp_path / "own"
    directory.mkdir()
    (directory / "record").symlink_to(elsewhere)
    old_umask = os.umask(0)       # a permissive umask must not widen the file
    try:
        replace_private(str(directory), "record", b"ours")
    finally:
        os.umask(old_umask)
    assert elsewhere.read_bytes() == b"theirs"
    assert not (directory / "record").is_symlink() and (directory / "record").read_bytes() == b"ours"
    assert stat.S_IMODE((directory / "record").stat().st_mode) == 0o600
    assert os.listdir(directory) == ["record"]
    (directory / "plain").symlink_to(elsewhere)
    with open(directory / "plain", "wb") as handle:     # the control
        handle.write(b"changed")
    assert elsewhere.read_bytes() == b"changed"
