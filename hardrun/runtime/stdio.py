"""The container's fds 0-2, prepared by the parent before clone, and with `-t` the relay
between the caller and the container's own pseudo-terminal.

Docker's semantics, and the container never holds a way to read the caller's terminal
unless asked:

- without `-i` its stdin is an empty pipe (end of input at once), not the caller's;
- `-i` on a terminal: a pipe that hardrun feeds with what is typed (Docker's model):
  hardrun reads the terminal itself, so in the background (`&`, Ctrl-Z then `bg`) the
  kernel stops it (SIGTTIN) and hardrun.runtime.jobcontrol freezes the container; other
  input (a pipe, a file) is handed over as it is;
- a terminal on fd 1 or 2 is reopened write-only for it: it writes to the caller's
  terminal but cannot read what is typed there;
- `-t`: a pty of its own, from the container's own devpts (so `tty` names it inside):
  the child opens it once in its new root, makes it its fds 0-2 and its controlling
  terminal, and passes the master to the parent over a socket (as runc's console
  socket does); the container never holds the caller's terminal. The parent copies
  the pty's output to its stdout and, with `-i`, its stdin to the pty with the caller's
  terminal in raw mode (so Ctrl-C, Ctrl-Z reach the container's own terminal); the
  pty's window size follows the caller's (SIGWINCH). hardrun reads the caller's
  terminal itself, so the kernel's job control stops it (SIGTTIN) in the background,
  and hardrun.runtime.jobcontrol then freezes the container.
"""
from __future__ import annotations

import errno
import os
import stat
import _signal as signal  # the C module itself: `signal` adds an enum import (milliseconds)

from ..errors import UsageError

TIOCSPTLCK = 0x40045431    # _IOW('T', 0x31, int): lock or unlock a pty's slave
TIOCGPTPEER = 0x5441       # _IO('T', 0x41): open the slave from the master, no path lookup


class Stdio:
    """`fds[i]`: what becomes the container's fd i (None: hardrun's own, inherited);
    with -t, `console`: the (child's, parent's) ends of the socket the master comes by."""
    __slots__ = ("fds", "interactive", "console", "master", "feed", "calls")

    def __init__(self, fds, interactive=False, console=None, calls=None, feed=None):
        self.fds = fds
        self.interactive = interactive
        self.console = console
        self.master = None
        self.feed = feed       # -i on a terminal without -t: the write end of its stdin
        self.calls = calls     # (fcntl.ioctl, TIOCSCTTY, socket.send_fds): imported before clone

    def apply(self) -> None:
        """In the child, after setsid: the planned fds in place."""
        for target, fd in enumerate(self.fds):
            if fd is not None:
                os.dup2(fd, target)

    def open_terminal(self, owner: int) -> None:
        """In the child, in its new root: a pty of its own devpts as fds 0-2 and as its
        controlling terminal, owned by the container's user; the master to the parent."""
        ioctl, set_controlling, send_fds = self.calls
        master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
        slave = ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        os.fchown(slave, owner, -1)
        for target in (0, 1, 2):
            os.dup2(slave, target)
        os.close(slave)
        ioctl(0, set_controlling, 0)
        send_fds(self.console[0], [b"t"], [master])
        os.close(master)

    def receive_terminal(self) -> None:
        """In the parent: the master, once the child has opened its terminal (nothing when
        it failed before: its report says why)."""
        from socket import recv_fds
        _, fds, _, _ = recv_fds(self.console[1], 1, 1)
        if fds:
            self.master = fds[0]
            _copy_window_size(self.master)

    def close_container_ends(self) -> None:
        """In the parent once the child has its copies."""
        for fd in dict.fromkeys(fd for fd in self.fds if fd is not None):
            os.close(fd)
        self.fds = (None, None, None)
        if self.console is not None:
            self.console[0].close()

    def close(self) -> None:
        self.close_container_ends()
        if self.console is not None:
            self.console[1].close()
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self.close_feed()

    def close_feed(self) -> None:
        if self.feed is not None:
            os.close(self.feed)
            self.feed = None

    def relayed(self) -> bool:
        """Whether hardrun copies between the caller and the container (`relay`)."""
        return self.master is not None or self.feed is not None


def plan(tty: bool, interactive: bool) -> Stdio:
    if tty:
        return _pty(interactive)
    fds = [None, _write_only_if_terminal(1), _write_only_if_terminal(2)]
    feed = None
    if not interactive or os.isatty(0):
        read_end, feed = os.pipe()
        fds[0] = read_end
        if not interactive:
            os.close(feed)
            feed = None
    return Stdio(tuple(fds), interactive, feed=feed)


