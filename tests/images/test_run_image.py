"""`hardrun run IMAGE`: images built offline from busybox-static, saved in all three
transports, loaded into a temporary store and run; the image config honoured, the
flags over it, the confinement that of a --rootfs container, nothing left behind."""
from __future__ import annotations

import json
import os
import tarfile

import pytest

from tests.escape.test_escape_battery import (ATTACKS, SCENARIOS, battery_rootfs, parse_outcomes,  # noqa: F401
                                              probe)
from tests.helpers import run_hardrun
from tests.imagebuild import (Image, busybox_tree, dir_layer, entry, tar_layer, write_docker_archive, write_layout,
                              write_oci_archive)
from tests.rootfs import CONTAINER_ROOT, require_root

pytestmark = pytest.mark.runtime

CONFIG = {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo cmd=$0; id -u; id -g; pwd; echo $GREETING"],
          "Env": ["PATH=/bin", "GREETING=from-image"], "User": "1000:1000", "WorkingDir": "/work",
          "ExposedPorts": {"8080/tcp": {}}, "StopSignal": "SIGQUIT"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The image in each transport, and a store with it loaded (as docker.io/library/bb:1)."""
    require_root()
    base = tmp_path_factory.mktemp("images")
    os.chmod(base, 0o755)
    tree = busybox_tree(base / "tree")
    top = tar_layer([entry("work", tarfile.DIRTYPE, mode=0o755, uid=1000, gid=1000),
                     entry("work/secret", content=b"only-app\n", mode=0o600, uid=1000, gid=1000)])
    image = Image([dir_layer(tree), top], CONFIG)
    locations = {
        "oci": f"oci:{write_layout(base / 'layout', {'1.0': image})}:1.0",
        "oci-archive": f"oci-archive:{write_oci_archive(base / 'o.tar', {'1.0': image}, base / 'olay')}:1.0",
        "docker-archive": f"docker-archive:{write_docker_archive(base / 'd.tar', image, ['bb:1'])}:bb:1",
        "docker-archive-oci": f"docker-archive:{write_docker_archive(base / 'do.tar', image, ['bb:1'], True)}",
    }
    env = {"HARDRUN_STORE": str(base / "store")}
    loaded = run_hardrun("load", "-i", str(base / "d.tar"), env=env)
    assert loaded.returncode == 0, loaded.stderr
    return base, locations, env


def run(env, *args):
    return run_hardrun("run", *args, env=env)


@pytest.mark.parametrize("transport", ["oci", "oci-archive", "docker-archive", "docker-archive-oci", "store"])
def test_the_image_config_is_honoured_from_each_transport(images, transport):
    base, locations, env = images
    image = "bb:1" if transport == "store" else locations[transport]
    done = run(env, image)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:5] == ["cmd=/bin/sh", "1000", "1000", "/work", "from-image"]


def test_flags_win_over_the_image(images):
    _, _, env = images
    done = run(env, "-e", "GREETING=from-flag", "-u", "0", "-w", "/tmp", "bb:1", "echo $GREETING; id -u; pwd")
    assert done.stdout.split() == ["from-flag", "0", "/tmp"], done.stderr
    replaced = run(env, "--entrypoint", "/bin/echo", "bb:1", "only", "this")
    assert replaced.stdout == "only this\n"
    cleared = run(env, "--entrypoint", "", "bb:1", "/bin/echo", "plain")
    assert cleared.stdout == "plain\n"


def test_the_container_root_owns_its_image_through_idmapped_layers(images):
    """Inside, /work/secret is app's (1000) and app can read it: its layer is an idmapped
    mount. Control: the same file through a plain bind of the unpacked layer (no idmap)
    belongs to no one the container knows, and app cannot read it."""
    base, _, env = images
    inside = run(env, "bb:1", "stat -c %u:%g /work/secret; cat /work/secret")
    assert inside.stdout == "1000:1000\nonly-app\n", inside.stderr
    layers = base / "store" / "layers"
    raw = next(p for p in layers.iterdir() if (p / "root" / "work" / "secret").exists())
    control = run(env, "-v", f"{raw / 'root'}:/raw:ro", "bb:1", "stat -c %u /raw/work/secret; cat /raw/work/secret")
    assert control.stdout.startswith("65534\n") and "Permission denied" in control.stderr
    dry = json.loads(run(env, "--dry-run", "bb:1").stdout)["annotations"]
    assert dry["org.hardrun.image.ownership"] == "idmapped"
    assert dry["org.hardrun.image"] == "docker.io/library/bb:1"
    inspected = json.loads(run_hardrun("image", "inspect", "bb:1", env=env).stdout)
    assert dry["org.hardrun.image.digest"] == inspected["Digest"]


def test_the_root_is_read_only_unless_read_write_and_then_thrown_away(images):
    base, _, env = images
    refused = run(env, "bb:1", "touch /work/new")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    written = run(env, "--read-write", "bb:1", "touch /work/new && ls /work")
    assert written.stdout.split() == ["new", "secret"], written.stderr
    again = run(env, "bb:1", "ls /work")
    assert again.stdout.split() == ["secret"]


def test_nothing_is_left_behind(images):
    base, _, env = images
    assert run(env, "bb:1", "true").returncode == 0
    assert os.listdir(base / "store" / "tmp") == []
    with open("/proc/self/mountinfo") as mounts:
        assert str(base) not in mounts.read()


def test_the_confinement_is_that_of_a_rootfs_container(images, busybox_rootfs):
    _, _, env = images
    fields = ("Cap", "NoNewPrivs", "Seccomp", "Uid", "Gid", "Groups")
    image = run(env, "-u", "0", "bb:1", "cat /proc/self/status")
    rootfs = run_hardrun("run", "--rootfs", str(busybox_rootfs), "--", "/bin/cat", "/proc/self/status")
    pick = lambda text: [line for line in text.splitlines() if line.startswith(fields)]  # noqa: E731
    assert pick(image.stdout) == pick(rootfs.stdout) and len(pick(image.stdout)) >= 10


def test_the_escape_battery_gives_the_same_outcomes_in_an_image(images, probe, battery_rootfs, tmp_path):  # noqa: F811
    """The battery's default scenario (every attack its own tests prove blocked, each with
    its control) run in an image container and in a --rootfs one: the same outcomes."""
    base, _, env = images
    bin_dir = tmp_path / "probe-layer" / "bin"
    bin_dir.mkdir(parents=True)
    bin_dir.joinpath("probe").write_bytes(probe.read_bytes())
    os.chmod(bin_dir / "probe", 0o755)
    tree = busybox_tree(tmp_path / "tree")
    for name in ("scratch", "data", "run", "root"):
        (tree / name).mkdir(exist_ok=True)
    os.chmod(tree / "scratch", 0o1777)
    layout = write_layout(tmp_path / "layout", {"b": Image([dir_layer(tree), dir_layer(tmp_path / "probe-layer")],
                                                            {"Cmd": ["/bin/sh"]})})
    _, labels = SCENARIOS["default"]
    specs = [f"{label}={ATTACKS[label]}" for label in labels]
    in_image = run(env, "--entrypoint", "/bin/probe", f"oci:{layout}:b", *specs)
    in_rootfs = run_hardrun("run", "--rootfs", str(battery_rootfs), "--", "/bin/probe", *specs)
    assert in_image.returncode == 0 and in_rootfs.returncode == 0, (in_image.stderr, in_rootfs.stderr)
    image_outcomes = {k: str(v) for k, v in parse_outcomes(in_image.stdout).items()}
    rootfs_outcomes = {k: str(v) for k, v in parse_outcomes(in_rootfs.stdout).items()}
    assert set(image_outcomes) == set(labels)
    assert image_outcomes == rootfs_outcomes


def test_pull_never_and_platform_are_clear_errors(images):
    _, locations, env = images
    never = run(env, "--pull", "never", "example.com/absent:1", "true")
    assert never.returncode == 125 and "not in the store" in never.stderr
    platform = run(env, "--platform", "linux/arm64", locations["oci"], "true")
    assert platform.returncode == 125
    assert platform.stderr == "hardrun: --platform linux/arm64: only linux/amd64 images run here\n"
    missing = run(env, "--pull", "missing", locations["oci"], "true")
    assert missing.returncode == 0, missing.stderr
    always = run(env, "--pull", "always", locations["oci"], "true")
    assert always.returncode == 0, always.stderr


def test_exposed_ports_reach_the_spec(images):
    _, _, env = images
    from hardrun.images.reference import parse_location  # noqa: F401 (the module imports cleanly)
    dry = json.loads(run(env, "--dry-run", "bb:1").stdout)
    assert dry["process"]["cwd"] == "/work" and dry["process"]["user"]["uid"] == 1000
    assert "PATH=/bin" in dry["process"]["env"] and "GREETING=from-image" in dry["process"]["env"]


def test_rootfs_and_host_view_forms_keep_working(busybox_rootfs):
    with_rootfs = run_hardrun("run", "--rootfs", str(busybox_rootfs), "echo", "hi")
    assert with_rootfs.stdout == "hi\n", with_rootfs.stderr
    host_view = run_hardrun("run", "--", "/bin/echo", "host")
    assert host_view.stdout == "host\n"
    assert CONTAINER_ROOT == 100000


def test_the_quick_start_image_runs(tmp_path):
    """README's quick start: the hardened example's image, built offline, reports its confinement."""
    from tests.helpers import ROOT
    import subprocess
    import sys
    archive = tmp_path / "image.tar"
    subprocess.run([sys.executable, str(ROOT / "examples" / "hardened" / "image.py"), str(archive)], check=True,
                   capture_output=True)
    done = run({"HARDRUN_STORE": str(tmp_path / "store")}, "--memory", "64m", "--pids-limit", "32",
               f"oci-archive:{archive}:1.0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("user:    uid=65534(nobody)")
    assert "NoNewPrivs:\t1" in done.stdout and "root:    read-only" in done.stdout


def test_inspect_says_the_root_is_an_overlay_of_idmapped_layers(images):
    import subprocess
    import sys
    from tests.helpers import hardrun_env
    _, _, env = images
    digest = json.loads(run_hardrun("image", "inspect", "bb:1", env=env).stdout)["Digest"]
    for flags, ownership in (((), "idmapped"), (("--userns", "host"), "as stored (no user namespace)")):
        container = subprocess.Popen([sys.executable, "-m", "hardrun", "run", *flags, "bb:1", "echo ready; sleep 30"],
                                     env=hardrun_env(env), stdout=subprocess.PIPE, text=True)
        try:
            assert container.stdout.readline() == "ready\n"
            with open(f"/proc/{container.pid}/task/{container.pid}/children") as children:
                pid = children.read().split()[0]
            report = json.loads(run_hardrun("inspect", "--json", pid).stdout)
            assert report["root"]["fstype"] == "overlay" and report["root"]["read_only"]
            assert (report["root"]["image_layers"], report["root"]["layer_ownership"]) == (2, ownership)
            assert f"layers {ownership}" in run_hardrun("inspect", pid).stdout
            assert report["container"]["image"] == "docker.io/library/bb:1"
            assert report["container"]["image_digest"] == digest
            assert f"image docker.io/library/bb:1 ({digest})" in run_hardrun("inspect", pid).stdout
        finally:
            container.terminate()     # hardrun forwards it and cleans up
            container.wait(timeout=30)


def test_the_policy_judges_the_image_and_its_resolved_user(images):
    """strict refuses an image pinned by tag only (HR2018, as the audit says of `docker run
    IMAGE`); the same image by digest passes (the control). restricted refuses root, here the
    image's own User when -u asks for it."""
    _, _, env = images
    digest = json.loads(run_hardrun("image", "inspect", "bb:1", env=env).stdout)["Digest"]
    refused = run(env, "--policy", "strict", "--memory", "64m", "bb:1", "true")
    assert refused.returncode == 3 and "HR2018" in refused.stderr
    pinned = run(env, "--policy", "strict", "--memory", "64m", f"bb@{digest}", "true")
    assert pinned.returncode == 0, pinned.stderr
    as_root = run(env, "--policy", "restricted", "-u", "0", f"bb@{digest}", "true")
    assert as_root.returncode == 3, as_root.stderr
    image_user = run(env, "--policy", "restricted", f"bb@{digest}", "true")
    assert image_user.returncode == 0, image_user.stderr


