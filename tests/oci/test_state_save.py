"""Two hardrun-oci commands saving one container's state at once (an engine's `start` and
`kill`) leave a whole record, never a mix of the two."""
from __future__ import annotations

import json
import os

from hardrun.runtime import oci
from hardrun.runtime.oci import STATE_FILE, Container

ROUNDS = 300


def _save_concurrently(directory: str) -> list[str]:
    """Two processes save records of different lengths ROUNDS times each; every record
    that reached STATE_FILE, as read after each rename settled."""
    children = []
    for length in (50, 5000):
        pid = os.fork()
        if pid == 0:     # the child saves, then leaves without pytest's teardown, whatever happens
            try:
                container = Container(os.path.dirname(directory), os.path.basename(directory),
                                      {"id": "c", "pad": "x" * length})
                for _ in range(ROUNDS):
                    try:
                        container.save()
                    except FileNotFoundError:    # the other writer renamed the shared file first
                        pass
            finally:
                os._exit(0)
        children.append(pid)
    seen = []
    running = set(children)
    while running:
        with open(os.path.join(directory, STATE_FILE)) as handle:
            seen.append(handle.read())
        running = {pid for pid in running if os.waitpid(pid, os.WNOHANG) == (0, 0)}
    return seen


def _is_whole(text: str) -> bool:
    try:
        return len(json.loads(text)["pad"]) in (50, 5000)
    except (ValueError, KeyError):
        return False


def test_concurrent_saves_leave_a_whole_record(tmp_path):
    directory = tmp_path / "c"
    directory.mkdir(mode=0o700)
    Container(str(tmp_path), "c", {"id": "c", "pad": "x" * 50}).save()
    seen = _save_concurrently(str(directory))
    assert seen and all(_is_whole(text) for text in seen)
    assert os.listdir(directory) == [STATE_FILE]


def test_control_one_shared_temporary_file_mixes_the_records(tmp_path, monkeypatch):
    """The same race through one temporary file for both writers (the earlier naming)."""
    monkeypatch.setattr(oci.os, "getpid", lambda: 1)
    directory = tmp_path / "c"
    directory.mkdir(mode=0o700)
    Container(str(tmp_path), "c", {"id": "c", "pad": "x" * 50}).save()
    mixed = []
    for _ in range(20):      # the interleaving is the scheduler's: try until it shows
        mixed = [text for text in _save_concurrently(str(directory)) if not _is_whole(text)]
        if mixed:
            break
    assert mixed, "the shared temporary file never mixed two records"
