"""Progress of a long audit: on a terminal's stderr only, never in redirected output."""
import io
import os
import pty
import subprocess
import sys

import pytest

from hardrun.audit.progress import DELAY, MANY_FILES, TerminalProgress
from tests.helpers import ROOT_DOCKERFILE, hardrun_env, read_until_closed


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _walk(progress: TerminalProgress, clock: _Clock, count: int, step: float) -> None:
    progress.found(count)
    for index in range(count):
        clock.now += step
        progress.done(f"src/dir{index % 3}/file{index}")


def test_a_large_tree_shows_files_done_of_found_and_the_directory():
    stream, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(stream, clock)
    _walk(progress, clock, MANY_FILES + 1, 0.0)
    progress.close()
    text = stream.getvalue()
    assert f"hardrun audit: {MANY_FILES + 1}/{MANY_FILES + 1} files, src/dir" in text
    assert text.endswith("\r\033[K")          # erased: the report starts on a clean line


def test_a_small_quick_tree_shows_nothing():
    stream, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(stream, clock)
    _walk(progress, clock, MANY_FILES, 0.001)
    progress.close()
    assert stream.getvalue() == ""


def test_a_small_slow_tree_shows_progress_once_it_has_taken_the_delay():
    stream, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(stream, clock)
    _walk(progress, clock, 10, DELAY / 4)
    lines = [part for part in stream.getvalue().split("\r\033[K") if part]
    assert lines and lines[0].startswith("hardrun audit: 4/10 files")   # the first past DELAY
    assert lines[-1].startswith("hardrun audit: 10/10 files")


@pytest.fixture(scope="module")
def large_tree(tmp_path_factory):
    tree = tmp_path_factory.mktemp("large")
    for index in range(MANY_FILES + 20):
        directory = tree / f"pkg{index // 100}"
        directory.mkdir(exist_ok=True)
        (directory / f"module{index}.txt").write_text("x\n")
    (tree / "Dockerfile").write_text(ROOT_DOCKERFILE)
    return tree


def _audit_with_stderr_on_a_pty(tree, *args) -> tuple[int, str, str]:
    """(status, stdout, what reached the terminal) of `hardrun audit` whose stderr is a pty."""
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "hardrun", "audit", *args, str(tree)],
                               stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                               env=hardrun_env(), text=True)
    os.close(slave)
    terminal = read_until_closed(master)
    stdout = process.stdout.read()
    process.wait(timeout=120)
    os.close(master)
    return process.returncode, stdout, terminal.decode()


def test_progress_reaches_a_terminal(large_tree):
    total = MANY_FILES + 21
    status, stdout, terminal = _audit_with_stderr_on_a_pty(large_tree)
    assert status == 1
    assert f"/{total} files, " in terminal and f"{total}/{total} files" in terminal
    assert "pkg" in terminal                            # the current directory
    assert "files," not in stdout                       # never in the report


def test_quiet_shows_no_progress_even_on_a_terminal(large_tree):
    status, stdout, terminal = _audit_with_stderr_on_a_pty(large_tree, "--quiet")
    assert status == 1 and "files," not in terminal
    assert len(stdout.splitlines()) == 1


def test_no_progress_in_redirected_output(hardrun, large_tree):
    result = hardrun("audit", str(large_tree))
    assert result.returncode == 1
    assert result.stderr == ""
    assert "files," not in result.stdout
