"""Job control and the caller's terminal, in the parent.

The container runs in a session of its own (setsid: no TIOCSTI into the caller's
terminal), so the terminal's job-control signals reach hardrun alone. Were hardrun to
stop by itself on Ctrl-Z, the container would go on reading the caller's terminal and
take what the user types next to the shell. So on SIGTSTP, SIGTTIN or SIGTTOU hardrun
stops the whole container first (its freezer cgroup; without one, SIGSTOP to every
descendant), gives the terminal its modes back, then stops itself with the same signal;
once continued (SIGCONT) it does the reverse.

The terminal modes (termios) of fds 0-2 are saved before the container starts and put
back when hardrun returns, whatever the container set (`stty -echo`, raw mode); modes
are written only while hardrun is in the foreground (from the background they are
another job's).
"""
from __future__ import annotations

import os
import _signal as signal  # the C module itself: `signal` adds an enum import (milliseconds)

from .process import poll_until, stat_fields

STOP_SIGNALS = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


class CallerTerminal:
    """The modes of each of fds 0-2 that is a terminal, as they were at start."""

    def __init__(self, saved: list):
        self.saved = saved          # [(fd, termios attributes)]

    @classmethod
    def save(cls) -> "CallerTerminal":
        ttys = [fd for fd in (0, 1, 2) if os.isatty(fd)]
        if not ttys:
            return cls([])
        import termios   # only when there is a terminal (a quarter millisecond)
        saved = []
        for fd in ttys:
            try:
                saved.append((fd, termios.tcgetattr(fd)))
            except termios.error:
                pass
        return cls(saved)

    def current(self) -> list:
        return [(fd, _get(fd)) for fd, _ in self.saved]

    def restore(self, modes: list | None = None) -> None:
        """Put back `modes` (default: those at start) where they differ, only while
        hardrun owns the terminal: from the background they are another job's (vim's)."""
        if not self.in_foreground():
            return
        for fd, attributes in modes if modes is not None else self.saved:
            if attributes is not None and _get(fd) != attributes:
                _set(fd, attributes)

    def in_foreground(self) -> bool:
        """Whether hardrun may use the terminal: its process group owns it, or there is
        none hardrun has job control over (then it is nobody else's either)."""
        if not self.saved:
            return True
        try:
            return os.tcgetpgrp(self.saved[0][0]) == os.getpgrp()
        except OSError:
            return True


def _get(fd: int):
    import termios
    try:
        return termios.tcgetattr(fd)
    except termios.error:   # hung up meanwhile
        return None


def _set(fd: int, attributes) -> None:
    import termios
    # SIGTTOU blocked: a stop racing with the shell's tcsetpgrp must not stop us here
    # (callers check that hardrun is in the foreground first).
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTTOU,))
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, attributes)
    except termios.error:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


class JobControl:
    """Stop and continue the container with hardrun. `freeze(frozen) -> bool` freezes or
    thaws its cgroup (False: no freezer, so its processes are stopped one by one)."""

    def __init__(self, pid: int, freeze, terminal: CallerTerminal):
        self.pid = pid
        self.freeze = freeze
        self.terminal = terminal
        self.container_modes: list | None = None    # taken at a stop in the foreground, given back at `fg`
        self.busy = False

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._stop)

    def uninstall(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)

    def _stop(self, signum, _frame) -> None:
        if self.busy:       # a second Ctrl-Z while stopping: the first one stops us
            return
        self.busy = True
        try:
            frozen = self._freeze(True)
            if not frozen:
                signal_tree(self.pid, signal.SIGSTOP)
            # Only the foreground's modes are the container's: after `bg` they are the
            # caller's (or another job's), which `fg` must not give the container.
            if self.container_modes is None and self.terminal.in_foreground():
                self.container_modes = self.terminal.current()
            self.terminal.restore()
            _stop_self(signum)
            if self.container_modes is not None and self.terminal.in_foreground():   # `fg`
                self.terminal.restore(self.container_modes)
                self.container_modes = None
            self._freeze(False)   # also after a freeze that timed out half-way
            if not frozen:
                signal_tree(self.pid, signal.SIGCONT)
        finally:
            self.busy = False

    def _freeze(self, frozen: bool) -> bool:
        try:
            return self.freeze(frozen)
        except OSError as error:   # the cgroup refused: stop the processes one by one instead
            _warn(f"cannot {'freeze' if frozen else 'thaw'} the container's cgroup "
                  f"({error.strerror or error}): its processes are stopped one by one")
            return False


def _stop_self(signum: int) -> None:
    """Stop with `signum` itself, so the shell reports the job as it would any other;
    returns on SIGCONT (at once when the kernel discards the stop: orphaned group)."""
    handler = signal.getsignal(signum)
    signal.signal(signum, signal.SIG_DFL)
    try:
        os.kill(os.getpid(), signum)
    finally:
        signal.signal(signum, handler)


def signal_tree(root: int, signum: int) -> None:
    """Send `signum` to `root` and all its descendants: a process that left the container's
    process group or session is still one of them. For SIGSTOP each process is seen
    stopped before its children are listed, so none can fork past the walk."""
    seen = set()
    pending = [root]
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue
        if signum == signal.SIGSTOP:
            _wait_stopped(pid)
        pending.extend(_children(pid))


def _children(pid: int) -> list[int]:
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children += [int(child) for child in handle.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return children


def _wait_stopped(pid: int, timeout: float = 1.0) -> None:
    if not poll_until(lambda: _stopped_or_gone(pid), timeout):
        _warn(f"process {pid} of the container did not stop within {timeout:g} s")


def _warn(message: str) -> None:
    os.write(2, f"hardrun: warning: {message}\n".encode())   # from a signal handler: no buffering


def _stopped_or_gone(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is None or fields[0] in (b"T", b"t", b"Z", b"X")
