"""seccomp that explains itself (--explain) and learns (--seccomp-learn).

The listener's safety is tested in the kernel: a refused call under the explain filter
fails with the profile's errno (control: the same call without the filter succeeds), and
with the listener's holder killed the call fails too (ENOSYS), never succeeds.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import sys
import time

import pytest

from hardrun.errors import UsageError
from hardrun.runtime import seccomp, seccomp_cache, seccomp_explain, seccomp_notify
from hardrun.runtime.seccomp import default_filter, default_profile, set_no_new_privs
from hardrun.runtime.seccomp_show import allowed_names
from tests.helpers import KEYCTL, KEYRING_ID_CALL, read_until_closed, run_hardrun
from tests.rootfs import require_root

pytestmark = pytest.mark.runtime

GETPID = 39
AUDIT_X86_64 = 0xC000003E
libc = ctypes.CDLL(None, use_errno=True)


def _keyctl() -> tuple[int, int]:
    ctypes.set_errno(0)
    result = libc.syscall(*KEYRING_ID_CALL)
    return result, ctypes.get_errno()


@pytest.fixture(scope="module")
def default_bpf():
    require_root()
    return default_filter(())


def _child(action, program=None, flags=0, socket_fd=None) -> tuple[int, int]:
    """Fork; the child loads `program` with its listener sent over `socket_fd` (or loads
    nothing), runs `action()` and reports its (result, errno) through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if program is not None:
                set_no_new_privs()
                seccomp_notify.ListenedFilter(program, flags, socket_fd).load()
            result, number = action()
            os.write(write_end, f"{result} {number}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


def _result(pid: int, read_end: int) -> tuple[int, int]:
    data = os.read(read_end, 100)
    os.close(read_end)
    os.waitpid(pid, 0)
    result, number = data.split()
    return int(result), int(number)


def test_the_explain_filter_notifies_only_refusals_and_leaves_the_cached_filter_alone(default_bpf):
    program = seccomp_notify.explain_program(default_bpf)

    def returns(bpf):
        return [k for code, _, _, k in seccomp_notify._instructions(bpf) if code == 0x06]
    original = seccomp_notify._instructions(default_bpf)
    explained = seccomp_notify._instructions(program)
    refusals = [insn for insn in original if insn[0] == 0x06 and insn[3] & 0xFFFF0000 == seccomp_notify.RET_ERRNO]
    assert refusals   # the built-in profile refuses some calls
    # the same program but each refusing return, which jumps to a tail that notifies
    for position, (before, after) in enumerate(zip(original, explained)):
        if before in refusals:
            assert after[0] == 0x05   # a jump, forward to the tails
            target = position + 1 + after[3]
            assert target >= len(original) and seccomp_notify.RET_USER_NOTIF in returns(
                seccomp_notify._pack(explained[target:target + 7]))
        else:
            assert before == after
    assert seccomp_notify.RET_ALLOW not in returns(seccomp_notify._pack(explained[len(original):]))
    # the cached program is the profile's own, whether a run explains or not
    cached = seccomp_cache.read_cached(seccomp_cache.default_cache_dir(), seccomp.default_cache_key(()))
    assert cached is not None and cached[0] == bytes(default_bpf)
    assert seccomp_notify.RET_USER_NOTIF not in {k for c, _, _, k in seccomp_notify._instructions(cached[0])
                                                 if c == 0x06}


def test_the_interpreter_gives_the_filters_own_verdicts(default_bpf):
    verdict = seccomp_notify.run_filter
    assert verdict(default_bpf, KEYCTL, AUDIT_X86_64, 0, (0,) * 6) == seccomp_notify.RET_ERRNO | errno.EPERM
    assert verdict(default_bpf, GETPID, AUDIT_X86_64, 0, (0,) * 6) == seccomp_notify.RET_ALLOW
    assert verdict(default_bpf, 1000, AUDIT_X86_64, 0, (0,) * 6) == seccomp_notify.RET_ERRNO | errno.ENOSYS
    # socket(AF_ALG) refused, socket(AF_INET) allowed: argument rules
    assert verdict(default_bpf, 41, AUDIT_X86_64, 0, (38, 5, 0, 0, 0, 0)) == seccomp_notify.RET_ERRNO | errno.EPERM
    assert verdict(default_bpf, 41, AUDIT_X86_64, 0, (2, 1, 0, 0, 0, 0)) == seccomp_notify.RET_ALLOW


def test_the_holder_takes_only_filters_the_interpreter_runs_to_a_verdict(default_bpf):
    """runnable: what an exec's connection may hand the holder as its filter."""
    pack, runnable = seccomp_notify._pack, seccomp_notify.runnable
    allow = (0x06, 0, 0, seccomp_notify.RET_ALLOW)
    assert runnable(bytes(default_bpf))
    assert runnable(seccomp_notify.explain_program(default_bpf))
    assert runnable(pack([(0x15, 1, 0, 39), allow, allow]))      # JEQ to the last instruction
    refused = {
        "jump past the end": [(0x05, 0, 0, 1), allow],
        "conditional jump past the end": [(0x15, 2, 0, 39), allow],
        "load beyond seccomp_data": [(0x20, 0, 0, 64), allow],
        "unaligned load": [(0x20, 0, 0, 2), allow],
        "scratch memory past its 16 words": [(0x60, 0, 0, 16), allow],
        "unknown ALU operation": [(0xB4, 0, 0, 0), allow],
        "indirect load": [(0x40, 0, 0, 0), allow],
        "no return last": [allow, (0x20, 0, 0, 0)],
    }
    for what, instructions in refused.items():
        assert not runnable(pack(instructions)), what
    assert not runnable(b"") and not runnable(pack([allow])[:-1])


def test_a_refused_call_gets_the_profiles_errno_and_is_recorded(default_bpf):
    assert _result(*_child(_keyctl))[0] >= 0   # control: without the filter keyctl works
    listener = seccomp_notify.Listener(bytes(default_bpf))
    program = seccomp_notify.explain_program(default_bpf)

    def calls():
        refused = _keyctl()
        ctypes.set_errno(0)
        unknown = libc.syscall(1000, 0), ctypes.get_errno()
        allowed = libc.syscall(GETPID)
        return refused[0], refused[1] * 1000 + unknown[1] + (0 if allowed > 0 else 100000)

    pid, read_end = _child(calls, program, default_bpf.flags, listener.child_fd)
    listener.start()
    result, numbers = _result(pid, read_end)
    listener.stop()
    assert result == -1 and numbers == errno.EPERM * 1000 + errno.ENOSYS   # as without explain
    keyctl = listener.calls[(AUDIT_X86_64, KEYCTL)]
    assert keyctl.count == 1 and keyctl.pid == pid and keyctl.comm
    assert (AUDIT_X86_64, GETPID) not in listener.calls   # allowed calls never reach the parent


HOLDER = r"""
import os, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
_, fds, _, _ = socket.recv_fds(sock, 1, 1)
os.write(1, b"got")
os.read(0, 1)   # never answers: holds the listener until killed
"""


def test_a_dead_listener_fails_the_call_never_allows_it(default_bpf):
    import subprocess
    assert _result(*_child(_keyctl))[0] >= 0   # control: keyctl works without the filter
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(parent_end.fileno())],
                              pass_fds=[parent_end.fileno()], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    parent_end.close()
    try:
        program = seccomp_notify.explain_program(default_bpf)
        pid, read_end = _child(_keyctl, program, default_bpf.flags, child_end.fileno())
        child_end.close()
        assert holder.stdout.read(3) == b"got"
        # wait until the child is blocked in keyctl, waiting for an answer
        for _ in range(10000):
            with open(f"/proc/{pid}/syscall") as handle:
                if handle.read().split()[0] == str(KEYCTL):
                    break
            time.sleep(0.001)
        else:
            pytest.fail("the child never made the call")
        holder.kill()
        holder.wait()
        result, number = _result(pid, read_end)
    finally:
        holder.kill()
        holder.wait()
    assert (result, number) == (-1, errno.ENOSYS)


