"""Process plumbing shared by parent, child and init: signals, exec, exit statuses,
and the failure report the child sends back over a pipe."""
from __future__ import annotations

import errno
import os
import _signal as signal  # the C module itself: `signal` adds an enum import (milliseconds)

# Signals the parent (and `--init`) pass on to the container.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
# Python sets these to "ignore" at start-up; ignored dispositions survive execve.
PYTHON_IGNORED = (signal.SIGPIPE, signal.SIGXFSZ)

EXIT_SETUP = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class StepFailure(Exception):
    """A setup step failed: what the user sees is `hardrun: <step>: <strerror> (<hint>)`."""

    def __init__(self, step: str, errno_: int | None, hint: str = "", code: int = EXIT_SETUP):
        super().__init__(step)
        self.step, self.errno, self.hint, self.code = step, errno_, hint, code

    def line(self) -> str:
        reason = os.strerror(self.errno) if self.errno else "failed"
        text = f"hardrun: {self.step}: {reason}"
        return f"{text} ({self.hint})" if self.hint else text

    def encode(self) -> bytes:
        data = f"{self.code}\0{self.step}\0{self.errno}\0{self.hint}".encode("utf-8", "replace")
        return data[:4000]  # one write below PIPE_BUF arrives whole

    @classmethod
    def decode(cls, data: bytes) -> "StepFailure":
        try:
            code, step, number, hint = data.decode("utf-8", "replace").split("\0", 3)
            return cls(step, int(number), hint, int(code))
        except ValueError:
            return cls("child", 0, "the container's set-up reported an unreadable failure")


def forward_signals(pid: int) -> None:
    """Pass every FORWARDED signal this process receives on to `pid` (gone: ignored)."""
    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    for signum in FORWARDED:
        signal.signal(signum, forward)


def reset_signals() -> None:
    """Default dispositions and an empty mask, as a freshly exec'd program expects."""
    for signum in PYTHON_IGNORED + FORWARDED:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class ExecPlan:
    """argv/env as bytes, ready before clone so the child allocates little and imports nothing."""
    __slots__ = ("name", "argv", "env", "search")

    def __init__(self, args, env):
        self.name = args[0]
        self.argv = [arg.encode() for arg in args]
        self.env = {}
        for entry in env:
            key, _, value = entry.partition("=")
            self.env[key.encode()] = value.encode()
        path = self.env.get(b"PATH", b"").decode()
        if "/" in self.name:
            self.search = [self.name.encode()]
        else:
            self.search = [f"{directory or '.'}/{self.name}".encode() for directory in path.split(":")]


def execute(plan: ExecPlan, execve=os.execve) -> StepFailure:
    """execve each candidate path in turn like execvp; only returns on failure, with the
    status a shell gives: 127 when nothing was found, 126 when found but not runnable."""
    denied = None
    for candidate in plan.search:
        try:
            execve(candidate, plan.argv, plan.env)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            if error.errno == errno.EACCES and len(plan.search) > 1:
                denied = error
                continue
            return StepFailure(f"exec {plan.name}", error.errno, _exec_hint(error.errno), EXIT_NOT_EXECUTABLE)
    if denied is not None:
        return StepFailure(f"exec {plan.name}", denied.errno, _exec_hint(denied.errno), EXIT_NOT_EXECUTABLE)
    where = "in $PATH inside the container" if "/" not in plan.name else "inside the container"
    return StepFailure(f"exec {plan.name}", errno.ENOENT, f"no such executable {where}", EXIT_NOT_FOUND)


def _exec_hint(number: int | None) -> str:
    if number == errno.EACCES:
        return "the file is not executable, or its filesystem is mounted noexec"
    if number == errno.ENOEXEC:
        return "not a binary or script this kernel can run"
    return "the command cannot be executed"


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (field 3 first); None when
    there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return text[text.rindex(b")") + 2:].split()


def running(pid: int, start_time: int | None) -> bool:
    """Whether process `pid` runs and is the one started at `start_time` (clock ticks, field 22
    of /proc/PID/stat): a zombie has run its course, and a reused pid is another process."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in (b"Z", b"X") and int(fields[19]) == start_time


def poll_until(condition, timeout: float = 1.0) -> bool:
    """Call `condition` every millisecond until it is true (True) or `timeout` seconds
    have passed (False): for kernel states that no file descriptor reports."""
    import time
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
