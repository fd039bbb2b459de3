"""A layer's `ids` record (the highest uid and gid its files own): one writer, whether the
layer is being unpacked or was unpacked before hardrun kept the record and is walked."""
from __future__ import annotations

import os
import stat

from hardrun.runtime import image_root


def test_both_ways_write_the_same_private_record(tmp_path):
    fresh, walked = tmp_path / "fresh", tmp_path / "walked"
    fresh.mkdir()
    image_root._write_records(str(fresh), "sha256:" + "0" * 64, (1000, 1001))
    (walked / "root").mkdir(parents=True)
    owned = walked / "root" / "file"
    owned.write_text("x")
    os.chown(owned, 2000, 2001)
    assert image_root.highest_ids([str(fresh), str(walked)]) == (2000, 2001)
    for directory, text in ((fresh, "1000 1001\n"), (walked, "2000 2001\n")):
        record = directory / image_root.IDS_RECORD
        assert record.read_text() == text
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
    # the control: the walked record is read back, not walked again
    os.chown(owned, 3000, 3001)
    assert image_root.highest_ids([str(walked)]) == (2000, 2001)
