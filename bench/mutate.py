"""Mutation run: put one small, realistic bug at a time into a copy of the tree and check
that the tests meant to guard that spot fail.

    sudo .venv/bin/python bench/mutate.py                 # every mutant
    sudo .venv/bin/python bench/mutate.py --only 3,17     # some of them (ids or names)
    .venv/bin/python bench/mutate.py --list               # what would be run

Each mutant names a file, the exact text it replaces (found exactly once, or the run
stops: a mutant that no longer applies must be updated, not skipped), the text put in
its place, and the tests to run. The working tree is never touched: every mutant runs
in a fresh copy of the checkout in a temporary directory. A mutant is *killed* when its
tests fail, *survives* when they pass; a test run that cannot start is an error.

Not part of the default suite: it starts the runtime's containers once per mutant and
takes minutes. Runtime mutants need root, as the runtime tests do. The score and what
was done about each survivor are in docs/mutation.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what a test run needs; everything else of the checkout (.git, .venv…) stays out
COPIED = ("hardrun", "tests", "rules", "policies", "examples", "pyproject.toml")

SECCOMP = "hardrun/data/seccomp/default.json"
ESCAPES = "tests/escape/test_escape_battery.py"
TABLES = "tests/rules/test_security_tables.py"
PSS, POLICY_EVAL = "tests/policy/test_pss.py", "tests/policy/test_policy_eval.py"
EXPLAIN = "tests/runtime/test_seccomp_explain.py"


class Mutant:
    def __init__(self, name: str, path: str, original: str, mutated: str, tests: list[str]):
        self.name, self.path, self.original, self.mutated, self.tests = name, path, original, mutated, tests


M = Mutant
MUTANTS = [
    # -- the seccomp profile's argument filters --------------------------------------------
    M("seccomp: TIOCLINUX rule neutered", SECCOMP, '"valueTwo": 21532', '"valueTwo": 21533',
      [ESCAPES + "::test_every_argument_filter_of_the_profile_refuses_its_call"]),
    M("seccomp: TIOCSTI rule neutered", SECCOMP, '"valueTwo": 21522', '"valueTwo": 21523',
      [ESCAPES + "::test_every_argument_filter_of_the_profile_refuses_its_call",
       "tests/runtime/test_seccomp.py::test_tiocsti_injection_is_refused"]),
    M("seccomp: TIOCSTI compared on 64 bits", SECCOMP,
      '{"index": 1, "value": 4294967295, "valueTwo": 21522',
      '{"index": 1, "value": 18446744073709551615, "valueTwo": 21522',
      [ESCAPES + "::test_every_argument_filter_of_the_profile_refuses_its_call"]),
    M("seccomp: AF_VSOCK rule neutered", SECCOMP, '"valueTwo": 40,', '"valueTwo": 41,',
      [ESCAPES + "::test_every_argument_filter_of_the_profile_refuses_its_call"]),
    M("seccomp: AF_ALG rule neutered", SECCOMP, '"valueTwo": 38,', '"valueTwo": 39,',
      [ESCAPES + "::test_every_argument_filter_of_the_profile_refuses_its_call"]),
    M("seccomp: personality allows ADDR_NO_RANDOMIZE instead of PER_LINUX32", SECCOMP,
      '{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}', '{"index": 0, "value": 262144, "op": "SCMP_CMP_EQ"}',
      [ESCAPES + "::test_every_argument_filter_of_the_profile_refuses_its_call"]),
    M("seccomp: CLONE_NEWNET left out of the clone mask", SECCOMP, '"value": 2114060288', '"value": 1040318464',
      ["tests/runtime/test_seccomp.py", "-k", "clone_with_a_namespace_flag"]),
    M("seccomp: an excludes condition needs every capability, not any", "hardrun/runtime/seccomp_profile.py",
      "if any(cap in caps for cap in exc.caps):", "if all(cap in caps for cap in exc.caps):",
      ["tests/runtime/test_seccomp.py", "-k", "bpf or perf or ptrace"]),
    # -- seccomp --explain: the listener only ever refuses -------------------------------------
    M("explain: a refused call answered with CONTINUE", "hardrun/runtime/seccomp_notify.py",
      "            flags = 0\n", "            flags = NOTIF_FLAG_CONTINUE\n",
      [EXPLAIN + "::test_a_refused_call_gets_the_profiles_errno_and_is_recorded"]),
    M("explain: the hand-over tail allows instead of notifying", "hardrun/runtime/seccomp_notify.py",
      "    return tail + [(_RET_K, 0, 0, RET_USER_NOTIF), (_RET_K, 0, 0, handover_return)]",
      "    return tail + [(_RET_K, 0, 0, RET_ALLOW), (_RET_K, 0, 0, handover_return)]",
      [EXPLAIN + "::test_a_refused_call_gets_the_profiles_errno_and_is_recorded"]),
    M("HR2030: a profile that allows by default is not read as allowing", "hardrun/audit/checks/seccomp_profile.py",
      "if name in allowed or (default_allows and name not in refused)]", "if name in allowed]",
      ["tests/rules/test_seccomp_profile_rule.py", "tests/rules/test_rule_examples.py"]),
    # -- capabilities, masks, read-only paths, mounts --------------------------------------
    M("caps: only the first --cap-drop honoured", "hardrun/runtime/caps.py",
      "drops = {normalize(name) for name in cap_drop}", "drops = {normalize(name) for name in tuple(cap_drop)[:1]}",
      ["tests/runtime/test_runtime.py", "-k", "cap_drop"]),
    M("caps: --cap-add ALL no longer grants everything", "hardrun/runtime/caps.py",
      'if privileged or "ALL" in adds:', "if privileged:",
      ["tests/runtime/test_runtime.py", "-k", "cap_add_all or cap_drop"]),
    M("mounts: masked directories mounted read-write", "hardrun/runtime/mounts.py",
      'KERNEL_FS_FLAGS | k.MS_RDONLY, "size=0,mode=0"', 'KERNEL_FS_FLAGS, "size=0,mode=0"',
      [ESCAPES + "::test_masked_directories_cannot_be_written"]),
    M("mounts: read-only kernel paths left writable", "hardrun/runtime/mounts.py",
      "bind(source, source, BIND_ATTRS | k.MOUNT_ATTR_NOEXEC | k.MOUNT_ATTR_RDONLY)",
      "bind(source, source, BIND_ATTRS | k.MOUNT_ATTR_NOEXEC)",
      ["tests/runtime/test_runtime.py::test_proc_sys_is_read_only"]),
    M("mounts: /sys mounted read-write", "hardrun/runtime/mounts.py",
      'k.mount("sysfs", _fd_path(target), "sysfs", KERNEL_FS_FLAGS | k.MS_RDONLY)',
      'k.mount("sysfs", _fd_path(target), "sysfs", KERNEL_FS_FLAGS)',
      ["tests/runtime/test_runtime.py::test_sys_is_read_only"]),
    M("mounts: /tmp and /run not noexec", "hardrun/runtime/mounts.py",
      "(0 if plan.exec_ else k.MS_NOEXEC)", "0", ["tests/runtime/test_runtime.py", "-k", "noexec"]),
    M("config: /proc/acpi no longer masked", "hardrun/spec/defaults.py",
      '"/proc/acpi", "/proc/asound", "/proc/interrupts",', '"/proc/asound", "/proc/interrupts",',
      [TABLES + "::test_every_masked_and_read_only_kernel_path_is_in_the_run_plan"]),
    M("config: /proc/sys no longer read-only", "hardrun/spec/defaults.py",
      '"/proc/irq", "/proc/sys", "/proc/sysrq-trigger"', '"/proc/irq", "/proc/sysrq-trigger"',
      [TABLES + "::test_every_masked_and_read_only_kernel_path_is_in_the_run_plan"]),
    # -- audit checks and their tables --------------------------------------------------------
    M("checks: SYS_RAWIO not dangerous", "hardrun/spec/defaults.py", '"SYS_MODULE", "SYS_RAWIO",', '"SYS_MODULE",',
      [TABLES, "-k", "dangerous"]),
    M("checks: SYS_ADMIN reported as a mere warning", "hardrun/audit/checks/run.py",
      '_NAMESPACED_CAPABILITIES = frozenset({"NET_ADMIN",',
      '_NAMESPACED_CAPABILITIES = frozenset({"SYS_ADMIN", "NET_ADMIN",',
      [TABLES, "-k", "dangerous"]),
    M("checks: /boot not a sensitive host path", "hardrun/audit/checks/run.py",
      '"/root", "/boot", "/dev",', '"/root", "/dev",',
      [TABLES, "-k", "host_path"]),
    M("checks: a sensitive path matched as a bare prefix", "hardrun/audit/checks/run.py",
      'if path == prefix or path.startswith(prefix + "/"):', "if path.startswith(prefix):",
      [TABLES, "-k", "host_path"]),
    M("checks: crio.sock not a runtime socket", "hardrun/audit/checks/run.py",
      '"containerd.sock", "crio.sock", "podman.sock"', '"containerd.sock", "podman.sock"', [TABLES, "-k", "socket"]),
    M("checks: WinRM over TLS not a sensitive published port", "hardrun/spec/defaults.py",
      '5985: "WinRM", 5986: "WinRM over TLS"}', '5985: "WinRM"}', [TABLES, "-k", "port"]),
    M("checks: the unencrypted Docker API no longer an error", "hardrun/audit/checks/run.py",
      'severity="error" if "2375" in numbers', 'severity="error" if "2376" in numbers', [TABLES, "-k", "port"]),
    M("checks: EXPOSE of Telnet not reported", "hardrun/spec/defaults.py",
      'SENSITIVE_PORTS = {22: "SSH", 23: "Telnet",', 'SENSITIVE_PORTS = {22: "SSH",', [TABLES, "-k", "port"]),
    M("checks: EXPOSE range misses its first port", "hardrun/audit/checks/buildutil/stages.py",
      "if low <= port <= high and", "if low < port <= high and", [TABLES, "-k", "port"]),
    M("secrets: PASSPHRASE not a secret word", "hardrun/audit/secrets.py",
      '"pass", "passphrase", "secret",', '"pass", "secret",',
      [TABLES, "-k", "secret"]),
    M("secrets: JWT_KEY not a secret key", "hardrun/audit/secrets.py", '"hmac", "jwt", "fernet",', '"hmac", "fernet",',
      [TABLES, "-k", "secret"]),
    M("secrets: ...APIKEY endings not secret", "hardrun/audit/secrets.py",
      '_SECRET_ENDINGS = ("password", "passwd", "token", "secret", "apikey", "privatekey")',
      '_SECRET_ENDINGS = ("password", "passwd", "token", "secret", "privatekey")', [TABLES, "-k", "secret"]),
    M("policy: spc_t accepted as a container SELinux type", "hardrun/audit/checks/policy.py",
      '"container_kvm_t",\n', '"container_kvm_t", "spc_t",\n', [PSS, POLICY_EVAL]),
    M("policy: user `root` not taken for root", "hardrun/audit/checks/policy.py",
      'ROOT_USERS = frozenset({"0", "root"})', 'ROOT_USERS = frozenset({"0"})', [PSS, POLICY_EVAL]),
    M("policy: a host port range passes when one of its ports is allowed", "hardrun/audit/checks/policy.py",
      "if any(number not in allowed for number in ports):", "if all(number not in allowed for number in ports):",
      [PSS, POLICY_EVAL]),
    M("policy: a read-write mount of a read-only allowed path passes", "hardrun/audit/checks/policy.py",
      "elif not mount.read_only and all(entry.read_only", "elif mount.read_only and all(entry.read_only",
      [PSS, POLICY_EVAL]),
    # -- formats and suppressions --------------------------------------------------------------
    M("sarif: levels swapped", "hardrun/audit/formats/sarif.py",
      '_LEVEL = {"error": "error", "warning": "warning", "info": "note"}',
      '_LEVEL = {"error": "error", "warning": "note", "info": "warning"}',
      ["tests/audit/test_audit_output.py", "-k", "sarif"]),
    M("suppressions: a blank line ends a pending suppression", "hardrun/audit/suppressions.py",
      "        if not stripped:\n            continue\n",
      "        if not stripped:\n            pending = []\n            continue\n",
      ["tests/audit/test_suppressions.py"]),
    M("suppressions: continuation lines not covered", "hardrun/audit/suppressions.py",
      'continued = continued + pending if stripped.endswith("\\\\") else []', "continued = []",
      ["tests/audit/test_suppressions.py"]),
    M("suppressions: global ignore covers nothing", "hardrun/audit/suppressions.py",
      "if suppression.is_global or (line", "if (line", ["tests/audit/test_audit_output.py", "-k", "suppression"]),
    # -- exporters -------------------------------------------------------------------------------
    M("export oci: empty readonlyPaths", "hardrun/policy/export.py",
      "readonly_paths=READONLY_PATHS,", "readonly_paths=(),", ["tests/policy/test_export_security.py"]),
    M("export oci: /sys read-write", "hardrun/spec/oci.py",
      '"options": ["nosuid", "noexec", "nodev", "ro"]}', '"options": ["nosuid", "noexec", "nodev", "rw"]}',
      ["tests/policy/test_export_security.py"]),
    M("export oci: /sys/firmware not masked", "hardrun/spec/defaults.py",
      '"/sys/devices/virtual/powercap", "/sys/firmware",', '"/sys/devices/virtual/powercap",',
      ["tests/policy/test_export_security.py"]),
    M("export oci: inheritable set filled", "hardrun/spec/oci.py",
      '"inheritable": carried, "ambient"', '"inheritable": granted, "ambient"',
      ["tests/policy/test_export_security.py"]),
    M("export compose: no-new-privileges false", "hardrun/policy/export.py",
      'options.append("no-new-privileges:true")', 'options.append("no-new-privileges:false")',
      ["tests/policy/test_export_security.py"]),
    M("export kubernetes: root filesystem writable", "hardrun/policy/export.py",
      '"readOnlyRootFilesystem": bool(spec.read_only_root)', '"readOnlyRootFilesystem": False',
      ["tests/policy/test_export_security.py"]),
    M("export docker-run: --read-only dropped", "hardrun/policy/export.py",
      '        args.append("--read-only")\n', "", ["tests/policy/test_export_security.py"]),
    M("export docker-run: scratch tmpfs executable", "hardrun/policy/export.py",
      'args += ["--tmpfs", "/tmp:rw,nosuid,nodev,noexec",', 'args += ["--tmpfs", "/tmp:rw,nosuid,nodev",',
      ["tests/policy/test_export_security.py"]),
]


def copy_tree(destination: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        else:
            shutil.copy2(source, destination / name)


def apply(mutant: Mutant, tree: Path) -> None:
    path = tree / mutant.path
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        raise SystemExit(f"mutate: {mutant.path}: the text of mutant {mutant.name!r} is found {count} times "
                         "(expected once): update the mutant to the current code")
    path.write_text(text.replace(mutant.original, mutant.mutated))


def run_tests(tree: Path, tests: list[str], timeout: int) -> tuple[int, str]:
    # The copy comes first on the path: `python -m` puts the working directory first, and
    # the tests' own subprocesses put their checkout (the copy) on PYTHONPATH.
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def check_baseline(chosen, timeout: int) -> bool:
    """Every mutant's text is found once, and its tests pass on the unmutated copy: a
    kill then means the mutant was seen, not that the tests fail anyway."""
    with tempfile.TemporaryDirectory(prefix="hardrun-mutant-") as scratch:
        tree = Path(scratch)
        copy_tree(tree)
        for _, mutant in chosen:
            count = (tree / mutant.path).read_text().count(mutant.original)
            if count != 1:
                print(f"mutate: {mutant.path}: the text of mutant {mutant.name!r} is found {count} times "
                      "(expected once): update the mutant to the current code", file=sys.stderr)
                return False
        for tests in dict.fromkeys(tuple(m.tests) for _, m in chosen):
            status, summary = run_tests(tree, list(tests), timeout)
            if status != 0:
                print(f"mutate: the unmutated tree fails {' '.join(tests)}: {summary}", file=sys.stderr)
                return False
    print("baseline: every mutant applies once and its tests pass unmutated", flush=True)
    return True


def select(only: str | None) -> list[tuple[int, Mutant]]:
    numbered = list(enumerate(MUTANTS, start=1))
    if not only:
        return numbered
    wanted = only.split(",")
    return [(n, m) for n, m in numbered if str(n) in wanted or any(w and w in m.name for w in wanted)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated mutant numbers or parts of their names")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per mutant's test run")
    args = parser.parse_args()
    chosen = select(args.only)
    if args.list:
        for number, mutant in chosen:
            print(f"{number:3}  {mutant.name}  [{mutant.path}]")
        return 0
    if not check_baseline(chosen, args.timeout):
        return 2
    killed, survived, errors = [], [], []
    for number, mutant in chosen:
        with tempfile.TemporaryDirectory(prefix="hardrun-mutant-") as scratch:
            tree = Path(scratch)
            copy_tree(tree)
            apply(mutant, tree)
            started = time.monotonic()
            try:
                status, summary = run_tests(tree, mutant.tests, args.timeout)
            except subprocess.TimeoutExpired:
                status, summary = -1, "timed out"
            seconds = time.monotonic() - started
        # pytest: 1 means tests failed (the mutant is seen); 0 passed; anything else is an error
        verdict, bucket = {0: ("SURVIVED", survived), 1: ("killed", killed)}.get(status, ("ERROR", errors))
        bucket.append(mutant)
        print(f"{number:3}  {verdict:8}  {mutant.name}  ({seconds:.0f} s: {summary})", flush=True)
    total = len(chosen)
    print(f"\nkilled {len(killed)} of {total}, survived {len(survived)}, errors {len(errors)}")
    for mutant in survived:
        print(f"  survived: {mutant.name}")
    for mutant in errors:
        print(f"  error: {mutant.name}")
    return 0 if not survived and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
