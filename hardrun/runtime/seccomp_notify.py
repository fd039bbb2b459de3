"""seccomp user notification for `--explain` and `--seccomp-learn`: the filters, the
listener hand-over and the parent's answering thread.

Explain: every refusing `return ERRNO` of the profile's compiled filter becomes `return
USER_NOTIF`. The parent receives each such call, runs the profile's *unchanged* filter on
the same seccomp_data (a small classic-BPF interpreter, below) and answers with exactly the
errno it gives; it never answers with SECCOMP_USER_NOTIF_FLAG_CONTINUE. Calls the profile
allows return ALLOW in the kernel as before and never reach the parent. When the listener
is closed (the parent died), the kernel fails every notified call with ENOSYS.

Learn: every call is notified and continued (learning is not a sandbox) and recorded.

Hand-over: the child loads the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER and sends the
listener fd to the parent over a unix socket (SCM_RIGHTS), in one C call
(`_kernel.seccomp_load_and_send`). SCM_RIGHTS rather than pidfd_getfd: pidfd_getfd needs
ptrace rights over the child, which a child that has switched users and dropped its
capabilities may no longer grant, and it would need the child to wait, with more system
calls, until the parent has taken the fd before execve. Until the parent holds the
listener, a notified call would wait for an answer nobody can give, so the two calls the
hand-over makes after the load (sendmsg, close) skip the notification: where the profile
refuses them, they get its errno directly.
"""
from __future__ import annotations

import os
import struct
import threading

from ..errors import UsageError
from .seccomp_cache import is_bpf_program
from .syscalls import _kernel

RET_USER_NOTIF = 0x7FC00000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
ACTION_MASK = 0xFFFF0000
FLAG_NEW_LISTENER = 8
NOTIF_FLAG_CONTINUE = 1

_INSN = struct.Struct("=HBBI")
_LD_W_ABS, _JMP_JA, _JEQ_K, _RET_K, _RET_A = 0x20, 0x05, 0x15, 0x06, 0x16
_OFFSET_NR, _OFFSET_ARCH = 0, 4
_BPF_MAXINSNS = 4096
# struct seccomp_notif: id, pid, flags, then struct seccomp_data: nr, arch, ip, args[6]
_NOTIF = struct.Struct("=QIIiIQ6Q")
_RESPONSE = struct.Struct("=QqiI")      # struct seccomp_notif_resp: id, val, error, flags
_IOCTL_RECV = 0xC0000000 | _NOTIF.size << 16 | 0x21 << 8 | 0
_IOCTL_SEND = 0xC0000000 | _RESPONSE.size << 16 | 0x21 << 8 | 1
_IOCTL_ID_VALID = 0x40000000 | 8 << 16 | 0x21 << 8 | 2
# The calls _kernel.seccomp_load_and_send makes after the load (see the module's doc).
HANDOVER_CALLS = ("sendmsg", "close")
# exec connections a holder keeps before their listener comes; past it the oldest is closed
MAX_PENDING_EXECS = 16
_LISTENER_LINK = "anon_inode:seccomp notify"    # what /proc/self/fd/N reads for a listener


def user_notif_available() -> bool:
    """Whether this kernel has SECCOMP_RET_USER_NOTIF (Linux 5.0)."""
    return bool(_kernel.seccomp_action_available(RET_USER_NOTIF))


def require_user_notif(flag: str) -> None:
    if not user_notif_available():
        raise UsageError(f"{flag}: this kernel lacks seccomp user notification (SECCOMP_RET_USER_NOTIF, "
                         "Linux 5.0 or later)", hint=f"run without {flag}")


def _instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [_INSN.unpack_from(program, offset) for offset in range(0, len(program), _INSN.size)]


def _pack(instructions) -> bytes:
    return b"".join(_INSN.pack(*insn) for insn in instructions)


def _native_handover() -> tuple[int, list[int]]:
    from .seccomp_bpf import ARCH_TOKENS, resolve_syscall
    from .seccomp_platform import native_arch

    native = native_arch()
    return ARCH_TOKENS[native], [resolve_syscall(native, name) for name in HANDOVER_CALLS]


def _tail(handover_return: int) -> list:
    """`return USER_NOTIF`, but `return handover_return` for the native hand-over calls."""
    audit_arch, numbers = _native_handover()
    count = len(numbers)
    # 0 ld arch; 1 jeq native; 2 ld nr; 3.. jeq each number; 3+count: notify; 4+count: the return
    tail = [(_LD_W_ABS, 0, 0, _OFFSET_ARCH), (_JEQ_K, 0, count + 1, audit_arch),
            (_LD_W_ABS, 0, 0, _OFFSET_NR)]
    for position, number in enumerate(numbers, start=3):
        tail.append((_JEQ_K, 4 + count - position - 1, 0, number))
    return tail + [(_RET_K, 0, 0, RET_USER_NOTIF), (_RET_K, 0, 0, handover_return)]


