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


def output_of_child(work, *, pass_report_fd: bool = False) -> str:
    """Run `work()` in a forked child that never returns into pytest, and give back the text it
    returned (empty if it raised): for tests that change a process's own state. With
    `pass_report_fd`, `work(fd)` is given the fd its text goes through (to keep it open)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.write(write_end, (work(write_end) if pass_report_fd else work()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as report:
        text = report.read()
    os.waitpid(pid, 0)
    return text


# -- as another user, the id-range leases, keyctl -------------------------------------------

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"   # the test venv's interpreter may not be reachable by another user


def as_user(uid: int, *argv: str) -> list[str]:
    """`argv` run as `uid` (its gid the same, no supplementary groups), through setpriv."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]


def system_python() -> str:
    """Debian's python3, which runs hardrun as a non-root user; the test fails without it."""
    assert os.access(SYSTEM_PYTHON, os.X_OK), "python3 (Debian) is needed to run hardrun as a non-root user"
    return SYSTEM_PYTHON


def lease_holders(directory) -> dict:
    """The user-namespace id-range leases in `directory` (a state root's userns.RANGES_DIR):
    each lease's name -> the pids of its holders, in order. The lock and a writer's temporary
    files are left out; a lease gone meanwhile, or no directory yet, is no lease."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return {}
    leases = {}
    for name in names:
        if name == "lock" or name.startswith("."):
            continue
        try:
            with open(os.path.join(directory, name)) as handle:
                leases[name] = [int(line.split()[0]) for line in handle.read().splitlines() if line]
        except FileNotFoundError:
            continue
    return leases


# keyctl(2) (x86_64's number), which the default seccomp profile refuses: the kernel keyring
# is not namespaced. KEYRING_ID_CALL asks for the session keyring's id, creating it.
KEYCTL, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, KEY_SPEC_PROCESS_KEYRING = 250, 0, -3, -2
KEYRING_ID_CALL = (KEYCTL, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1)
