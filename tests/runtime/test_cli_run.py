"""`hardrun run`'s entry point called in-process (as the click command does)."""
import gc

from hardrun.cli.run import EXIT_USAGE, main


def test_in_process_calls_leave_the_garbage_collector_on(capsys):
    """Start-up runs with the collector off; whatever the outcome, callers get it back."""
    assert gc.isenabled()
    assert main(["--help"]) == 0
    assert gc.isenabled()
    assert capsys.readouterr().out.startswith("Usage: hardrun run")
    assert main(["--frobnicate", "true"]) == EXIT_USAGE
    assert gc.isenabled()
    assert "unknown flag: --frobnicate" in capsys.readouterr().err


# --- flags and run config: every setting is applied (the dry run shows it) or refused -----

import json  # noqa: E402

import pytest  # noqa: E402

from hardrun.runtime.config import APPLIED_FIELDS, NOT_APPLIED_FIELDS  # noqa: E402


def _dry_run(capsys, argv):
    status = main(["--dry-run", *argv])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if status == 0 else None), err


def _caps(oci):
    return oci["process"]["capabilities"]["bounding"]


def _resources(oci, kind):
    return oci["linux"].get("resources", {}).get(kind, {})


def _mount(oci, target):
    return [m for m in oci["mounts"] if m["destination"] == target]


# field: (flags, run config YAML, what the dry run shows when it is applied); None: that
# input has no way to set the field (ports are applied on a bridge: tests/runtime/test_network.py).
APPLIED = {
    "command": (["--", "/bin/echo", "hi"], "command: [/bin/echo, hi]",
                lambda oci: oci["process"]["args"] == ["/bin/echo", "hi"]),
    "user": (["-u", "1000:1001"], 'user: "1000:1001"',
             lambda oci: (oci["process"]["user"]["uid"], oci["process"]["user"]["gid"]) == (1000, 1001)),
    "privileged": (["--privileged"], "security: {privileged: true}", lambda oci: "CAP_SYS_ADMIN" in _caps(oci)),
    "cap_add": (["--cap-add", "NET_RAW"], "capabilities: {add: [NET_RAW]}",
                lambda oci: "CAP_NET_RAW" in _caps(oci)),
    "cap_drop": (["--cap-add", "ALL", "--cap-drop", "CHOWN"], "capabilities: {add: [ALL], drop: [CHOWN]}",
                 lambda oci: "CAP_KILL" in _caps(oci) and "CAP_CHOWN" not in _caps(oci)),
    "no_new_privileges": (["--security-opt", "no-new-privileges=false"],
                          "security: {no-new-privileges: false}",
                          lambda oci: oci["process"]["noNewPrivileges"] is False),
    "seccomp": (["--security-opt", "seccomp=unconfined"], "security: {seccomp: unconfined}",
                lambda oci: oci["annotations"]["org.hardrun.seccomp"] == "unconfined"),
    "system_paths_unconfined": (["--security-opt", "systempaths=unconfined"],
                                "security: {unmasked-proc: true}",
                                lambda oci: oci["linux"]["maskedPaths"] == []),
    "read_only_root": (["--read-write"], "security: {read-only-root: false}",
                       lambda oci: oci["root"]["readonly"] is False),
    "rootfs": (["--rootfs", "{root}"], "rootfs: {root}", lambda oci: oci["root"]["path"].endswith("/image")),
    "mounts": (["--tmpfs", "/data:size=1m"], "mounts: [{type: tmpfs, target: /data, options: [size=1m]}]",
               lambda oci: bool(_mount(oci, "/data"))),
    "workdir": (["-w", "/srv"], "workdir: /srv", lambda oci: oci["process"]["cwd"] == "/srv"),
    "namespaces": (["--pid", "host"], "namespaces: {pid: host}",
                   lambda oci: "pid" not in {n["type"] for n in oci["linux"]["namespaces"]}),
    "userns_remap": (["--userns-remap", "200000:65536"], 'security: {userns: "200000:65536"}',
                     lambda oci: oci["linux"]["uidMappings"][0]["hostID"] == 200000),
    "hostname": (["--hostname", "web"], "hostname: web", lambda oci: oci["hostname"] == "web"),
    "name": (["--name", "box"], "name: box", lambda oci: oci["hostname"] == "box"),
    "env": (["-e", "GREETING=hi"], "env: {GREETING: hi}", lambda oci: "GREETING=hi" in oci["process"]["env"]),
    "init": (["--init"], "init: true", lambda oci: oci["annotations"]["org.hardrun.init"] == "true"),
    "memory": (["-m", "64m"], "limits: {memory: 64m}",
               lambda oci: _resources(oci, "memory").get("limit") == 64 << 20),
    "memory_swap": (["-m", "64m", "--memory-swap", "100m"], None,
                    lambda oci: _resources(oci, "memory").get("swap") == 100 << 20),
    "pids_limit": (["--pids-limit", "99"], "limits: {pids: 99}",
                   lambda oci: _resources(oci, "pids").get("limit") == 99),
    "cpus": (["--cpus", "0.5"], "limits: {cpus: 0.5}",
             lambda oci: _resources(oci, "cpu").get("quota") == 50000),
    "cpu_shares": (["--cpu-shares", "512"], None,
                   lambda oci: _resources(oci, "cpu").get("shares") == 512),
    "ulimits": (["--ulimit", "nofile=100:200"], None,
                lambda oci: {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200} in oci["process"].get("rlimits", [])),
    "network": (["--network", "host"], "network: host",
                lambda oci: oci["annotations"]["org.hardrun.network"] == "host"),
    "ports": None, "exposed_ports": None, "publish_all": None,
    "apparmor": (["--security-opt", "apparmor=unconfined"], "security: {apparmor: unconfined}",
                 lambda oci: oci["process"].get("apparmorProfile") == "unconfined"),
    "selinux_disabled": (["--security-opt", "label=disable"], "security: {selinux: disabled}",
                         lambda oci: oci["annotations"].get("org.hardrun.lsm") == "label=disable"),
    "selinux_options": None,      # a label is confinement hardrun cannot apply: REFUSED
    "devices": (["--device", "/dev/zero:/dev/z"], "devices: [/dev/zero:/dev/z]",
                lambda oci: [d["path"] for d in oci["linux"].get("devices", ())] == ["/dev/z"]),
    "sysctls": (["--sysctl", "kernel.shmmax=1"], 'sysctls: {kernel.shmmax: "1"}',
                lambda oci: oci["linux"].get("sysctl") == {"kernel.shmmax": "1"}),
    "group_add": (["--group-add", "3000"], "group-add: [3000]",
                  lambda oci: oci["process"]["user"]["additionalGids"] == [3000]),
    "oom_score_adj": (["--oom-score-adj", "5"], "oom-score-adj: 5",
                      lambda oci: oci["process"].get("oomScoreAdj") == 5),
}

