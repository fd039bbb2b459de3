"""Small helpers shared by the tests: the checkout, its test data, `hardrun` as a user runs it."""
import os
import subprocess
import sys
import time
from pathlib import Path


def rule_for(practice: str) -> str:
    """The id of the first rule of `practice` (tests name practices, not ids)."""
    # imported here: conftest imports this module, and a test session must not load the audit up front
    from hardrun.audit.rules import all_rules
    for rule in all_rules().values():
        if rule.practice == practice:
            return rule.id
    raise LookupError(practice)


ROOT_DOCKERFILE = "FROM alpine:3.20\nRUN echo hi\n"
CLEAN_DOCKERFILE = ("FROM alpine:3.20@sha256:" + "a" * 64 + "\n"
                    "USER 10001:10001\n"
                    "HEALTHCHECK CMD [\"true\"]\n")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def hardrun_env(env=None) -> dict:
    """The caller's environment with this checkout importable, plus `env`."""
    full_env = dict(os.environ)
    # no empty entry: it would put the current directory on the path
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    return full_env


def run_hardrun(*args, input=None, env=None, cwd=None, timeout=120, pass_fds=()):
    """Run the `hardrun` command as a user would (a fresh interpreter) and capture it."""
    return subprocess.run([sys.executable, "-m", "hardrun", *args], input=input, env=hardrun_env(env),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, pass_fds=pass_fds)


def popen_hardrun(*args, env=None, **kwargs):
    """Start the `hardrun` command with its output on pipes, for tests that act while it runs."""
    return subprocess.Popen([sys.executable, "-m", "hardrun", *args], env=hardrun_env(env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def read_until_closed(master: int) -> bytes:
    """All a pseudo-terminal's program side wrote, read from `master` until that side is closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:          # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def wait_until(predicate, what: str = "", timeout: float = 20.0, interval: float = 0.01):
    """Poll `predicate` until it returns something true (no fixed sleeps) and return that;
    fail the test after `timeout` seconds, naming `what` (or the predicate)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def record_calls(monkeypatch, owner, name: str, what=lambda first, *rest, **named: first) -> list:
    """Wrap `owner.name` so that each call is still made and `what(*its arguments)` is appended
    to the list returned (by default the first argument): how a test counts cache misses."""
    calls: list = []
    real = getattr(owner, name)

    def recording(*args, **kwargs):
        calls.append(what(*args, **kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls


def output_of_child(work) -> str:
    """Run `work()` in a forked child that never returns into pytest, and give back the text it
    returned (empty if it raised): for tests that change a process's own state."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.write(write_end, work().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as report:
        text = report.read()
    os.waitpid(pid, 0)
    return text
