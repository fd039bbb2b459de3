"""Two hardrun-oci commands saving one container's state at once (an engine's `start` and
`kill`) leave a whole record, never a mix of the two."""
from __future__ import annotations

import json
import os
import threading

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


def _found_between(tmp_path, monkeypatch) -> str:
    """The two saves in the order that shows a shared temporary file, forced: the first writer
    has written its record, the second opens (truncating) its temporary file, the first renames
    its own into place, and a reader reads STATE_FILE before the second writes. The writers
    are two threads, each its own process as the temporary file's name sees it (getpid)."""
    directory = tmp_path / "c"
    directory.mkdir(mode=0o700, parents=True)
    opened, written = threading.Event(), threading.Event()
    real_fdopen, real_rename = os.fdopen, os.rename
    found = []

    def save_second():
        try:
            Container(str(tmp_path), "c", {"id": "c", "pad": "x" * 50}).save()
        except FileNotFoundError:    # its temporary file was the first's, renamed away
            pass

    second = threading.Thread(target=save_second)

    def fdopen(fd, *args, **kwargs):
        if threading.current_thread() is second:     # opened: wait until the reader has read
            opened.set()
            written.wait(60)
        return real_fdopen(fd, *args, **kwargs)

    def rename(source, target):
        if threading.current_thread() is not second and not second.is_alive() and not found:
            second.start()
            assert opened.wait(60), "the second writer never opened its temporary file"
            real_rename(source, target)
            with open(directory / STATE_FILE) as handle:
                found.append(handle.read())
            written.set()
            second.join()
            return
        real_rename(source, target)

    monkeypatch.setattr(oci.os, "fdopen", fdopen)
    monkeypatch.setattr(oci.os, "rename", rename)
    Container(str(tmp_path), "c", {"id": "c", "pad": "x" * 5000}).save()
    assert found, "the forced order did not happen"
    return found[0]


def test_a_save_between_another_s_open_and_write_leaves_its_whole_record(tmp_path, monkeypatch):
    """A temporary file per process: the second writer's open leaves the first's record whole.
    Control: one temporary file for both (the earlier naming) gives the reader a cut record."""
    monkeypatch.setattr(oci.os, "getpid", threading.get_ident)
    assert _is_whole(_found_between(tmp_path / "own", monkeypatch))
    monkeypatch.setattr(oci.os, "getpid", lambda: 1)
    assert not _is_whole(_found_between(tmp_path / "shared", monkeypatch))
