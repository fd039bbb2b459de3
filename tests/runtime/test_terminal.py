"""`hardrun run` on the caller's terminal: Ctrl-Z stops the whole container with hardrun,
the terminal's modes come back whatever the container set, the container reads the
terminal only with -i, and -t gives it a terminal of its own (--rm is accepted).

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

from tests.helpers import NOBODY, as_user, hardrun_env, system_python

pytestmark = pytest.mark.runtime

# A job-control shell in a few lines: runs argv as its foreground job (after
# `--background`: as a background job, as `argv &` would; `--owner=UID`: on a terminal
# owned by that user). When the job stops, it takes the terminal back, says so with the
# terminal's echo state, waits a second (time enough for a container still running to
# read the terminal), reads the line typed to it, and puts the job back in the
# foreground (`fg`; after `--bg`, the first time: continues it in the background, as
# `bg` does, and says BG). When the job ends it reports its status and the echo state.
JOB_SHELL = r"""
import os, select, signal, sys, termios, time
signal.signal(signal.SIGTTOU, signal.SIG_IGN)   # as shells do, to hand the terminal over
def echo():
    return "on" if termios.tcgetattr(0)[3] & termios.ECHO else "off"
def say(text):
    os.write(1, (text + "\n").encode())
argv, background, bg = sys.argv[1:], False, False
while argv[0].startswith("--"):
    option = argv.pop(0)
    if option == "--background":
        background = True
    elif option == "--bg":
        bg = True
    else:   # --owner=UID: the terminal is that user's, as login makes it
        os.fchown(0, int(option.partition("=")[2]), -1)
job = os.fork()
if job == 0:
    os.setpgid(0, 0)
    if not background:
        os.tcsetpgrp(0, os.getpgrp())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.execvpe(argv[0], argv, os.environ)
try:
    os.setpgid(job, job)
except PermissionError:   # the job has exec'd: it did it itself
    pass
say(f"JOB {job}")
while True:
    _, status = os.waitpid(job, os.WUNTRACED)
    os.tcsetpgrp(0, os.getpgrp())
    if not os.WIFSTOPPED(status):
        say(f"EXIT {os.waitstatus_to_exitcode(status)} echo={echo()}")
        break
    say(f"STOPPED echo={echo()}")
    time.sleep(1)
    typed = b""
    while not typed.endswith(b"\n") and select.select([0], [], [], 30)[0]:
        chunk = os.read(0, 100)
        typed += chunk
        if not chunk:
            break
    say(f"SHELL GOT {typed!r}")
    if bg:
        bg = False
        os.killpg(job, signal.SIGCONT)
        say("BG")
        continue
    os.tcsetpgrp(0, job)
    os.killpg(job, signal.SIGCONT)
"""

# Reads its input line by line, as a login prompt or `cat` would, with the terminal's echo
# off (through stderr: with -i alone its stdin is a pipe hardrun feeds).
READER = 'stty -echo <&2; echo ready; while read line; do echo "container got: $line"; done; echo bye'


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

    def line(self, prefix: str = "") -> str:
        """The rest of the line after `prefix` (the next line without one)."""
        if prefix:
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


def hardrun_in_terminal(rootfs, script: str, *flags: str, background: bool = False,
                        bg: bool = False) -> Terminal:
    return Terminal(["--background"] * background + ["--bg"] * bg + [
                    sys.executable, "-m", "hardrun", "run", "--rootfs", rootfs, *flags, "--", "sh", "-c",
                    script])


def reader_in_a_session_of_its_own(background: bool = False) -> Terminal:
    """The control for a container stopped with hardrun: READER run directly, in a
    session of its own (as a container is) but with the caller's terminal as its stdin,
    behind a job that Ctrl-Z stops alone."""
    return Terminal(["--background"] * background + [
        "/bin/busybox", "sh", "-c", f"exec 9<&0; /bin/busybox setsid sh -c '{READER}' <&9 & wait"])


def only_child(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        children = handle.read().split()
    assert len(children) == 1, children
    return int(children[0])


def freezer_state(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as handle:
        path = next(line.split(":", 2)[2].strip() for line in handle if ":freezer:" in line)
    if path == "/":
        return "not in its cgroup yet"
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
    (echo off) and the terminal back. Control: a reader in a session of its own (as the
    container is) holding the terminal as its stdin, behind a job that Ctrl-Z stops: it
    goes on reading the terminal and takes the line typed to the shell, and the shell
    gets echo off."""
    terminal = hardrun_in_terminal(rootfs, READER, "-i")
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

    control = reader_in_a_session_of_its_own()
    try:
        control.expect("ready\n")
        control.type("\x1a")
        assert control.line("STOPPED ") == "echo=off"
        control.type("secret\n")
        control.expect("container got: secret\n")
    finally:
        control.close()