def test_the_run_config_names_the_image(images, tmp_path):
    """A run YAML's `image:` is run as the positional IMAGE is; --dry-run says which, by digest."""
    _, locations, env = images
    config = tmp_path / "run.yaml"
    config.write_text("apiVersion: hardrun/v1\nkind: Run\nname: from-image\n"
                      f"image: {locations['oci']}\ncommand: ['echo from-config; id -u']\n")
    done = run(env, "--config", str(config))
    assert done.stdout == "from-config\n1000\n", done.stderr
    annotations = json.loads(run(env, "--dry-run", "--config", str(config)).stdout)["annotations"]
    assert annotations["org.hardrun.image"] == locations["oci"]
    assert annotations["org.hardrun.image.digest"].startswith("sha256:")


def test_without_idmapped_mounts_a_chowned_copy_is_made_once(images):
    """HARDRUN_NO_IDMAP=1 (what a kernel that cannot idmap gets): each layer is copied once
    with its owners shifted, and the container's view is the same as with idmapped mounts."""
    import subprocess
    import sys
    from tests.helpers import hardrun_env
    base, _, env = images
    copy_env = dict(env, HARDRUN_NO_IDMAP="1")
    inside = run(copy_env, "bb:1", "stat -c %u:%g /work/secret; cat /work/secret; ls -ln /bin/busybox")
    assert inside.stdout.startswith("1000:1000\nonly-app\n"), inside.stderr
    assert " 0        0 " in inside.stdout          # busybox stays root's, the container's root
    copies = sorted((base / "store" / "layers").glob("*/shifted-*"))
    assert len(copies) == 2
    copy = next(c for c in copies if (c / "work" / "secret").exists())
    secret = copy / "work" / "secret"
    outside = int(copy.name.split("-")[2])      # shifted-0-OUTSIDE-COUNT--…: the range this run leased
    assert (secret.stat().st_uid, secret.stat().st_gid) == (outside + 1000, outside + 1000)
    made = secret.stat().st_ino
    assert run(copy_env, "bb:1", "true").returncode == 0
    assert secret.stat().st_ino == made          # made once, used again
    annotations = json.loads(run(copy_env, "--dry-run", "bb:1").stdout)["annotations"]
    assert annotations["org.hardrun.image.ownership"] == "chowned-copy"
    container = subprocess.Popen([sys.executable, "-m", "hardrun", "run", "bb:1", "echo ready; sleep 30"],
                                 env=hardrun_env(copy_env), stdout=subprocess.PIPE, text=True)
    try:
        assert container.stdout.readline() == "ready\n"
        with open(f"/proc/{container.pid}/task/{container.pid}/children") as children:
            pid = children.read().split()[0]
        assert json.loads(run_hardrun("inspect", "--json", pid).stdout)["root"]["layer_ownership"] == \
            "a chown'ed copy"
    finally:
        container.terminate()
        container.wait(timeout=30)