def test_without_user_notification_explain_is_an_error(monkeypatch):
    monkeypatch.setattr(seccomp_notify._kernel, "seccomp_action_available", lambda action: False)
    with pytest.raises(UsageError, match="user notification"):
        seccomp_explain.Explain()


PROBE = ("import ctypes; l = ctypes.CDLL(None, use_errno=True); "
         f"r = l.syscall{KEYRING_ID_CALL}; print('keyctl', r, ctypes.get_errno()); "
         "r = l.syscall(101, 0, 0, 0, 0); print('ptrace', r, ctypes.get_errno())")


def test_run_explain_reports_each_refusal_and_the_loosening_works(tmp_path):
    require_root()
    report = tmp_path / "explain.json"
    ran = run_hardrun("run", "--explain", "--explain-json", str(report), "--", "python3", "-c", PROBE)
    assert ran.returncode == 0, ran.stderr
    assert "keyctl -1 1" in ran.stdout and "ptrace -1 1" in ran.stdout   # EPERM, as without explain
    assert "keyctl (x86_64): once, first by pid 1 (python3): EPERM" in ran.stderr
    assert "why: keyctl: the kernel keyring is not namespaced" in ran.stderr
    assert "to allow: --cap-add SYS_PTRACE" in ran.stderr
    document = json.loads(report.read_text())
    keyctl = next(d for d in document["denials"] if d["syscall"] == "keyctl")
    assert keyctl["count"] == 1 and keyctl["pid"] == 1 and keyctl["errno_name"] == "EPERM"
    assert document["loosen"]["cap_add"] == ["SYS_PTRACE"]
    generated = document["loosen"]["security_opt"].split("=", 1)[1]
    assert f"--security-opt seccomp={generated}" in ran.stderr
    # control: the same run without explain sees the same errors and prints no report
    quiet = run_hardrun("run", "--explain=never", "--", "python3", "-c", PROBE)
    assert quiet.stdout == ran.stdout and "refused" not in quiet.stderr
    # the generated profile allows keyctl
    loosened = run_hardrun("run", "--security-opt", f"seccomp={generated}", "--", "python3", "-c", PROBE)
    assert loosened.returncode == 0 and "keyctl -1" not in loosened.stdout, loosened.stdout
    os.unlink(generated)


