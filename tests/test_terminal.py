"""`hardrun run` on the caller's terminal: Ctrl-Z stops the whole container with hardrun,
and the terminal's modes come back whatever the container set.

Each scenario runs on a real pseudo-terminal under a small job-control shell (below):
hardrun is its foreground job, as from an interactive shell. These tests need root and
kernel features: they fail, never skip, when those are missing.
"""
from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import hardrun_env
from tests.rootfs import require_root

pytestmark = pytest.mark.runtime

# A job-control shell in a few lines: runs argv as its foreground job. When the job
# stops, it takes the terminal back, says so with the terminal's echo state, waits a
# second (time enough for a container still running to read the terminal), reads what
# was typed to it, and puts the job back in the foreground (`fg`). When the job ends it
# reports its status and the echo state.
JOB_SHELL = r"""
import os, select, signal, sys, termios, time
signal.signal(signal.SIGTTOU, signal.SIG_IGN)   # as shells do, to hand the terminal over
def echo():
    return "on" if termios.tcgetattr(0)[3] & termios.ECHO else "off"
def say(text):
    os.write(1, (text + "\n").encode())
job = os.fork()
if job == 0:
    os.setpgid(0, 0)
    os.tcsetpgrp(0, os.getpgrp())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.execvpe(sys.argv[1], sys.argv[1:], os.environ)
os.setpgid(job, job)
say(f"JOB {job}")
while True:
    _, status = os.waitpid(job, os.WUNTRACED)
    os.tcsetpgrp(0, os.getpgrp())
    if not os.WIFSTOPPED(status):
        say(f"EXIT {os.waitstatus_to_exitcode(status)} echo={echo()}")
        break
    say(f"STOPPED echo={echo()}")
    time.sleep(1)
    ready, _, _ = select.select([0], [], [], 2)
    say(f"SHELL GOT {os.read(0, 100) if ready else b''!r}")
    os.tcsetpgrp(0, job)
    os.killpg(job, signal.SIGCONT)
"""

# Reads the terminal line by line, as a login prompt or `cat` would, with echo off.
READER = 'stty -echo; echo ready; while read line; do echo "container got: $line"; done; echo bye'


@pytest.fixture(scope="module")
def rootfs(busybox_rootfs):
    require_root()
    return str(busybox_rootfs)