def explain_program(program: bytes) -> bytes:
    """The filter `program` with each refusing ERRNO return turned into a jump to a tail
    that notifies (kill, trap and trace returns stay as they are). Allowed calls run the
    very instructions they ran before: the tails are only reached by refusals."""
    if not is_bpf_program(program):
        raise UsageError(f"seccomp: {len(program)} bytes is not a BPF program")
    _require_handover_allowed(program)
    body = _instructions(program)
    tails: dict[int, int] = {}       # refusing return value -> where its tail starts
    appended: list = []
    for code, _, _, k in body:
        if code == _RET_A:
            raise UsageError("seccomp: this filter returns computed actions; it cannot be explained")
        if code == _RET_K and k & ACTION_MASK == RET_ERRNO and k not in tails:
            tails[k] = len(body) + len(appended)
            appended += _tail(k)
    patched = [(_JMP_JA, 0, 0, tails[k] - position - 1) if code == _RET_K and k in tails else (code, jt, jf, k)
               for position, (code, jt, jf, k) in enumerate(body)]
    if len(patched) + len(appended) > _BPF_MAXINSNS:
        raise UsageError(f"seccomp: the profile's filter ({len(body)} instructions) is too large to be "
                         "explained", hint="run without --explain")
    return _pack(patched + appended)


def _require_handover_allowed(program: bytes) -> None:
    """The listener reaches the parent only if the profile lets the hand-over's calls
    through: otherwise the send fails, the listener stays open in the child, and its next
    refused call would wait for an answer forever."""
    arch, numbers = _native_handover()
    refused = [name for name, number in zip(HANDOVER_CALLS, numbers)
               if run_filter(program, number, arch, 0, (0,) * 6) & ACTION_MASK != RET_ALLOW]
    if refused:
        raise UsageError(f"seccomp: --explain needs a profile that allows {' and '.join(refused)} "
                         "(they hand the listener to hardrun); this one refuses them",
                         hint="run with --explain=never")


def learn_program() -> bytes:
    """Every call notified (and continued by the parent), but the hand-over's."""
    return _pack(_tail(RET_ALLOW))


# -- a classic-BPF interpreter, for the verdict of the unchanged filter --------------------

_DATA = struct.Struct("=iIQ6Q")
_MASK32 = 0xFFFFFFFF


def run_filter(program: bytes, nr: int, arch: int, ip: int, args) -> int:
    """What the seccomp filter `program` returns for this call (the kernel's semantics for
    the instructions a seccomp filter may use)."""
    return judged(program, nr, arch, ip, args)[0]


def judged(program: bytes, nr: int, arch: int, ip: int, args) -> tuple[int, bool]:
    """run_filter's verdict, and whether it read more than the number and architecture
    (when not, the verdict holds for every call of that number)."""
    data = _DATA.pack(nr, arch, ip, *args)
    read_more = False
    insns = _instructions(program)
    a = x = 0
    memory = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        kind = code & 0x07
        if kind == 0x06:                                    # RET
            return (a if code & 0x18 == 0x10 else k) & _MASK32, read_more
        if kind == 0x00:                                    # LD
            mode = code & 0xE0
            read_more = read_more or (mode == 0x20 and k >= 8) or mode == 0x60
            a = (struct.unpack_from("=I", data, k)[0] if mode == 0x20 else memory[k] if mode == 0x60
                 else len(data) if mode == 0x80 else k)
        elif kind == 0x01:                                  # LDX
            mode = code & 0xE0
            x = memory[k] if mode == 0x60 else len(data) if mode == 0x80 else k
        elif kind == 0x02:                                  # ST
            memory[k] = a
        elif kind == 0x03:                                  # STX
            memory[k] = x
        elif kind == 0x04:                                  # ALU
            a = _alu(code & 0xF0, a, x if code & 0x08 else k)
        elif kind == 0x05:                                  # JMP
            op = code & 0xF0
            if op == 0x00:
                pc += k
                continue
            operand = x if code & 0x08 else k
            taken = (a == operand if op == 0x10 else a > operand if op == 0x20
                     else a >= operand if op == 0x30 else bool(a & operand))
            pc += jt if taken else jf
        else:                                               # MISC: TAX / TXA
            if code & 0xF8 == 0x80:
                a = x
            else:
                x = a