def test_interactive_after_ctrl_z_and_bg_the_container_cannot_read_the_terminal(rootfs):
    """-i without -t, Ctrl-Z, then `bg`: the container runs on, but its stdin is a pipe
    hardrun feeds, so the line typed next to the shell stops hardrun (SIGTTIN), which
    freezes the container: the shell gets the line. `fg`: the container's own modes again
    (echo off, as at the Ctrl-Z, not the shell's taken in the background), and it reads
    what is typed. Control: a reader in a session of its own holding the terminal goes on
    taking what is typed after Ctrl-Z (and so after `bg`)."""
    terminal = hardrun_in_terminal(rootfs, READER, "-i", bg=True)
    try:
        hardrun = int(terminal.line("JOB "))
        terminal.expect("ready\n")
        container = only_child(hardrun)
        terminal.type("\x1a")
        assert terminal.line("STOPPED ") == "echo=on"
        terminal.type("first\n")
        assert terminal.line("SHELL GOT ") == "b'first\\n'"
        terminal.expect("BG\n")
        wait_for(lambda: freezer_state(container) == "THAWED")   # running in the background
        terminal.type("secret\n")
        assert terminal.line("STOPPED ") == "echo=on"
        assert freezer_state(container) == "FROZEN"
        assert terminal.line("SHELL GOT ") == "b'secret\\n'"
        assert "container got" not in terminal.output
        wait_for(lambda: freezer_state(container) == "THAWED")   # `fg`
        terminal.type("after\n")
        assert terminal.expect("container got: after\n") == "", "echo is off again for the container"
        terminal.type("\x04")
        terminal.expect("bye\n")
        assert terminal.line("EXIT ") == "0 echo=on"
    finally:
        terminal.close()


@pytest.mark.parametrize("flags, ending, signum, status", [
    (("-i",), "echo ready; exit 3", None, "3"),
    (("-i",), "echo ready; exec sleep 30", signal.SIGKILL, "137"),                # to the container
    (("-i",), 'trap "exit 5" TERM; echo ready; while :; do sleep 0.05; done', signal.SIGTERM, "5"),
    ((), "echo ready; exit 3", None, "3"),
])
def test_terminal_modes_are_restored_however_the_container_ends(rootfs, flags, ending, signum, status):
    """The container turns echo off (through its write-only stderr) and ends: by exiting,
    killed, or told to stop through hardrun (SIGTERM, forwarded to it). The shell finds
    echo on again. Control: the same `stty -echo` run directly on the terminal leaves echo
    off."""
    stty = "stty -echo <&2"
    terminal = hardrun_in_terminal(rootfs, f"{stty}; {ending}", *flags)
    try:
        hardrun = int(terminal.line("JOB "))
        terminal.expect("ready\n")
        if signum:
            os.kill(only_child(hardrun) if signum == signal.SIGKILL else hardrun, signum)
        assert terminal.line("EXIT ") == f"{status} echo=on"
    finally:
        terminal.close()

    control = Terminal(["/bin/busybox", "sh", "-c", f"{stty}; {ending}"])
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


def test_a_background_hardrun_leaves_the_foreground_jobs_terminal_modes_alone(rootfs):
    """hardrun started in the background ends while the job in the foreground (here the
    shell; an editor in real life) has turned echo off: the modes hardrun saved at start
    are not put back under it. Control: in the foreground, hardrun puts its saved modes
    back when it ends, over the same change."""
    script = 'trap "exit 0" TERM; echo ready; while :; do sleep 0.05; done'
    for background, expected in ((True, "0 echo=off"), (False, "0 echo=on")):
        terminal = hardrun_in_terminal(rootfs, script, background=background)
        try:
            hardrun = int(terminal.line("JOB "))
            terminal.expect("ready\n")
            set_echo(terminal.master, False)
            os.kill(hardrun, signal.SIGTERM)
            assert terminal.line("EXIT ") == expected
        finally:
            terminal.close()


def set_echo(master: int, on: bool) -> None:
    import termios
    modes = termios.tcgetattr(master)
    modes[3] = modes[3] | termios.ECHO if on else modes[3] & ~termios.ECHO
    termios.tcsetattr(master, termios.TCSANOW, modes)