# field: (flags, run config YAML, what the error names); the flags of these are not
# `hardrun run` flags at all, or the value is refused.
REFUSED = {
    "apparmor": (["--security-opt", "apparmor=docker-default"], "security: {apparmor: docker-default}",
                 "apparmor=docker-default"),
    "selinux_options": (["--security-opt", "label=type:spc_t"], "security: {selinux: {type: spc_t}}",
                        "label=type:spc_t"),
    "devices": (["--device", "/dev/zero:/etc/z"], "devices: [/dev/zero:/etc/z]", "must be under /dev/"),
    "sysctls": (["--sysctl", "kernel.panic=1"], "sysctls: {kernel.panic: 1}", "not a namespaced sysctl"),
    "oom_score_adj": (["--oom-score-adj", "-5"], "oom-score-adj: -5", "CAP_SYS_RESOURCE"),
    "entrypoint": (["--entrypoint", "/bin/sh"], None, "entrypoint"),
    "hostname": (["--hostname", "a\nb"], 'hostname: "a\\nb"', "invalid host name"),
    "name": (["--name", "n" * 65], f"name: {'n' * 65}", "invalid container name"),
    "pids_limit": (["--pids-limit", "-2"], None, "invalid pids limit"),
}


def test_the_tables_cover_every_field():
    assert set(APPLIED) == APPLIED_FIELDS
    # the rest only come from other front ends: tests/runtime/test_runtime_config.py
    assert set(NOT_APPLIED_FIELDS) - set(REFUSED) == {
        "run_as_non_root", "masked_paths", "readonly_paths", "volume_types", "unresolved",
        "host_process", "pod_level"}


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    """(run flags, write run config): both start /bin/true unless told otherwise."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "image").mkdir()

    def flags(words):
        words = [w.replace("{root}", str(tmp_path / "image")) for w in words]
        return words if "--" in words else [*words, "--", "/bin/true"]

    def config(snippet):
        text = "apiVersion: hardrun/v1\nkind: Run\n" + snippet.replace("{root}", str(tmp_path / "image"))
        if "command:" not in snippet:
            text += "\ncommand: [/bin/true]"
        path = tmp_path / "run.yaml"
        path.write_text(text + "\n")
        return ["--config", str(path)]
    return flags, config


@pytest.mark.parametrize("field", sorted(f for f, row in APPLIED.items() if row))
def test_every_setting_is_applied_from_flags_and_from_a_run_config(field, inputs, capsys):
    flag_words, snippet, shows = APPLIED[field]
    flags, config = inputs
    status, plain, err = _dry_run(capsys, flags([]))
    assert status == 0, err
    assert not shows(plain)                                        # control: not there by default
    for argv in ([flags(flag_words)] if flag_words else []) + ([config(snippet)] if snippet else []):
        status, oci, err = _dry_run(capsys, argv)
        assert status == 0, (argv, err)
        assert shows(oci), argv


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_what_cannot_be_applied_is_refused_from_flags_and_from_a_run_config(field, inputs, capsys):
    flag_words, snippet, named = REFUSED[field]
    flags, config = inputs
    assert _dry_run(capsys, config("name: web"))[0] == 0           # control: the bare config runs
    status, _, err = _dry_run(capsys, flags(flag_words))
    assert status == EXIT_USAGE and err.count("\n") == 1, err
    if snippet:
        status, _, err = _dry_run(capsys, config(snippet))
        assert status == EXIT_USAGE and named in err and "run.yaml: line 3" in err, err


@pytest.mark.parametrize("value,limit", [("0", None), ("-1", None), ("1", 1), ("-2", "refused")])
def test_pids_limit_zero_and_minus_one_are_unlimited_other_negatives_refused(value, limit, inputs, capsys):
    flags, _ = inputs
    assert _resources(_dry_run(capsys, flags([]))[1], "pids") == {"limit": 1024}   # control: the default
    status, oci, err = _dry_run(capsys, flags(["--pids-limit", value]))
    if limit == "refused":
        assert status == EXIT_USAGE and "0 or -1 for unlimited" in err
    else:
        assert status == 0 and _resources(oci, "pids").get("limit") == limit
    assert main(["--help"]) == 0 and "0 or -1: unlimited" in capsys.readouterr().out