_ALU_OPS = frozenset(range(0x00, 0xB0, 0x10))
_CONDITIONAL_JUMPS = frozenset((0x10, 0x20, 0x30, 0x40))    # JEQ, JGT, JGE, JSET
_PLAIN_CODES = frozenset((0x00, 0x80, 0x01, 0x81, 0x06, 0x16, 0x07, 0x87))   # LD/LDX IMM and LEN, RET, TAX, TXA


def runnable(program: bytes) -> bool:
    """Whether `judged` runs `program` to a verdict for every call, as the kernel checks a
    filter before it loads one: known instructions only, every jump inside the program, loads
    within seccomp_data and the scratch memory, a return last. The holder takes an exec's
    filter from a socket: one that is not runnable would end it at its first call."""
    if not is_bpf_program(program):
        return False
    insns = _instructions(program)
    for pc, (code, jt, jf, k) in enumerate(insns):
        if code in _PLAIN_CODES:
            continue
        if code == _LD_W_ABS:
            fits = k % 4 == 0 and k + 4 <= _DATA.size
        elif code in (0x60, 0x61, 0x02, 0x03):       # LD/LDX MEM, ST, STX
            fits = k < 16
        elif code & 0x07 == 0x04:                    # ALU, K or X
            fits = code & 0xF0 in _ALU_OPS
        elif code == _JMP_JA:
            fits = pc + 1 + k < len(insns)
        elif code & 0x07 == 0x05:
            fits = code & 0xF0 in _CONDITIONAL_JUMPS and pc + 1 + max(jt, jf) < len(insns)
        else:
            fits = False
        if not fits:
            return False
    return insns[-1][0] & 0x07 == 0x06


def is_listener(fd: int) -> bool:
    """Whether `fd` is a seccomp listener (what the holder may be sent is anyone's fd)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == _LISTENER_LINK
    except OSError:
        return False


def _alu(op: int, a: int, operand: int) -> int:
    if op == 0x80:
        return -a & _MASK32
    result = {0x00: lambda: a + operand, 0x10: lambda: a - operand, 0x20: lambda: a * operand,
              0x30: lambda: a // operand if operand else 0, 0x40: lambda: a | operand,
              0x50: lambda: a & operand, 0x60: lambda: a << (operand & 31),
              0x70: lambda: a >> (operand & 31), 0x90: lambda: a % operand if operand else 0,
              0xA0: lambda: a ^ operand}[op]()
    return result & _MASK32


# -- the parent's side ---------------------------------------------------------------------

class Call:
    """What was seen of one system call (arch, nr): how often, who called it first, the
    filter's verdict (explain) and the arguments of the first call."""
    __slots__ = ("arch", "nr", "count", "pid", "container_pid", "comm", "verdict", "args", "verdicts")

    def __init__(self, arch: int, nr: int, verdict: int, args: tuple):
        self.arch, self.nr, self.verdict, self.args = arch, nr, verdict, args
        self.count = 0
        self.pid: int | None = None             # the caller's, in hardrun's pid namespace
        self.container_pid: int | None = None   # the caller's, in its own (None: unknown)
        self.comm = ""
        self.verdicts: set[int] = set()