# -- -i, -t, --rm ---------------------------------------------------------------------------

def test_without_interactive_the_container_cannot_read_the_callers_terminal(rootfs):
    """Two lines wait on the terminal. Without -i the container's stdin is an empty input
    and its stdout a write-only reopening of the terminal: it reads neither line. With
    --interactive it reads its stdin, the terminal, and still not through stdout. Control:
    on the terminal directly, reading stdout (the terminal, open for reading and writing)
    takes the first line."""
    # stdout read with read(2) (head): a shell's `read` would poll it for input hardrun takes
    script = 'exec 3<&1; b=$(head -n 1 <&3 2>/dev/null); echo "stdout=[$b]"; read a; echo "stdin=[$a]"'
    for flags, expected in (((), ("[]", "[]")), (("--interactive",), ("[]", "[one]"))):
        terminal = Terminal([sys.executable, "-m", "hardrun", "run", "--rootfs", rootfs, *flags,
                             "--", "sh", "-c", script])
        try:
            terminal.type("one\ntwo\n")
            assert (terminal.line("stdout="), terminal.line("stdin=")) == expected
            terminal.expect("EXIT ")
        finally:
            terminal.close()
    control = Terminal(["/bin/busybox", "sh", "-c", script])
    try:
        control.type("one\ntwo\n")
        assert (control.line("stdout="), control.line("stdin=")) == ("[one]", "[two]")
    finally:
        control.close()


def set_window_size(fd: int, rows: int, columns: int) -> None:
    import fcntl
    import struct
    import termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def echo_on(master: int) -> bool:
    import termios
    return bool(termios.tcgetattr(master)[3] & termios.ECHO)


def test_tty_gives_the_container_a_terminal_of_its_own(rootfs):
    """--tty: the container's controlling terminal is a pty of its own devpts; turning its
    echo off leaves the caller's terminal alone. Control: run directly, the same command
    turns the caller's echo off. With --interactive what is typed reaches it, its window
    size follows the caller's, also when that changes, and the caller's terminal is out
    of raw mode afterwards."""
    script = "tty; stty -echo </dev/tty && echo changed; read held"   # held until checked
    terminal = hardrun_in_terminal(rootfs, script, "--tty")
    try:
        hardrun = int(terminal.line("JOB "))
        assert terminal.line() == "/dev/pts/0"
        terminal.expect("changed")
        assert echo_on(terminal.master)
        os.kill(only_child(hardrun), signal.SIGKILL)
        assert terminal.line("EXIT ") == "137 echo=on"
    finally:
        terminal.close()
    control = Terminal(["/bin/busybox", "sh", "-c", script])
    try:
        control.expect("changed")
        assert not echo_on(control.master)
    finally:
        control.close()

    script = 'stty size; echo ready; read line; echo "got [$line]"; stty size'
    terminal = hardrun_in_terminal(rootfs, script, "--tty", "--interactive")
    try:
        set_window_size(terminal.master, 30, 100)
        assert terminal.line("JOB ")
        assert terminal.line() == "30 100"
        terminal.expect("ready")
        set_window_size(terminal.master, 40, 120)
        terminal.type("hello\r")
        assert terminal.line("got ") == "[hello]"
        assert terminal.line() == "40 120"
        assert terminal.line("EXIT ") == "0 echo=on"
    finally:
        terminal.close()


def test_in_the_background_hardrun_stops_with_the_container_when_it_would_read(rootfs):
    """Started in the background, hardrun is stopped with the container frozen (SIGTTIN)
    when it reads the terminal: with -it at once, with -i alone (its stdin a pipe hardrun
    feeds) at the first line typed; the shell keeps that line, and `fg` relays again.
    Control: a reader in a session of its own started in the background with the
    terminal as its stdin takes what is typed to the shell."""
    terminal = hardrun_in_terminal(rootfs, READER, "-it", background=True)
    try:
        hardrun = int(terminal.line("JOB "))
        assert terminal.line("STOPPED ") == "echo=on"
        # frozen, or frozen as it joins its cgroup (it cannot run anything before it has)
        wait_for(lambda: freezer_state(only_child(hardrun)) == "FROZEN")
        terminal.type("secret\n")
        assert terminal.line("SHELL GOT ") == "b'secret\\n'"
        terminal.expect("ready\n")                      # after `fg`
        terminal.type("after\r")
        terminal.expect("container got: after\n")
        terminal.type("\x04")
        terminal.expect("bye\n")
        assert terminal.line("EXIT ") == "0 echo=on"
    finally:
        terminal.close()

    terminal = hardrun_in_terminal(rootfs, READER, "-i", background=True)
    try:
        hardrun = int(terminal.line("JOB "))
        terminal.expect("ready\n")
        terminal.type("secret\n")
        terminal.line("STOPPED ")          # echo off: the container's stty, through its stderr
        assert freezer_state(only_child(hardrun)) == "FROZEN"
        assert terminal.line("SHELL GOT ") == "b'secret\\n'"
        assert "container got" not in terminal.output
        terminal.type("after\n")
        terminal.expect("container got: after\n")
        terminal.type("\x04")
        terminal.expect("bye\n")
        assert terminal.line("EXIT ") == "0 echo=on"
    finally:
        terminal.close()

    control = reader_in_a_session_of_its_own(background=True)
    try:
        control.expect("ready\n")
        control.type("secret\n")
        control.expect("container got: secret\n")
        assert "STOPPED" not in control.output
    finally:
        control.close()