def test_explain_refuses_what_it_cannot_do():
    unconfined = run_hardrun("run", "--explain", "--security-opt", "seccomp=unconfined", "--", "true")
    assert unconfined.returncode == 125 and "seccomp is unconfined" in unconfined.stderr
    bad = run_hardrun("run", "--explain=sometimes", "--", "true")
    assert bad.returncode == 125 and "expected auto, always or never" in bad.stderr
    assert "Traceback" not in unconfined.stderr + bad.stderr


def test_explain_refuses_a_profile_that_refuses_the_listeners_hand_over(tmp_path):
    """A profile refusing sendmsg and close: the listener could never reach hardrun, and
    the child's next refused call would wait forever. Refused before the start, exit 125,
    within the run_hardrun timeout (the hang this replaces never returned). Control: the
    same profile with sendmsg and close allowed gets as far as the profile lets it (it
    refuses what hardrun's child needs after the load: exit 125 for that reason instead)."""
    require_root()
    narrow = tmp_path / "narrow.json"
    narrow.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                                  "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}))
    refused = run_hardrun("run", "--explain=always", "--security-opt", f"seccomp={narrow}", "--", "true",
                          timeout=60)
    assert refused.returncode == 125, refused.stderr
    assert "allows sendmsg and close" in refused.stderr and refused.stderr.count("\n") == 1
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "write", "sendmsg", "close"], "action": "SCMP_ACT_ALLOW"}]}))
    control = run_hardrun("run", "--explain=always", "--security-opt", f"seccomp={wider}", "--", "true",
                          timeout=60)
    assert "allows sendmsg and close" not in control.stderr and control.returncode == 125
    assert "the seccomp profile refuses a call hardrun makes after loading it" in control.stderr


def test_learning_merges_into_a_yaml_flow_style_profile(tmp_path):
    """The profile loader reads YAML in flow style (it starts with `{`); so does the merge."""
    require_root()
    path = tmp_path / "learned.yaml"
    path.write_text("{defaultAction: SCMP_ACT_ERRNO, syscalls: [{names: [read], action: SCMP_ACT_ALLOW}]}\n")
    seccomp.load_profile(path)                         # control: the loader accepts it
    done = run_hardrun("run", "--seccomp-learn", str(path), "--", "busybox", "true")
    assert done.returncode == 0, done.stderr
    assert "read" in allowed_names(seccomp.load_profile(path))