def reopenable() -> tuple[str, ...]:
    """In the child, for its Landlock domain: /proc/self/fd/N for each of fds 0-2 the
    container may reopen for writing (a host tty or file, through /dev/stdout). Never a
    directory: its rule would open the whole tree beneath it (host FIFOs included)."""
    paths = []
    for fd in (0, 1, 2):
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                continue
        except OSError:     # closed: nothing to reopen
            continue
        paths.append(f"/proc/self/fd/{fd}")
    return tuple(paths)


def _write_only_if_terminal(fd: int) -> int | None:
    if not os.isatty(fd):
        return None
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise UsageError(f"cannot reopen the terminal on fd {fd} write-only for the container: "
                         f"{error.strerror}", hint="redirect the output, or use -t") from None


def _pty(interactive: bool) -> Stdio:
    import fcntl
    import socket
    import termios
    console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return Stdio((None, None, None), interactive, console,
                 (fcntl.ioctl, termios.TIOCSCTTY, socket.send_fds))


def _copy_window_size(master: int) -> None:
    import fcntl
    import termios
    for fd in (0, 1, 2):
        try:
            size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        except OSError:
            continue
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        except OSError:   # the container has closed its terminal
            pass
        return


def relay(stdio: Stdio, terminal, pid: int) -> None:
    """Copy between the caller and the container (its pty, or with -i alone its stdin
    pipe) until the container has closed its pty or its first process `pid` has exited
    (a leftover process may hold the pty; without a pty: or the caller's input has
    ended); `terminal` is the caller's (jobcontrol.CallerTerminal)."""
    exited = os.pidfd_open(pid)
    try:
        if stdio.master is None:
            _copy(None, stdio.feed, exited)
            stdio.close_feed()     # end of input for the container
            return
        master = stdio.master
        forward = signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(master))
        try:
            if stdio.interactive:
                _raw_in_foreground(terminal)
            _copy(master, master if stdio.interactive else None, exited)
        finally:
            signal.signal(signal.SIGWINCH, forward)   # the master is closed after this
    finally:
        os.close(exited)


def _copy(master: int | None, sink: int | None, exited: int) -> None:
    """The pty's output (`master`) to stdout and what is typed (fd 0) to `sink` (the pty,
    or the container's stdin pipe), until the pty is closed or the pidfd `exited` is
    readable (without a pty: or the input has ended)."""
    import select
    reading = [fd for fd in (master, exited) if fd is not None] + [0] * (sink is not None)
    for fd in {fd for fd in (master, sink) if fd is not None}:
        os.set_blocking(fd, False)
    pending = b""     # typed, not yet taken by the container
    while True:
        wanted = [fd for fd in reading if fd != 0 or len(pending) < 65536]
        # typed input is pending only with a sink (fd 0 is read only then)
        writing = [sink] if pending and sink is not None else []
        readable, writable, _ = select.select(wanted, writing, [])
        if exited in readable:
            if master is not None:
                _drain(master)
            return
        if sink is not None and sink in writable:
            pending = pending[_write_some(sink, pending):]
        if master in readable:
            output = _read(master)
            if output == b"":
                return
            _write_all(1, output or b"")
        if 0 in readable:
            typed = _read(0)            # from the background: SIGTTIN, jobcontrol stops us
            if typed:
                pending += typed
            elif typed == b"":
                reading.remove(0)       # the caller's input ended (or its terminal hung up)
        if master is None and 0 not in reading and not pending:
            return                      # all typed is in the container's pipe


def _drain(master: int) -> None:
    """The pty's last output once the first process has exited: the kernel passes it on
    a moment later; until it is quiet for a tenth of a second, a second at most."""
    import select
    import time
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline and select.select([master], [], [], 0.1)[0]:
        output = _read(master)
        if output == b"":
            return
        _write_all(1, output or b"")


def _raw_in_foreground(terminal) -> None:
    """Raw mode only once hardrun owns the terminal: from the background, stop (and the
    container with us) as any job that wants the terminal is stopped, until `fg`."""
    import termios
    import time
    import tty
    while not terminal.in_foreground():
        os.kill(os.getpid(), signal.SIGTTIN)
        if not terminal.in_foreground():   # `bg`, or a stop the kernel discarded (orphaned group)
            time.sleep(0.1)
    try:
        tty.setraw(0, termios.TCSADRAIN)
    except termios.error:
        pass


def _read(fd: int) -> bytes | None:
    """What `fd` has; None when nothing after all, b"" when it is closed (a pty with no
    slave left, a terminal that hung up: EIO)."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as error:
        if error.errno == errno.EIO:
            return b""
        raise


def _write_some(fd: int, data: bytes) -> int:
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError as error:
        if error.errno in (errno.EIO, errno.EPIPE):   # the container closed its terminal or stdin
            return len(data)
        raise


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except OSError as error:
            if error.errno in (errno.EPIPE, errno.EIO):
                return    # nobody reads our output any more: drop it, keep draining
            raise