class Terminal:
    """The test's side (the master) of a pty whose session runs JOB_SHELL with `argv`."""

    def __init__(self, argv: list[str]):
        env = hardrun_env()
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            try:
                os.execve(sys.executable, [sys.executable, "-c", JOB_SHELL, *argv], env)
            finally:
                os._exit(127)
        self.output = ""

    def expect(self, text: str, timeout: float = 30) -> str:
        """Read until `text` appears; return what came before it (and drop both)."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"no {text!r} in {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:   # EIO: the session has ended
                    data = b""
                assert data, f"the session ended without {text!r}: {self.output!r}"
                self.output += data.decode(errors="replace").replace("\r", "")
        before, _, self.output = self.output.partition(text)
        return before

    def line(self, prefix: str) -> str:
        self.expect(prefix)
        return self.expect("\n").strip()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        os.close(self.master)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)


def hardrun_in_terminal(rootfs, script: str) -> Terminal:
    return Terminal([sys.executable, "-m", "hardrun", "run", "--rootfs", rootfs, "--", "sh", "-c", script])


def only_child(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        children = handle.read().split()
    assert len(children) == 1, children
    return int(children[0])


def freezer_state(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as handle:
        path = next(line.split(":", 2)[2].strip() for line in handle if ":freezer:" in line)
    with open(f"/sys/fs/cgroup/freezer{path}/freezer.state") as handle:
        return handle.read().strip()


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_ctrl_z_stops_the_container_so_the_shell_gets_what_is_typed(rootfs):
    """Ctrl-Z: the container is frozen (it cannot read the terminal), the shell gets the
    next line and the terminal's modes (echo on), `fg` gives the container its modes
    (echo off) and the terminal back. Control: hardrun stopped by SIGSTOP, which it cannot
    handle, is the old behaviour: the container, in its own session, goes on reading the
    terminal and takes the line typed to the shell, and the shell gets echo off."""
    terminal = hardrun_in_terminal(rootfs, READER)
    try:
        hardrun = int(terminal.line("JOB "))
        terminal.expect("ready\n")
        container = only_child(hardrun)
        terminal.type("\x1a")                            # Ctrl-Z
        assert terminal.line("STOPPED ") == "echo=on"
        assert freezer_state(container) == "FROZEN"
        terminal.type("secret\n")
        assert terminal.line("SHELL GOT ") == "b'secret\\n'"
        assert "container got" not in terminal.output
        wait_for(lambda: freezer_state(container) == "THAWED")   # the shell has run `fg`
        terminal.type("after\n")
        assert terminal.expect("container got: after\n") == "", "echo is off again for the container"
        terminal.type("\x04")                            # end of input
        terminal.expect("bye\n")
        assert terminal.line("EXIT ") == "0 echo=on"
    finally:
        terminal.close()

    control = hardrun_in_terminal(rootfs, READER)
    try:
        hardrun = int(control.line("JOB "))
        control.expect("ready\n")
        os.kill(hardrun, signal.SIGSTOP)
        assert control.line("STOPPED ") == "echo=off"
        control.type("secret\n")
        control.expect("container got: secret\n")
        assert control.line("SHELL GOT ") == "b''"
        control.type("\x04")
        assert control.line("EXIT ") == "0 echo=on"
    finally:
        control.close()


@pytest.mark.parametrize("ending, signum, status", [
    ("echo ready; exit 3", None, "3"),
    ("echo ready; exec sleep 30", signal.SIGKILL, "137"),                                    # to the container
    ('trap "exit 5" TERM; echo ready; while :; do sleep 0.05; done', signal.SIGTERM, "5"),  # to hardrun
])
def test_terminal_modes_are_restored_however_the_container_ends(rootfs, ending, signum, status):
    """The container turns echo off and ends: by exiting, killed, or told to stop through
    hardrun (SIGTERM, forwarded). The shell finds echo on again. Control: the same
    `stty -echo` run directly on the terminal leaves echo off."""
    terminal = hardrun_in_terminal(rootfs, "stty -echo; " + ending)
    try:
        hardrun = int(terminal.line("JOB "))
        terminal.expect("ready\n")
        if signum:
            os.kill(only_child(hardrun) if signum == signal.SIGKILL else hardrun, signum)
        assert terminal.line("EXIT ") == f"{status} echo=on"
    finally:
        terminal.close()

    control = Terminal(["/bin/busybox", "sh", "-c", "stty -echo; " + ending])
    try:
        job = int(control.line("JOB "))
        control.expect("ready\n")
        if signum:
            os.kill(job, signum)
        assert control.line("EXIT ") == f"{'-9' if signum == signal.SIGKILL else status} echo=off"
    finally:
        control.close()


ESCAPER = """
import os, time
if os.fork() == 0:
    os.setsid()          # out of its parent's process group and session
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


def test_without_a_freezer_every_descendant_is_stopped_and_continued():
    """Without a freezer cgroup (rootless, --limits best-effort) the container's processes
    are stopped one by one: its whole process tree, including a process that left its
    process group and session. Control: stopping the process group, as a plain signal
    forward would, leaves that process running."""
    from hardrun.runtime.jobcontrol import signal_tree
    tree = subprocess.Popen([sys.executable, "-c", ESCAPER], start_new_session=True)
    escaped = None
    try:
        wait_for(lambda: len(open(f"/proc/{tree.pid}/task/{tree.pid}/children").read().split()) == 1)
        escaped = only_child(tree.pid)
        wait_for(lambda: os.getsid(escaped) == escaped)

        os.killpg(tree.pid, signal.SIGSTOP)
        wait_for(lambda: process_state(tree.pid) == "T")
        assert process_state(escaped) in "RS"
        os.killpg(tree.pid, signal.SIGCONT)

        signal_tree(tree.pid, signal.SIGSTOP)
        assert process_state(tree.pid) == process_state(escaped) == "T"
        signal_tree(tree.pid, signal.SIGCONT)
        wait_for(lambda: process_state(tree.pid) != "T" and process_state(escaped) != "T")
    finally:
        for pid in filter(None, (escaped, tree.pid)):
            os.kill(pid, signal.SIGKILL)
        tree.wait()