def _started(env, *args):
    import subprocess
    import sys
    from tests.helpers import hardrun_env
    container = subprocess.Popen([sys.executable, "-m", "hardrun", "run", *args], env=hardrun_env(env),
                                 stdout=subprocess.PIPE, text=True)
    assert container.stdout.readline() == "ready\n"
    with open(f"/proc/{container.pid}/task/{container.pid}/children") as children:
        return container, children.read().split()[0]


def test_inspect_names_the_container_and_only_an_image_container_has_an_image(images, busybox_rootfs):
    _, _, env = images
    waiting = "echo ready; sleep 30"
    for args in (("bb:1", waiting), ("--rootfs", str(busybox_rootfs), "sh", "-c", waiting)):
        container, pid = _started(env, *args)
        try:
            report = json.loads(run_hardrun("inspect", "--json", pid).stdout)
            assert all(c in "0123456789abcdef" for c in report["container"]["id"]) and report["container"]["id"]
            assert ("image" in report["container"]) == (args[0] == "bb:1")    # control: no image, none named
        finally:
            container.terminate()
            container.wait(timeout=30)
    assert "container" not in json.loads(run_hardrun("inspect", "--json", str(os.getpid())).stdout)


def test_the_stop_signal_is_recorded_and_signals_are_forwarded_unchanged(images):
    _, _, env = images
    dry = json.loads(run(env, "--dry-run", "bb:1").stdout)["annotations"]
    assert dry["org.opencontainers.image.stopSignal"] == "SIGQUIT"
    container, _ = _started(env, "bb:1", "trap 'echo got-TERM; exit 0' TERM; trap 'echo got-QUIT; exit 0' QUIT; "
                                         "echo ready; while :; do sleep 1; done")
    container.terminate()
    assert container.stdout.read() == "got-TERM\n"
    assert container.wait(timeout=30) == 0


