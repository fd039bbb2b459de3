"""`--init`: a small reaper that runs as the container's PID 1.

It runs under exactly the confinement of the command (capabilities, no_new_privs and
seccomp are already in force), forks the command, passes the forwarded signals on to
it, reaps every orphan that gets reparented to it (so zombies never pile up), and
exits with the command's status when the command ends; the kernel then kills what is
left in the PID namespace.
"""
from __future__ import annotations

import os
import _signal as signal  # the C module itself: `signal` adds an enum import (milliseconds)

from . import process
from . import syscalls as k


def run(plan: process.ExecPlan, error_fd: int) -> None:
    """Never returns."""
    # The reaper still runs the host's interpreter: non-dumpable, its /proc/1/exe, mem
    # and fds stay out of the container's reach (execve gives the command its own mm).
    try:
        k.set_dumpable(False)
    except OSError as error:
        os.write(error_fd, process.StepFailure("init non-dumpable", error.errno, "").encode())
        os._exit(process.EXIT_SETUP)
    try:
        pid = os.fork()
    except OSError as error:
        os.write(error_fd, process.StepFailure("init fork", error.errno, "").encode())
        os._exit(process.EXIT_SETUP)
    if pid == 0:
        process.reset_signals()
        failure = process.execute(plan)
        os.write(error_fd, failure.encode())
        os._exit(failure.code)
    # Only the command may report an exec failure; the parent sees EOF once it has exec'd.
    os.close(error_fd)
    os._exit(reap(pid))


def reap(main_pid: int) -> int:
    process.forward_signals(main_pid)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return process.EXIT_SETUP
        if pid == main_pid:
            return process.exit_code(status)