class Listener:
    """The parent's end: `child_fd` is kept open in the child until the hand-over; after
    clone, `start()` receives the listener and answers in a thread; `stop()` after the
    container has exited. `reference` is the unchanged filter (explain), or None (learn:
    every call continued). `judge`: an optional filter whose verdict is kept per call
    (learn: the built-in profile's, to know which argument rules the calls satisfy)."""

    def __init__(self, reference: bytes | None, judge: bytes | None = None):
        import socket

        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket = parent_end
        self._child_socket = child_end
        self.child_fd = child_end.fileno()
        self.reference = reference
        self.judge = judge
        self.calls: dict[tuple[int, int], Call] = {}
        self._verdicts: dict[tuple[int, int], int] = {}   # where the filter reads nothing else
        self.error: BaseException | None = None
        self._stop_read, self._stop_write = os.pipe2(os.O_CLOEXEC)
        self._thread: threading.Thread | None = None
        self._on_call = None

    def start(self) -> None:
        """In the parent after clone (the forwarded signals still blocked, so the thread
        keeps them blocked and they reach the main thread)."""
        self._child_socket.close()
        self._thread = threading.Thread(target=self._serve, name="hardrun-seccomp-listener", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Close this process's ends of the socket pair (hardrun-oci create, once the holder
        and the init have theirs)."""
        self._socket.close()
        self._child_socket.close()
        for fd in (self._stop_read, self._stop_write):
            if fd >= 0:
                os.close(fd)
        self._stop_read = self._stop_write = -1

    def close_child_end(self) -> None:
        self._child_socket.close()

    def fds(self) -> tuple[int, ...]:
        """The fds `serve` needs (the holder keeps these and closes every other)."""
        return (self._socket.fileno(), self._stop_read, self._stop_write)

    def stop(self) -> None:
        if self._thread is not None:
            os.write(self._stop_write, b"x")
            self._thread.join()
            self._thread = None
        for fd in (self._stop_read, self._stop_write):
            os.close(fd)
        self._stop_read = self._stop_write = -1
        self._socket.close()
        self._child_socket.close()

    def serve(self, on_call=None) -> None:
        """Receive the listener and answer in this thread until no process is left under
        the filter (hardrun-oci's holder, hardrun.runtime.oci_explain); `on_call(calls)`
        after each answer."""
        self.close_child_end()
        self._on_call = on_call
        self._serve()
        if self.error is not None:
            raise self.error

    def _serve(self) -> None:
        try:
            listener = self._receive()
            if listener is None:
                return
            try:
                self._answer_all(listener)
            finally:
                os.close(listener)
        except BaseException as error:   # reported by stop()'s caller; the container goes on
            self.error = error

    def _receive(self) -> int | None:
        import select
        import socket

        poller = select.poll()
        poller.register(self._socket.fileno(), select.POLLIN)
        poller.register(self._stop_read, select.POLLIN)
        ready = dict(poller.poll())
        if self._stop_read in ready and self._socket.fileno() not in ready:
            return None
        _, fds, _, _ = socket.recv_fds(self._socket, 1, 1, socket.MSG_CMSG_CLOEXEC)
        return fds[0] if fds else None

    def _answer_all(self, listener: int) -> None:
        import fcntl
        import select

        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(self._stop_read, select.POLLIN)
        buffer = bytearray(_NOTIF.size)
        while True:
            ready = dict(poller.poll())
            if ready.get(listener, 0) & select.POLLIN:
                buffer[:] = bytes(_NOTIF.size)   # the kernel wants it zeroed
                try:
                    fcntl.ioctl(listener, _IOCTL_RECV, buffer)
                except OSError:
                    continue   # the caller was killed meanwhile (ENOENT) or interrupted
                self._answer(fcntl, listener, _NOTIF.unpack(buffer))
            elif listener in ready or self._stop_read in ready:
                return         # POLLHUP: no process is left under the filter

    def serve_with_others(self, server, on_call=None) -> None:
        """hardrun-oci's holder: the init's listener as `serve` does, and the listener of each
        process `exec` starts in the container: a connection to `server` (a listening unix
        SOCK_SEQPACKET socket) that sends that process's unchanged filter, then its listener.
        Each is answered by its own filter into the one record, until the init's listener is
        received and no process is left under any of them."""
        import fcntl
        import select
        import socket
        self.close_child_end()
        self._on_call = on_call
        poller = select.poll()
        for fd in (self._socket.fileno(), server.fileno(), self._stop_read):
            poller.register(fd, select.POLLIN)
        connections: dict[int, list] = {}      # fd -> [socket, its filter or None]
        listeners: dict[int, tuple] = {}       # notify fd -> (its filter, its verdicts)
        received_init = False
        buffer = bytearray(_NOTIF.size)
        while not (received_init and not listeners):
            for fd, events in poller.poll():
                if fd == self._stop_read:
                    return
                if fd == self._socket.fileno():
                    poller.unregister(fd)
                    received_init = True
                    _, fds, _, _ = socket.recv_fds(self._socket, 1, 1, socket.MSG_CMSG_CLOEXEC)
                    for notify_fd in fds:
                        if _keep_listener(notify_fd):
                            listeners[notify_fd] = (self.reference, self._verdicts)
                            poller.register(notify_fd, select.POLLIN)
                elif fd == server.fileno():
                    self._accept(server, connections, poller, select)
                elif fd in connections:
                    self._take_exec(connections, fd, listeners, poller, socket, select)
                elif events & select.POLLIN:
                    buffer[:] = bytes(_NOTIF.size)
                    try:
                        fcntl.ioctl(fd, _IOCTL_RECV, buffer)
                    except OSError:
                        continue
                    self._answer(fcntl, fd, _NOTIF.unpack(buffer), listeners[fd])
                else:                  # POLLHUP: no process is left under this listener
                    poller.unregister(fd)
                    os.close(fd)
                    del listeners[fd]

    @staticmethod
    def _accept(server, connections: dict, poller, select) -> None:
        """A new exec's connection. Past MAX_PENDING_EXECS waiting for their listener, or out of
        fds, the oldest is closed (its exec fails, refused): idle connections cannot use up the
        holder's fds and end it."""
        while len(connections) >= MAX_PENDING_EXECS:
            _close_connection(connections, next(iter(connections)), poller)
        try:
            connection, _ = server.accept()
        except OSError:           # EMFILE, ENFILE, ECONNABORTED: the next poll tries again
            if connections:
                _close_connection(connections, next(iter(connections)), poller)
            return
        connections[connection.fileno()] = [connection, None]
        poller.register(connection.fileno(), select.POLLIN)

    @staticmethod
    def _take_exec(connections: dict, fd: int, listeners: dict, poller, socket, select) -> None:
        """An exec's connection: its filter first (one `judged` can run), then its listener (a
        seccomp listener, nothing else); then it is closed."""
        connection, reference = connections[fd]
        try:
            data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 1, socket.MSG_CMSG_CLOEXEC)
        except OSError:
            data, fds = b"", []
        if reference is None and runnable(data) and not fds:
            connections[fd][1] = data
            return
        if fds and reference is not None:
            listener, *strays = fds
            if _keep_listener(listener):
                listeners[listener] = (reference, {})
                poller.register(listener, select.POLLIN)
        else:
            strays = fds
        for stray in strays:
            os.close(stray)
        _close_connection(connections, fd, poller)

    def _answer(self, fcntl, listener: int, notif: tuple, judged_by: tuple | None = None) -> None:
        """`judged_by`: (the unchanged filter, its verdicts) of another process's listener."""
        ident, pid, _, nr, arch, ip = notif[:6]
        args = notif[6:]
        reference, verdicts = judged_by or (self.reference, self._verdicts)
        if reference is None:
            verdict, error, flags = RET_ALLOW, 0, NOTIF_FLAG_CONTINUE
        else:
            cached = verdicts.get((arch, nr))
            if cached is not None:
                verdict = cached
            else:
                verdict, read_more = judged(reference, nr, arch, ip, args)
                if not read_more:
                    verdicts[(arch, nr)] = verdict
            # Only ever an error: an ERRNO verdict's own errno; anything else (never expected,
            # since only ERRNO returns were turned into notifications) fails the call too.
            error = -(verdict & 0xFFFF) if verdict & ACTION_MASK == RET_ERRNO else -1
            flags = 0
        call = self.calls.get((arch, nr))
        if call is None:
            call = self.calls[(arch, nr)] = Call(arch, nr, verdict, args)
            call.pid = pid
            call.container_pid, call.comm = _who(pid)
            try:   # the pid was still the caller's while we read /proc (not reused)
                fcntl.ioctl(listener, _IOCTL_ID_VALID, struct.pack("=Q", ident))
            except OSError:
                call.container_pid, call.comm = None, ""
        call.count += 1
        if self.judge is not None:
            call.verdicts.add(run_filter(self.judge, nr, arch, ip, args))
        try:
            fcntl.ioctl(listener, _IOCTL_SEND, _RESPONSE.pack(ident, 0, error, flags))
        except OSError:
            pass   # the caller was killed while we decided (ENOENT)
        if self._on_call is not None:
            self._on_call(self.calls)