def test_explain_with_a_tsync_profile(tmp_path):
    require_root()
    with open(seccomp.DEFAULT_PROFILE_PATH) as handle:
        profile = json.load(handle)
    profile["flags"] = ["SECCOMP_FILTER_FLAG_TSYNC"]
    path = tmp_path / "tsync.json"
    path.write_text(json.dumps(profile))
    ran = run_hardrun("run", "--explain", "--security-opt", f"seccomp={path}", "--", "python3", "-c", PROBE)
    assert ran.returncode == 0 and "keyctl -1 1" in ran.stdout
    assert f"the seccomp profile ({path}) refused" in ran.stderr and "keyctl (x86_64)" in ran.stderr


# -- learning, with real programs of the host ------------------------------------------------

GZIP = "echo hello | gzip | gzip -d"
# httpd listens before it goes to the background (it dies with the container's PID 1); the
# file is larger than the socket buffers, so that wget always waits for data (poll) as well
HTTP = ("mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/big bs=1M count=16 2>/dev/null && "
        "httpd -p 127.0.0.1:18080 -h /tmp/www && wget -q -O /dev/null http://127.0.0.1:18080/big && echo served")
PYTHON = "import json, hashlib; print(json.dumps(hashlib.sha256(b'x').hexdigest()[:8]))"


@pytest.mark.parametrize("command, output", [
    (["busybox", "sh", "-c", GZIP], "hello"),
    (["busybox", "sh", "-c", HTTP], "served"),
    (["python3", "-c", PYTHON], '"2d711642"'),
], ids=["gzip", "wget", "python3"])
def test_a_learned_profile_runs_the_command_again_and_allows_far_less(tmp_path, command, output):
    require_root()
    path = tmp_path / "learned.json"
    learned = run_hardrun("run", "--seccomp-learn", str(path), "--", *command)
    assert learned.returncode == 0 and output in learned.stdout, learned.stderr
    again = run_hardrun("run", "--explain", "--security-opt", f"seccomp={path}", "--", *command)
    assert again.returncode == 0 and output in again.stdout, again.stderr
    assert "refused" not in again.stderr, again.stderr
    profile = seccomp.load_profile(path)
    mine, builtin = len(allowed_names(profile)), len(allowed_names(default_profile()))
    print(f"{command[0]}: the learned profile allows {mine} calls, the built-in {builtin}")
    assert mine * 4 < builtin


def test_a_call_the_program_never_made_is_refused_and_explained(tmp_path):
    require_root()
    path = tmp_path / "learned.json"
    assert run_hardrun("run", "--seccomp-learn", str(path), "--", "busybox", "sh", "-c", GZIP).returncode == 0
    other = run_hardrun("run", "--explain", "--security-opt", f"seccomp={path}", "--",
                        "busybox", "sh", "-c", GZIP + "; busybox uname -n")
    assert "uname (x86_64): once" in other.stderr and "defaultAction" in other.stderr, other.stderr
    # control: the built-in profile allows uname
    control = run_hardrun("run", "--", "busybox", "uname", "-n")
    assert control.returncode == 0 and control.stdout.strip()


def test_learning_merges_into_an_existing_profile(tmp_path):
    require_root()
    path = tmp_path / "learned.json"
    assert run_hardrun("run", "--seccomp-learn", str(path), "--", "busybox", "true").returncode == 0
    first = allowed_names(seccomp.load_profile(path))
    assert "uname" not in first
    assert run_hardrun("run", "--seccomp-learn", str(path), "--", "busybox", "uname").returncode == 0
    second = allowed_names(seccomp.load_profile(path))
    assert first < second and "uname" in second


def test_learning_keeps_the_builtin_argument_rules_for_dangerous_calls(tmp_path):
    require_root()
    path = tmp_path / "learned.json"
    assert run_hardrun("run", "--seccomp-learn", str(path), "--", "busybox", "sh", "-c", GZIP).returncode == 0
    data = json.loads(path.read_text())
    clone = [rule for rule in data["syscalls"] if rule["names"] == ["clone"]]
    assert any(rule.get("args") for rule in clone)   # the namespace-flag mask, not a bare allow
    assert "clone" not in data["syscalls"][0]["names"]


