"""`hardrun audit` of container images: images the tests build with tarfile (a
busybox-static root, a Debian-like minbase root, the image examples/insecure/Dockerfile
describes, layer by layer), read through each transport, with the exact findings
expected; whiteouts; every format names the image, the layer and the path; bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from hardrun.audit.engine import audit
from hardrun.frontends.registry import IMAGE_TRANSPORTS
from hardrun.images.reference import TRANSPORTS
from tests.image_examples import layer_of
from tests.imagebuild import Image, dir_layer, write_docker_archive, write_layout, write_oci_archive

BUSYBOX = "/bin/busybox"
HARDRUN = [sys.executable, "-m", "hardrun"]


def _findings(*images, **kwargs):
    report = audit([], images=list(images), **kwargs)
    assert not report.errors, report.errors
    return report


def _where(finding) -> str:
    if finding.image.path:
        return finding.image.path
    return "history" if "history" in finding.subject else "config"


def _summary(report):
    """(rule, severity, path in the image, `history` or `config`) of each finding, sorted."""
    return sorted((f.rule, f.severity, _where(f)) for f in report.findings)


# --- a busybox-static image ----------------------------------------------------------

@pytest.fixture(scope="module")
def busybox_layout(tmp_path_factory):
    assert os.path.exists(BUSYBOX), "install busybox-static (scripts/setup.sh --test)"
    root = tmp_path_factory.mktemp("busybox-root")
    for name in ("bin", "etc", "tmp", "home/app"):
        (root / name).mkdir(parents=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "ls", "su", "passwd"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\napp:!:19000:0:99999:7:::\n")
    image = Image([dir_layer(root)], {"User": "1000", "Entrypoint": ["/bin/sh"],
                                      "Healthcheck": {"Test": ["CMD", "/bin/true"]}})
    return write_layout(tmp_path_factory.mktemp("busybox-image"), {"1.36": image}), image


def test_busybox_image_run_as_a_user_has_no_findings(busybox_layout):
    layout, _ = busybox_layout
    report = _findings(f"oci:{layout}:1.36")
    assert report.findings == []
    assert [(f.path.split("@")[0], f.kind) for f in report.files] == [(f"oci:{layout}:1.36", "image")]


def test_busybox_image_with_root_user_a_setuid_shell_and_an_open_tmp(busybox_layout, tmp_path):
    """The same root with what an image should not have, added in a second layer."""
    _, base = busybox_layout
    extra = layer_of([{"path": "bin/busybox", "mode": 0o4755, "content": "stand-in"},
                      {"path": "srv", "type": "dir", "mode": 0o777}])
    image = Image(base.layers + [extra], {"User": "root"})
    write_layout(tmp_path, {None: image})
    assert _summary(_findings(f"oci:{tmp_path}")) == [
        ("HR4001", "warning", "config"), ("HR4004", "info", "config"),
        ("HR4009", "warning", "/bin/busybox"), ("HR4010", "warning", "/srv")]


# --- a Debian minbase-like root ------------------------------------------------------

# What `debootstrap --variant=minbase bookworm` leaves with these bits (checked against
# a real one; see docs/image-audit.md): the setuid/setgid files of passwd, login,
# util-linux and mount.
DEBIAN_SETUID = {"usr/bin/chfn": 0o4755, "usr/bin/chsh": 0o4755, "usr/bin/gpasswd": 0o4755,
                 "usr/bin/newgrp": 0o4755, "usr/bin/passwd": 0o4755, "usr/bin/su": 0o4755,
                 "usr/bin/mount": 0o4755, "usr/bin/umount": 0o4755, "usr/bin/chage": 0o2755,
                 "usr/bin/expiry": 0o2755, "usr/sbin/unix_chkpwd": 0o2755}


def debian_like_layer() -> bytes:
    entries = [{"path": "usr/bin", "type": "dir"}, {"path": "usr/sbin", "type": "dir"},
               {"path": "bin", "type": "symlink", "target": "usr/bin"},
               {"path": "tmp", "type": "dir", "mode": 0o1777},
               {"path": "var/tmp", "type": "dir", "mode": 0o1777},
               {"path": "run/lock", "type": "dir", "mode": 0o1777},
               {"path": "var/lib/dpkg/status", "content": "Package: base-files\nStatus: install ok installed\n"},
               {"path": "etc/shadow", "mode": 0o640,
                "content": "root:*:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\nnobody:*:19700:0:99999:7:::\n"},
               {"path": "etc/passwd", "content": "root:x:0:0:root:/root:/bin/bash\n"},
               {"path": "var/lib/apt/lists/lock"}, {"path": "var/lib/apt/lists/partial", "type": "dir"},
               {"path": "var/cache/apt/archives/lock"}]
    entries += [{"path": path, "mode": mode, "content": "ELF"} for path, mode in DEBIAN_SETUID.items()]
    return layer_of(entries)


def test_debian_like_image_reports_its_usual_setuid_files_as_info(tmp_path):
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:6a3b2c1d in / "},
               {"created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True}]
    image = Image([debian_like_layer()], {"Cmd": ["bash"]})
    image.config["history"] = history
    write_layout(tmp_path, {"12": image})
    assert _summary(_findings(f"oci:{tmp_path}:12")) == sorted(
        [("HR4001", "warning", "config"), ("HR4004", "info", "config")]
        + [("HR4009", "info", "/" + path) for path in DEBIAN_SETUID])


@pytest.fixture(scope="session")
def debian_minbase_layer(tmp_path_factory):
    """A one-layer image's layer holding a real `debootstrap --variant=minbase bookworm`
    root (built once per machine and cached: tests/debian_root.py), tarred by GNU tar."""
    from tests.debian_root import minbase_root
    root = minbase_root()
    layer = tmp_path_factory.mktemp("debian-minbase") / "layer.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(layer), "."], check=True)
    return layer


def test_a_real_debian_minbase_root_gives_exactly_the_expected_findings(tmp_path, debian_minbase_layer):
    """The synthetic root above is checked against this one: the same setuid set, plus the
    apt caches debootstrap leaves (the official debian images remove them)."""
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:0a1b2c3d in / "},
               {"created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True}]
    image = Image([debian_minbase_layer.read_bytes()], {"Cmd": ["bash"]}, compress=False)
    image.config["history"] = history
    write_layout(tmp_path, {"12": image})
    report = _findings(f"oci:{tmp_path}:12")
    assert _summary(report) == sorted(
        [("HR4001", "warning", "config"), ("HR4004", "info", "config"),
         ("HR4014", "info", "/var/cache/apt/archives"), ("HR4014", "info", "/var/lib/apt/lists")]
        + [("HR4009", "info", "/" + path) for path in DEBIAN_SETUID])
    modes = {f.image.path: int(f.message.split("(mode ")[1][:4], 8) for f in report.findings if f.rule == "HR4009"}
    assert modes == {"/" + path: mode for path, mode in DEBIAN_SETUID.items()}


# --- the image of examples/insecure/Dockerfile, built by hand ------------------------

NPM_TOKEN = "npm_Zq7kP2mX9vB4nR8tW1yL6cD3fH5jK0aS7gE2"


def insecure_image() -> Image:
    """The layers and history BuildKit would record for examples/insecure/Dockerfile
    built with --build-arg NPM_TOKEN=…: one layer per RUN, ADD and COPY."""
    run = f"RUN |1 NPM_TOKEN={NPM_TOKEN} /bin/sh -c "
    steps = [  # (created_by, the layer's entries, or None for an empty-layer step)
        ("ENV NODE_ENV=production DB_PASSWORD=Sup3rS3cret NODE_TLS_REJECT_UNAUTHORIZED=0", None),
        ("ARG NPM_TOKEN", None),
        (run + "apt-get update # buildkit",
         [{"path": "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "content": "x" * 100}]),
        (run + "apt-get install -y curl sudo openssh-server python3-pip # buildkit",
         [{"path": "usr/bin/sudo", "mode": 0o4755, "content": "ELF"},
          {"path": "etc/sudoers", "mode": 0o440, "content": "root ALL=(ALL:ALL) ALL\n"},
          {"path": "var/cache/apt/archives/sudo_1.9.13_amd64.deb", "content": "deb"}]),
        (run + "curl -fsSL https://deb.example.com/setup_20.x | sudo bash - # buildkit",
         [{"path": "etc/apt/sources.list.d/nodesource.list", "content": "deb https://deb.example.com/ x main\n"}]),
        (run + "echo 'root:toor' | chpasswd && mkdir -p /run/sshd # buildkit",
         [{"path": "etc/shadow", "mode": 0o640, "content": "root:$y$j9T$abc$def:19700:0:99999:7:::\n"},
          {"path": "run/sshd", "type": "dir"}]),
        ("ADD https://example.com/tools/wait-for-it.sh /usr/local/bin/wait-for-it # buildkit",
         [{"path": "usr/local/bin/wait-for-it", "mode": 0o600, "content": "#!/bin/sh\n"}]),
        ("WORKDIR /app", [{"path": "app", "type": "dir"}]),
        ("COPY . . # buildkit",   # the build context: examples/insecure with its .git
         [{"path": "app/Dockerfile", "content": "FROM node:latest\n"}, {"path": "app/.git", "type": "dir"},
          {"path": "app/.git/config", "content": "[core]\n"}, {"path": "app/deploy.sh", "mode": 0o755}]),
        ("COPY .npmrc ./ # buildkit", [{"path": "app/.npmrc", "content": "registry=https://registry.npmjs.org/\n"}]),
        ("ADD config.json /app/config.json # buildkit", [{"path": "app/config.json", "content": "{}"}]),
        (run + 'echo "//registry.npmjs.org/:_authToken=${NPM_TOKEN}" >> .npmrc  && npm install # buildkit',
         [{"path": "app/.npmrc", "content": f"//registry.npmjs.org/:_authToken={NPM_TOKEN}\n"},
          {"path": "root/.npm/_cacache/index-v5/aa/bb", "content": "{}"}]),
        (run + "pip3 install --break-system-packages --trusted-host pypi.org awscli  "
               "&& curl -k -o /tmp/cert.pem https://internal.example.com/cert.pem # buildkit",
         [{"path": "root/.cache/pip/http-v2/a/b", "content": "x"}, {"path": "tmp/cert.pem", "content": "x"}]),
        ("EXPOSE map[22/tcp:{} 3000/tcp:{}]", None),
        ('CMD ["npm" "start"]', None),
    ]
    image = Image([layer_of(entries) for _, entries in steps if entries is not None],
                  {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "NODE_ENV=production", "DB_PASSWORD=Sup3rS3cret",
                           "NODE_TLS_REJECT_UNAUTHORIZED=0"],
                   "ExposedPorts": {"22/tcp": {}, "3000/tcp": {}}, "Cmd": ["npm", "start"], "WorkingDir": "/app"})
    image.config["history"] = [{"created_by": by, "empty_layer": entries is None} for by, entries in steps]
    return image


@pytest.fixture(scope="module")
def insecure_report(tmp_path_factory):
    layout = write_layout(tmp_path_factory.mktemp("insecure"), {"latest": insecure_image()})
    return _findings(f"oci:{layout}:latest")


def test_insecure_image_shows_the_secrets_of_the_dockerfile_audit_and_its_own(insecure_report):
    by_rule: dict = {}
    for finding in insecure_report.findings:
        by_rule.setdefault(finding.rule, []).append(finding.message)
    secrets = " | ".join(by_rule["HR4002"] + by_rule["HR4006"] + by_rule["HR4011"])
    # what the Dockerfile audit shows: DB_PASSWORD (HR1003), chpasswd (HR1005), .npmrc (HR1006),
    # NPM_TOKEN passed as a build argument (HR1019)
    assert "Env DB_PASSWORD holds a literal secret" in secrets
    assert "ENV DB_PASSWORD bakes a secret" in secrets
    assert "literal password piped into chpasswd" in secrets
    assert "/app/.npmrc is npm credentials" in secrets
    assert "build argument NPM_TOKEN was given a literal secret" in secrets
    # only the image has: the .git directory the context brought, and the first .npmrc
    # replaced by the one holding the token, whose older layer still ships
    assert "/app/.git is a git repository" in secrets
    assert "removed (deleted or replaced) in layer 9 but still in the image" in secrets
    assert NPM_TOKEN not in secrets and "Sup3rS3cret" not in secrets and "toor" not in secrets


def test_insecure_image_exact_findings(insecure_report):
    assert _summary(insecure_report) == sorted([
        ("HR4001", "warning", "config"), ("HR4002", "error", "config"),
        ("HR4003", "warning", "config"), ("HR4004", "info", "config"),
        ("HR4005", "warning", "history"),
        ("HR4006", "error", "history"),      # ENV DB_PASSWORD (an empty-layer step)
        *[("HR4006", "error", "history")] * 6,   # the NPM_TOKEN value, on each of the 6 RUN steps
        ("HR4006", "error", "history"),      # chpasswd
        ("HR4007", "warning", "history"), ("HR4008", "warning", "history"),
        ("HR4009", "info", "/usr/bin/sudo"), ("HR4013", "warning", "/usr/bin/sudo"),
        ("HR4011", "error", "/app/.git"), ("HR4011", "error", "/app/.npmrc"), ("HR4011", "error", "/app/.npmrc"),
        ("HR4014", "info", "/var/lib/apt/lists"), ("HR4014", "info", "/var/cache/apt/archives"),
        ("HR4014", "info", "/root/.npm/_cacache"), ("HR4014", "info", "/root/.cache/pip")])


def test_history_findings_name_their_step_and_layer(insecure_report):
    curl = [f for f in insecure_report.findings if f.rule == "HR4005"]
    assert len(curl) == 1 and curl[0].image.layer == 2
    assert "history step 4, layer 2: RUN curl -fsSL https://deb.example.com/setup_20.x | sudo bash -" \
        in curl[0].message
    assert curl[0].subject == f"layer 2 ({curl[0].image.layer_digest}) history 4"


# --- whiteouts -----------------------------------------------------------------------

def _layers_image(tmp_path, *layers):
    write_layout(tmp_path, {None: Image([layer_of(entries) for entries in layers], {"User": "1"})})
    return f"oci:{tmp_path}"


def test_a_file_deleted_later_is_not_in_the_final_filesystem_but_a_deleted_secret_is_reported(tmp_path):
    report = _findings(_layers_image(
        tmp_path,
        [{"path": "usr/local/bin/tool", "mode": 0o4755}, {"path": "srv", "type": "dir", "mode": 0o777},
         {"path": "root/.aws/credentials", "content": "[default]\n"}],
        [{"path": "usr/local/bin/.wh.tool"}, {"path": ".wh.srv"}, {"path": "root/.aws/.wh.credentials"}]))
    assert [(f.rule, f.image.path, f.image.layer, f.image.removed_in) for f in report.findings
            if f.rule != "HR4004"] == [("HR4011", "/root/.aws/credentials", 0, 1)]
    # control: without the second layer, all three are reported
    control = _findings(_layers_image(tmp_path / "control", [
        {"path": "usr/local/bin/tool", "mode": 0o4755}, {"path": "srv", "type": "dir", "mode": 0o777},
        {"path": "root/.aws/credentials", "content": "[default]\n"}]))
    assert {f.rule for f in control.findings} == {"HR4004", "HR4009", "HR4010", "HR4011"}


def test_an_opaque_directory_hides_the_layers_below_not_its_own(tmp_path):
    report = _findings(_layers_image(
        tmp_path,
        [{"path": "etc/sudoers.d/old", "content": "app ALL=(ALL) NOPASSWD: ALL\n"}],
        [{"path": "etc/sudoers.d/new", "content": "ops ALL=(ALL) NOPASSWD: ALL\n"},
         {"path": "etc/sudoers.d/.wh..wh..opq"}]))
    assert [(f.rule, f.image.path) for f in report.findings if f.rule == "HR4013"] == \
        [("HR4013", "/etc/sudoers.d/new")]


def test_empty_password_read_from_the_last_shadow(tmp_path):
    report = _findings(_layers_image(
        tmp_path, [{"path": "etc/shadow", "content": "root::19000:0:::::\n"}],
        [{"path": "etc/shadow", "content": "root:*:19000:0:::::\n"}]))
    assert "HR4012" not in {f.rule for f in report.findings}
    control = _findings(_layers_image(tmp_path / "c", [{"path": "etc/shadow", "content": "root::19000:0:::::\n"}]))
    assert [f.message for f in control.findings if f.rule == "HR4012"] == [
        "/etc/shadow: root has an empty password: anyone can log in or `su` as root without one"]


# --- transports, the CLI, formats ----------------------------------------------------

def test_image_transports_match_the_image_library():
    assert set(IMAGE_TRANSPORTS) == set(TRANSPORTS) - {"docker"}


def test_every_transport_gives_the_same_findings(tmp_path, insecure_report):
    image = insecure_image()
    archives = {
        "oci-archive": write_oci_archive(tmp_path / "i.tar", {"latest": image}, tmp_path / "work"),
        "docker-archive": write_docker_archive(tmp_path / "d.tar", image, ["insecure:latest"]),
    }
    expected = [(f.rule, f.message) for f in insecure_report.findings]
    for transport, archive in archives.items():
        report = _findings(f"{transport}:{archive}")
        assert [(f.rule, f.message) for f in report.findings] == expected, transport


def test_cli_positional_and_option_images_in_every_format(tmp_path, insecure_report):
    layout = write_layout(tmp_path / "layout", {"latest": insecure_image()})
    digest = insecure_report.findings[0].image.digest
    result = subprocess.run(HARDRUN + ["audit", f"oci:{layout}:latest", "-f", "json"],
                            capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["files"] == [{"path": f"oci:{layout}:latest@{digest}", "kind": "image"}]
    secret = next(f for f in document["findings"] if f["rule"] == "HR4011" and f["removed_in"] is not None)
    assert (secret["image"], secret["image_digest"], secret["layer"], secret["image_path"], secret["removed_in"]) \
        == (f"oci:{layout}:latest", digest, 7, "/app/.npmrc", 9)
    assert secret["layer_digest"].startswith("sha256:")
    for fmt in ("text", "junit", "codeclimate", "html", "sarif"):
        out = subprocess.run(HARDRUN + ["audit", "--image", f"oci:{layout}:latest", "-f", fmt],
                             capture_output=True, text=True).stdout
        assert digest in out and secret["layer_digest"] in out and "/app/.npmrc" in out, fmt
    sarif = json.loads(subprocess.run(HARDRUN + ["audit", "--image", f"oci:{layout}:latest", "-f", "sarif"],
                                      capture_output=True, text=True).stdout)
    located = [r for r in sarif["runs"][0]["results"]
               if r["locations"][0]["logicalLocations"][-1]["name"] == "/app/.npmrc"]
    assert located and located[0]["locations"][0]["logicalLocations"][0] == {
        "name": f"oci:{layout}:latest", "fullyQualifiedName": f"oci:{layout}:latest@{digest}", "kind": "module"}


def test_policy_and_fail_on_apply_to_images(tmp_path, busybox_layout):
    layout, _ = busybox_layout
    clean = subprocess.run(HARDRUN + ["audit", f"oci:{layout}:1.36"], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    layered = _layers_image(tmp_path, [{"path": "opt/x", "mode": 0o666}])
    assert subprocess.run(HARDRUN + ["audit", layered], capture_output=True).returncode == 1
    assert subprocess.run(HARDRUN + ["audit", layered, "--fail-on", "error"], capture_output=True).returncode == 0


def test_a_broken_image_is_one_line_and_the_others_are_still_audited(tmp_path, busybox_layout):
    layout, _ = busybox_layout
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "oci-layout").write_text("{}")
    corrupt = tmp_path / "corrupt"
    write_layout(corrupt, {None: Image([layer_of([{"path": "a"}])], {})})
    blob = max((corrupt / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    blob.write_bytes(b"\x1f\x8b" + blob.read_bytes()[2:-8] + b"\0" * 8)
    result = subprocess.run(HARDRUN + ["audit", f"oci:{bad}", f"oci:{corrupt}", "--image", f"oci:{layout}:1.36",
                                       "--image", f"oci:{layout}:nosuchtag", "--image", "oci-archive:/nonexistent.tar"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert len(lines) == 4, result.stdout
    assert any("imageLayoutVersion" in line for line in lines)
    assert any("nosuchtag" in line for line in lines)
    assert "1 file audited" in result.stdout


def test_a_registry_image_that_cannot_be_reached_is_a_clear_error():
    result = subprocess.run(HARDRUN + ["audit", "--image", "docker://127.0.0.1:1/app:1"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "127.0.0.1:1/app:1: error:" in result.stdout and "cannot reach" in result.stdout


def test_an_image_of_the_store_is_audited_by_name(tmp_path, monkeypatch, insecure_report):
    from hardrun.images.operations import pull
    from hardrun.images.store import STORE_ENV, Store
    layout = write_layout(tmp_path / "layout", {"latest": insecure_image()})
    store_root = tmp_path / "store"
    monkeypatch.setenv(STORE_ENV, str(store_root))
    name, _, _ = pull(Store(str(store_root)), f"oci:{layout}:latest")
    report = _findings(name)
    assert [(f.rule, f.message) for f in report.findings] == [(f.rule, f.message) for f in insecure_report.findings]


def test_a_tar_file_named_like_a_transport_is_read_as_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("oci:Dockerfile").write_text("FROM busybox:1.36\nUSER 1000\n")
    report = audit(["oci:Dockerfile"])
    assert [f.kind for f in report.files] == ["dockerfile"]


def test_layers_are_streamed_not_extracted(tmp_path):
    """Nothing of the image is written anywhere while it is audited."""
    layout = write_layout(tmp_path / "layout", {None: Image([layer_of([{"path": "etc/x", "content": "y"}])], {})})
    before = sorted(p for p in tmp_path.rglob("*"))
    _findings(f"oci:{layout}")
    assert sorted(p for p in tmp_path.rglob("*")) == before


# --- the header walk agrees with tarfile ---------------------------------------------

@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_header_walk_lists_what_tarfile_lists(tmp_path, fmt):
    """Layer.headers() (no tarfile) against Layer.entries() (tarfile) over long names
    (ustar prefix, GNU long names, PAX paths), links, large sizes and non-ASCII names."""
    import io
    from hardrun.images.layers import Layer
    from hardrun.images.reference import parse_location
    from hardrun.images.sources import open_source
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        def add(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, linkname=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size, info.linkname = kind, mode, len(data), linkname
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("etc", tarfile.DIRTYPE, mode=0o755)
        add("etc/shadow", data=b"root::1:0:::::\n" * 100, mode=0o640)
        add("usr/share/" + "deep/" * 25 + "file.txt", data=b"x" * 1000)   # > 100 characters
        add("usr/bin/sudo", data=b"ELF" * 700, mode=0o4755)
        if fmt != tarfile.USTAR_FORMAT:     # longer than ustar can hold: GNU long names, PAX paths
            add("usr/share/" + "d" * 120 + "/name", data=b"y")
            add("bin/sh", tarfile.SYMTYPE, linkname="/usr/lib/" + "l" * 110)
        add("usr/bin/sudoedit", tarfile.LNKTYPE, linkname="usr/bin/sudo")
        if fmt != tarfile.USTAR_FORMAT:
            add("opt/caf\u00e9/menu", data=b"z")
        add("var/.wh.old")
    layout = write_layout(tmp_path, {None: Image([buffer.getvalue()], {})})
    with open_source(parse_location(f"oci:{layout}")) as source:
        manifest = source.manifest()
        diff_id = source.config(manifest)["rootfs"]["diff_ids"][0]
        with Layer(source, manifest.layers[0], diff_id) as layer:
            expected = [(kind, path, m.type, m.mode, m.size, m.linkname) for kind, path, m in layer.entries()]
            layer.finish()
        with Layer(source, manifest.layers[0], diff_id, listing=True) as layer:
            listed = []
            for kind, path, header in layer.headers():
                listed.append((kind, path, header.type, header.mode, header.size, header.linkname))
                if path == "etc/shadow":
                    assert layer.content(16) == b"root::1:0:::::\nr"
            layer.finish()
    assert listed == expected and len(listed) == (9 if fmt != tarfile.USTAR_FORMAT else 6)


# --- a registry (docker-registry on 127.0.0.1, started by tests/images' fixture) --------

from tests.images.test_registry import image_layout, registry  # noqa: E402,F401  (module fixtures)


def test_a_registry_image_is_streamed_and_judged_as_its_layout_is(registry, image_layout):  # noqa: F811
    pulled = _findings(f"docker://{registry}/team/bb:1.0")
    local = _findings(f"oci:{image_layout}:1.0")
    assert pulled.files[0].path.startswith(f"{registry}/team/bb:1.0@sha256:")
    assert [(f.rule, f.message) for f in pulled.findings] == [(f.rule, f.message) for f in local.findings]
    assert pulled.findings    # not vacuous: the busybox image has no HEALTHCHECK at least


def test_a_policy_exemption_names_the_image(tmp_path):
    from hardrun.api import audit_with_policy
    name = _layers_image(tmp_path / "image", [{"path": "srv", "type": "dir", "mode": 0o777}])
    for pattern, suppressed in ((f"oci:{tmp_path}/*", True), ("docker.io/*", False)):   # the second: control
        policy = tmp_path / "policy.yaml"
        policy.write_text(f"version: 1\nexemptions:\n  - {{rule: HR4010, images: ['{pattern}'], reason: shared}}\n")
        report, _ = audit_with_policy([], str(policy), images=[name])
        assert [(f.rule, f.suppressed) for f in report.findings if f.rule == "HR4010"] == [("HR4010", suppressed)]