def _keep_listener(fd: int) -> bool:
    """True for a seccomp listener; anything else sent in its place is closed (polled, a pipe
    or a file would be readable forever, and never hang up)."""
    if is_listener(fd):
        return True
    os.close(fd)
    return False


def _close_connection(connections: dict, fd: int, poller) -> None:
    poller.unregister(fd)
    connections.pop(fd)[0].close()


def _who(pid: int) -> tuple[int | None, str]:
    """The caller's pid in its own pid namespace and its comm, from /proc."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as handle:
            status = handle.read()
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            comm = handle.read().rstrip("\n")
    except OSError:
        return None, ""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1]), comm
    return pid, comm


class ListenedFilter:
    """A filter loaded by the child with a listener that goes to the parent (the
    PreparedFilter interface: `load()`)."""

    def __init__(self, program: bytes, flags: int, child_fd: int):
        if not is_bpf_program(program):
            raise UsageError(f"seccomp: {len(program)} bytes is not a BPF program")
        self._program = bytes(program)
        self.flags = flags
        self.child_fd = child_fd

    def load(self) -> None:
        try:
            _kernel.seccomp_load_and_send(self._program, self.flags, self.child_fd)
        except OSError as error:
            raise OSError(error.errno, f"seccomp: loading the filter with a listener failed: {error.strerror}") \
                from None