CONFINEMENT = ("grep -E '^(Cap|NoNewPrivs|Seccomp|Uid|Gid|Groups)' /proc/self/status; cat /proc/self/uid_map "
               "/proc/self/gid_map; ls -ln /work /bin/busybox; cat /work/secret; pwd; echo $GREETING")


def _plan_file(base):
    return base / "store" / "plans" / b"bb:1".hex()


def test_a_start_from_the_plan_gives_the_same_root_and_confinement_as_a_resolved_one(images):
    import shutil
    base, _, env = images
    shutil.rmtree(base / "store" / "plans", ignore_errors=True)
    resolved = run(env, "bb:1", CONFINEMENT)                  # no plan: resolved, and the plan written
    assert resolved.returncode == 0, resolved.stderr
    written = _plan_file(base).stat()
    assert (written.st_uid, written.st_mode & 0o777) == (0, 0o600)
    planned = run(env, "bb:1", CONFINEMENT)
    assert _plan_file(base).stat().st_ino == written.st_ino     # used, not written again
    assert planned.stdout == resolved.stdout and "NoNewPrivs:\t1" in planned.stdout
    assert "only-app" in planned.stdout and "CapEff:\t0000000000000000" in planned.stdout
    reports = []
    for _ in range(2):
        container, pid = _started(env, "bb:1", "echo ready; sleep 30")
        try:
            reports.append(json.loads(run_hardrun("inspect", "--json", pid).stdout))
        finally:
            container.terminate()
            container.wait(timeout=30)
        _plan_file(base).unlink()       # the second start resolves again
    for key in ("root", "capabilities", "no_new_privs", "seccomp", "uid_map", "gid_map", "uid", "gid"):
        assert reports[0][key] == reports[1][key], key
    assert reports[0]["container"]["image_digest"] == reports[1]["container"]["image_digest"]