def test_a_broken_profile_to_merge_into_is_refused_before_the_run(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{\"defaultAction\": 3}")
    ran = run_hardrun("run", "--seccomp-learn", str(path), "--", "true")
    assert ran.returncode == 125 and str(path) in ran.stderr and "Traceback" not in ran.stderr


def test_seccomp_show_and_diff(tmp_path):
    shown = run_hardrun("seccomp", "show", "default")
    assert shown.returncode == 0
    keyctl = next(line for line in shown.stdout.splitlines() if line.startswith("keyctl "))
    assert "refused (EPERM)" in keyctl and "the kernel keyring is not namespaced" in keyctl
    bpf = next(line for line in shown.stdout.splitlines() if line.startswith("bpf "))
    assert "allowed with CAP_BPF" in bpf
    assert shown.stdout.splitlines()[-2] == "every other call: refused (ENOSYS)"
    with open(seccomp.DEFAULT_PROFILE_PATH) as handle:
        profile = json.load(handle)
    profile["syscalls"].insert(0, {"names": ["keyctl"], "action": "SCMP_ACT_ALLOW"})
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(profile))
    diff = run_hardrun("seccomp", "diff", "default", str(changed))
    assert diff.returncode == 1 and "+ keyctl: allowed" in diff.stdout
    same = run_hardrun("seccomp", "diff", "default", seccomp.DEFAULT_PROFILE_PATH)
    assert same.returncode == 0 and same.stdout == ""
    missing = run_hardrun("seccomp", "show", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "none.json" in missing.stderr and "Traceback" not in missing.stderr


def test_an_oci_profile_with_its_own_errno_is_answered_and_explained_with_it(tmp_path):
    """An OCI runtime-spec `linux.seccomp` object (architectures, flags, errnoRet) as a
    file: the program sees the rule's errno (EACCES) with and without --explain."""
    require_root()
    with open(seccomp.DEFAULT_PROFILE_PATH) as handle:
        data = json.load(handle)
    for rule in data["syscalls"]:
        rule["names"] = [name for name in rule["names"] if name != "keyctl"]
    data["syscalls"] = [rule for rule in data["syscalls"] if rule["names"]]
    data["syscalls"].append({"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES})
    del data["archMap"]
    data.update(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                flags=["SECCOMP_FILTER_FLAG_LOG"])
    path = tmp_path / "oci-seccomp.json"
    path.write_text(json.dumps(data))
    plain = run_hardrun("run", "--explain=never", "--security-opt", f"seccomp={path}", "--", "python3", "-c", PROBE)
    explained = run_hardrun("run", "--explain", "--security-opt", f"seccomp={path}", "--", "python3", "-c", PROBE)
    assert f"keyctl -1 {errno.EACCES}" in plain.stdout and plain.stdout == explained.stdout
    assert "keyctl (x86_64): once, first by pid 1 (python3): EACCES from syscalls[" in explained.stderr


def test_explain_found_getrandom_refused_by_the_builtin_profile_and_it_is_allowed_now(tmp_path):
    """--explain showed every python3 in a container refused getrandom (ENOSYS from the
    default action); the built-in profile allows it now."""
    require_root()
    ran = run_hardrun("run", "--explain", "--", "python3", "-c", "import os; print(len(os.getrandom(8)))")
    assert ran.returncode == 0 and ran.stdout == "8\n" and "refused" not in ran.stderr, ran.stderr
    # control: a profile without it refuses it, and explain names it
    with open(seccomp.DEFAULT_PROFILE_PATH) as handle:
        data = json.load(handle)
    for rule in data["syscalls"]:
        rule["names"] = [name for name in rule["names"] if name != "getrandom"]
    path = tmp_path / "without-getrandom.json"
    path.write_text(json.dumps(data))
    refused = run_hardrun("run", "--explain", "--security-opt", f"seccomp={path}", "--",
                          "python3", "-c", "import os; print(len(os.getrandom(8)))")
    assert refused.returncode != 0 and "getrandom (x86_64): " in refused.stderr, refused.stderr


def test_explain_is_on_by_default_when_stderr_is_a_terminal():
    import pty
    import subprocess

    from tests.helpers import hardrun_env
    require_root()

    def stderr_on_a_terminal(*flags):
        master, slave = pty.openpty()
        try:
            subprocess.run([sys.executable, "-m", "hardrun", "run", *flags, "--", "python3", "-c", PROBE],
                           env=hardrun_env(), stdout=subprocess.DEVNULL, stderr=slave, timeout=120, check=True)
            os.close(slave)
            slave = -1
            return read_until_closed(master).decode()
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)

    assert "keyctl (x86_64): once" in stderr_on_a_terminal()
    assert "keyctl" not in stderr_on_a_terminal("--explain=never")   # control
    assert "keyctl" not in run_hardrun("run", "--", "python3", "-c", PROBE).stderr   # a pipe: off