def test_tty_without_a_terminal_around_and_its_refusal(rootfs, tmp_path):
    """-t alone works with no terminal at all (output through the pty: CR LF); -it
    refuses a stdin that is not a terminal, as Docker does, before anything runs."""
    done = subprocess.run([sys.executable, "-m", "hardrun", "run", "-t", "--rootfs", rootfs, "--",
                           "sh", "-c", "test -t 0 && test -t 1 && echo terminal"], env=hardrun_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout == b"terminal\r\n", done
    refused = subprocess.run([sys.executable, "-m", "hardrun", "run", "-it", "--rootfs", rootfs, "--",
                              "touch", "/scratch/ran"], env=hardrun_env(), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 125
    assert refused.stderr == "hardrun: the input device is not a TTY (drop -t, or run from a terminal)\n"
    assert not os.path.exists(os.path.join(rootfs, "scratch", "ran"))


# Opens the pty anew every 10 ms: the first process's exit hangs up the files open then.
LEFTOVER = '(trap "" HUP; while sleep 0.01; do exec 3<>/dev/pts/0; done) & echo $!; read x'


def test_tty_relay_ends_when_the_first_process_exits_although_a_leftover_holds_the_pty(rootfs, tmp_path):
    """-t with the host's pid namespace (a run config: the container's first process
    exiting does not end the others): a leftover that opens the pty again after the hang-up
    holds it, yet hardrun returns when the first process exits, and its clean-up (the
    cgroup kill) ends the leftover. Control: the leftover is alive, holding the pty, while
    hardrun runs."""
    config = tmp_path / "run.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nnamespaces: {pid: host}\n")
    hardrun = subprocess.Popen([sys.executable, "-m", "hardrun", "run", "-t", "--config", str(config),
                                "--rootfs", rootfs, "--", "sh", "-c", LEFTOVER],
                               env=hardrun_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    leftover = None
    try:
        leftover = int(hardrun.stdout.readline())
        wait_for(lambda: os.path.exists(f"/proc/{leftover}/fd/3"))
        assert os.readlink(f"/proc/{leftover}/fd/3").startswith("/dev/pts/")
        first = only_child(hardrun.pid)
        os.kill(first, signal.SIGKILL)
        assert hardrun.wait(timeout=60) == 137
        assert not os.path.exists(f"/proc/{leftover}") or process_state(leftover) == "Z"
    finally:
        if hardrun.poll() is None:
            hardrun.kill()
            hardrun.wait()
        if leftover is not None and os.path.exists(f"/proc/{leftover}"):
            os.kill(leftover, signal.SIGKILL)
        hardrun.stdout.close()


def test_rm_is_accepted_and_nothing_is_kept(rootfs, tmp_path):
    """--rm (Docker's habit in `docker run --rm -it`) runs as usual; hardrun keeps nothing
    of a container after it exits either way: its state directory is empty."""
    env = hardrun_env({"HARDRUN_STATE_DIR": str(tmp_path / "state")})
    for flags in (["--rm"], []):
        done = subprocess.run([sys.executable, "-m", "hardrun", "run", *flags, "--rootfs", rootfs, "--",
                               "echo", "ran"], env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (0, "ran\n"), done.stderr
        assert os.listdir(tmp_path / "state") == [".userns"]          # the id-range leases' directory
        assert os.listdir(tmp_path / "state" / ".userns") == ["lock"]   # the container's range is free


def hardrun_as_nobody(public_rootfs, *args: str) -> list[str]:
    """`hardrun run --rootfs … ARGS` as a non-root user (with Debian's python3: the test
    venv's interpreter may not be reachable by nobody), as test_runtime's rootless test."""
    rootfs, home, source = public_rootfs
    return ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", f"PYTHONPATH={source}",
            *as_user(NOBODY, system_python(), "-m", "hardrun", "run", "--rootfs", str(rootfs),
                     "--security-opt", "seccomp=unconfined", *args)]


def test_rootless_ctrl_z_stops_every_process_of_the_container(public_rootfs):
    """Without root hardrun has no cgroup of its own, so no freezer: Ctrl-Z stops each
    process of the container (State T) before hardrun stops, and `fg` continues them.
    Control: the same processes are not stopped before the Ctrl-Z."""
    terminal = Terminal(["--owner=65534", *hardrun_as_nobody(public_rootfs, "-i", "--", "sh", "-c",
                                                             "sleep 60 & " + READER)])
    try:
        hardrun = int(terminal.line("JOB "))          # env and setpriv exec it
        terminal.expect("ready\n")
        container = descendants(hardrun)
        assert len(container) == 2 and "T" not in {process_state(pid) for pid in container}
        terminal.type("\x1a")
        assert terminal.line("STOPPED ") == "echo=on"
        assert {process_state(pid) for pid in container} == {"T"}
        terminal.type("secret\n")
        assert terminal.line("SHELL GOT ") == "b'secret\\n'"
        wait_for(lambda: "T" not in {process_state(pid) for pid in container})
        terminal.type("after\n")
        terminal.expect("container got: after\n")
        terminal.type("\x04")
        assert terminal.line("EXIT ") == "0 echo=on"
    finally:
        terminal.close()


def descendants(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            for child in map(int, handle.read().split()):
                found += [child] + descendants(child)
    return found


def test_a_terminal_that_cannot_be_handed_over_write_only_is_refused(public_rootfs):
    """hardrun as nobody on root's terminal cannot reopen it write-only for the container:
    it refuses to start (125, one line) rather than hand over the readable one; with -t
    the container does not need it. Control: on its own terminal the same command runs."""
    for owner, flags, expected in ((None, [], "125"), (None, ["-t"], "0"), ("--owner=65534", [], "0")):
        hardrun = hardrun_as_nobody(public_rootfs, *flags, "--", "echo", "ran")
        terminal = Terminal([owner] * bool(owner) + hardrun)
        try:
            said = terminal.expect("EXIT ")
            assert terminal.line().split()[0] == expected, said
            if expected == "125":
                assert said.endswith("hardrun: cannot reopen the terminal on fd 1 write-only for the "
                                     "container: Permission denied (redirect the output, or use -t)\n")
            else:
                assert said.endswith("ran\n")
        finally:
            terminal.close()


def test_a_terminal_refusal_comes_before_any_state_or_cgroup_exists(rootfs, tmp_path):
    """hardrun as root without CAP_SYS_ADMIN cannot reopen a terminal in exclusive mode
    (TIOCEXCL) for the container: the refusal is the only line, although the state
    directory cannot be created (under a regular file), so the hooks that create state,
    cgroup and network never ran. Control: on a terminal it can reopen, the same command
    fails at the state directory, so hooks that ran first would have said so. (A fixed
    --userns-remap range: the default leases the container's own range in the state root
    before the parent starts, and frees it on any refusal.)"""
    import fcntl
    import termios
    (tmp_path / "file").touch()
    env = hardrun_env({"HARDRUN_STATE_DIR": str(tmp_path / "file" / "state")})
    command = ["setpriv", "--bounding-set=-sys_admin", sys.executable, "-m", "hardrun", "run",
               "--userns-remap", "100000:65536", "--rootfs", rootfs, "--", "true"]
    for exclusive in (True, False):
        master, slave = pty.openpty()
        try:
            if exclusive:
                fcntl.ioctl(slave, termios.TIOCEXCL)
            done = subprocess.run(command, stdout=slave, stderr=subprocess.PIPE, env=env, text=True,
                                  timeout=60)
        finally:
            os.close(slave)
            os.close(master)
        assert done.returncode == 125
        if exclusive:
            assert done.stderr == ("hardrun: cannot reopen the terminal on fd 1 write-only for the "
                                   "container: Device or resource busy (redirect the output, or use -t)\n")
        else:
            assert str(tmp_path / "file") in done.stderr and "reopen" not in done.stderr, done.stderr