def _forged_plan(base, owner: int) -> int:
    """The plan of bb:1 with its command changed, owned by `owner`; its inode."""
    import marshal
    run(base.env, "bb:1", "true")
    plan = marshal.loads(_plan_file(base.path).read_bytes())
    plan["config"] = dict(plan["config"], Cmd=["echo forged"])
    forged = base.path / "forged"
    forged.write_bytes(marshal.dumps(plan))
    os.chmod(forged, 0o600)
    os.chown(forged, owner, owner)
    os.rename(forged, _plan_file(base.path))
    return _plan_file(base.path).stat().st_ino


def test_a_plan_not_written_by_root_alone_is_not_used_and_is_rewritten(images):
    import types
    base, _, env = images
    where = types.SimpleNamespace(path=base, env=env)
    _forged_plan(where, 0)          # control: a plan of root's own, 0600, is what a start uses
    assert run(env, "bb:1").stdout == "forged\n"
    made = _forged_plan(where, 1000)     # the same plan, another user's
    done = run(env, "bb:1")
    assert done.stdout.split("\n")[:5] == ["cmd=/bin/sh", "1000", "1000", "/work", "from-image"], done.stderr
    assert (_plan_file(base).stat().st_uid, _plan_file(base).stat().st_ino != made) == (0, True)
    _forged_plan(where, 0)
    os.chmod(_plan_file(base), 0o620)        # group-writable: not used either
    assert run(env, "bb:1").stdout.startswith("cmd=/bin/sh")
    _plan_file(base).write_bytes(b"\x00not a plan")     # garbage of root's own: resolved again
    assert run(env, "bb:1").stdout.startswith("cmd=/bin/sh")


def test_a_plan_names_the_images_json_it_was_resolved_against(images):
    base, locations, env = images
    run(env, "bb:1", "true")
    assert _plan_file(base).exists()
    stamp = _plan_file(base).stat().st_ino
    assert run_hardrun("pull", locations["oci"], env=env).returncode == 0    # images.json renamed anew
    assert run(env, "bb:1", "true").returncode == 0
    assert _plan_file(base).stat().st_ino != stamp     # stale: resolved again and rewritten
    kept = run_hardrun("gc", "--no-orphans", "--images", env=env)
    assert kept.returncode == 0 and _plan_file(base).exists(), kept.stderr      # control: a current plan stays
    assert run_hardrun("pull", locations["oci"], env=env).returncode == 0
    gone = run_hardrun("gc", "--no-orphans", "--images", env=env)
    assert "stale start-up plan of bb:1" in gone.stdout + gone.stderr and not _plan_file(base).exists()
