"""hardrun-oci --explain's holder against hostile connections to its socket.

The holder (hardrun.runtime.oci_explain) serves the listener of each process `exec` starts
through a unix socket in the container's state directory (Listener.serve_with_others). Each
test runs one as a process of its own with a low fd limit and plays a hostile `exec`: the
holder must refuse what is not an exec's filter and listener, survive, and still finish once
the init's hand-over is done. The control of each: a genuine exec, whose refused call the
holder answers with the profile's errno."""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys
import tempfile

import pytest

from hardrun.runtime import seccomp_notify
from hardrun.runtime.seccomp import default_filter, set_no_new_privs
from tests.helpers import KEYCTL, KEYRING_ID_CALL, hardrun_env, wait_until
from tests.rootfs import require_root

pytestmark = pytest.mark.runtime

FD_LIMIT = 64
HOLDER = r"""
import os, resource, socket, sys, threading
from hardrun.runtime import seccomp_notify
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[3]), int(sys.argv[3])))
listener = seccomp_notify.Listener(bytes.fromhex(sys.argv[2]))
init_end = socket.socket(fileno=os.dup(listener.child_fd))    # the init's end: the test says when it is done
server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
server.bind(sys.argv[1])
server.listen(8)

def finish():
    sys.stdin.readline()
    init_end.send(b"i")     # the init's hand-over, without a listener: nothing left under the filter

threading.Thread(target=finish, daemon=True).start()
print("ready", flush=True)
listener.serve_with_others(server)
print("served", sorted(nr for _, nr in listener.calls), flush=True)
"""


@pytest.fixture(scope="module")
def default_bpf():
    require_root()
    return default_filter(())


class Holder:
    def __init__(self, reference: bytes):
        self.directory = tempfile.mkdtemp(prefix="hr-holder-")    # a unix socket's path: 108 bytes at most
        self.path = os.path.join(self.directory, "explain.sock")
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, self.path, reference.hex(), str(FD_LIMIT)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=hardrun_env())
        assert self.process.stdout.readline() == "ready\n", self.process.stderr.read()

    def connect(self, timeout: float = 20) -> socket.socket:
        """A connection once the holder's backlog has room (a full one refuses with EAGAIN)."""
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        connection.settimeout(timeout)     # a bound on a failing test, not a measure

        def connected() -> bool:
            try:
                connection.connect(self.path)
            except BlockingIOError:
                return False
            return True
        wait_until(connected, "room in the holder's backlog")
        return connection

    def finish(self) -> str:
        """The init's hand-over done: the holder ends once no listener is left; what it printed."""
        out, err = self.process.communicate("finish\n", timeout=30)
        assert self.process.returncode == 0 and out.startswith("served"), err
        return out

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()
        for name in os.listdir(self.directory):
            os.unlink(os.path.join(self.directory, name))
        os.rmdir(self.directory)


@pytest.fixture
def holder(default_bpf):
    made = []

    def make(reference: bytes = bytes(default_bpf)) -> Holder:
        made.append(Holder(reference))
        return made[-1]
    yield make
    for each in made:
        each.close()


def exec_child(default_bpf, connection: socket.socket) -> tuple[str, int]:
    """A process as `exec` starts one: its explain filter loaded with the listener sent through
    `connection`, then keyctl (which the profile refuses). ("load", errno) or ("call", errno)."""
    libc = ctypes.CDLL(None, use_errno=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            set_no_new_privs()
            try:
                seccomp_notify.ListenedFilter(seccomp_notify.explain_program(default_bpf), default_bpf.flags,
                                              connection.fileno()).load()
            except OSError as error:
                os.write(write_end, f"load {error.errno}".encode())
                os._exit(0)
            ctypes.set_errno(0)
            result = libc.syscall(*KEYRING_ID_CALL)
            os.write(write_end, f"call {ctypes.get_errno() if result == -1 else 0}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    connection.close()
    with os.fdopen(read_end) as handle:
        kind, number = handle.read().split()
    os.waitpid(pid, 0)
    return kind, int(number)


def test_a_genuine_exec_is_answered_with_the_profiles_errno(holder, default_bpf):
    """The control of the tests below: the exec's filter, then its listener; keyctl refused
    with the profile's EPERM by the holder, which records it."""
    served = holder()
    connection = served.connect()
    connection.send(bytes(default_bpf))
    assert exec_child(default_bpf, connection) == ("call", errno.EPERM)
    assert str(KEYCTL) in served.finish()


def test_a_forged_listener_is_closed_not_served(holder, default_bpf):
    """A readable pipe sent as an exec's listener: served, it would keep the holder polling it
    (ioctl failing, at full CPU) and alive for as long as its writer lives. Refused, the holder
    keeps no copy (a write to the pipe breaks) and finishes."""
    served = holder()
    connection = served.connect()
    connection.send(bytes(default_bpf))
    read_end, write_end = os.pipe()
    os.write(write_end, b"always readable")
    socket.send_fds(connection, [b"l"], [read_end])
    os.close(read_end)
    assert connection.recv(1) == b""       # the holder is done with this connection
    connection.close()
    with pytest.raises(BrokenPipeError):
        os.write(write_end, b"x")
    os.close(write_end)
    served.finish()


def test_a_filter_the_holder_cannot_run_is_refused(holder, default_bpf):
    """An exec's filter whose jump leaves the program: judging a call by it would raise in the
    holder and end it (every explained call of the container then fails with ENOSYS and the
    record is lost). Refused as it arrives, the connection is closed and the holder goes on."""
    served = holder()
    escaping = seccomp_notify._pack([(0x05, 0, 0, 100), (0x06, 0, 0, seccomp_notify.RET_ALLOW)])
    connection = served.connect()
    connection.send(escaping)
    assert connection.recv(1) == b"", "the holder kept a filter it cannot run"
    connection.close()
    connection = served.connect()      # and a genuine exec is still answered
    connection.send(bytes(default_bpf))
    assert exec_child(default_bpf, connection) == ("call", errno.EPERM)
    served.finish()


def test_a_flood_of_connections_leaves_the_holder_serving(holder, default_bpf):
    """More idle connections than the holder has fds: each accepted one would cost an fd until
    accept fails (EMFILE) and ends the holder. The oldest pending ones are closed instead, and a
    genuine exec after the flood is answered. The control: the newest idle ones are kept open."""
    served = holder()
    flood = [served.connect() for _ in range(3 * FD_LIMIT)]
    assert all(connection.recv(1) == b"" for connection in flood[:FD_LIMIT])    # the oldest: closed
    newest = flood[-1]
    newest.settimeout(0)
    with pytest.raises(BlockingIOError):
        newest.recv(1)
    connection = served.connect()
    connection.send(bytes(default_bpf))
    assert exec_child(default_bpf, connection) == ("call", errno.EPERM)
    for connection in flood:
        connection.close()
    served.finish()
