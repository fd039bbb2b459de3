"""Pulling from registries: Debian's docker-registry started on 127.0.0.1 (skopeo pushes
a test image to it), and a small test server for the bearer-token and basic-auth flows."""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hardrun.images.reference import parse_location
from hardrun.images.registry import RegistrySource, parse_challenge
from tests.helpers import run_hardrun
from tests.imagebuild import Image, busybox_tree, dir_layer, entry, tar_layer, write_layout
from tests.rootfs import require_root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answers(url: str, process=None) -> None:
    for _ in range(200):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited: {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return        # it answers, if only with 401
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


@pytest.fixture(scope="module")
def image_layout(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry-image")
    tree = busybox_tree(base / "tree")
    return write_layout(base / "layout", {"1.0": Image([dir_layer(tree)], {"Cmd": ["/bin/echo", "from-registry"],
                                                                           "User": "1000"})})


@pytest.fixture(scope="module")
def registry(tmp_path_factory, image_layout):
    """docker-registry on 127.0.0.1 (its state in a temporary directory), with
    team/bb:1.0 pushed by skopeo; stopped by pid afterwards."""
    base = tmp_path_factory.mktemp("registry")
    port = free_port()
    (base / "config.yml").write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
                                     f"http:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen(["docker-registry", "serve", str(base / "config.yml")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/v2/", process)
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{image_layout}:1.0",
                        f"docker://127.0.0.1:{port}/team/bb:1.0"], check=True, cwd=base, capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_pull_from_a_real_registry_and_run(registry, tmp_path):
    require_root()
    env = {"HARDRUN_STORE": str(tmp_path / "store")}
    pulled = run_hardrun("pull", f"{registry}/team/bb:1.0", env=env)
    assert pulled.returncode == 0, pulled.stderr
    name, digest = pulled.stdout.split()
    assert name == f"{registry}/team/bb:1.0"
    by_digest = run_hardrun("pull", f"{registry}/team/bb@{digest}", env=env)
    assert by_digest.returncode == 0, by_digest.stderr
    ran = run_hardrun("run", f"{registry}/team/bb:1.0", env=env)
    assert ran.stdout == "from-registry\n", ran.stderr
    # --pull=missing (the default) found it in the store: the registry is not asked again
    missing = run_hardrun("run", "--pull", "missing", "127.0.0.1:1/team/bb:1.0", env=env)
    assert missing.returncode == 125 and "not in the store" not in missing.stderr
    absent = run_hardrun("pull", f"{registry}/team/absent:1", env=env)
    assert absent.returncode == 2 and "HTTP 404" in absent.stderr


def test_a_digest_that_does_not_match_is_refused(registry, tmp_path):
    env = {"HARDRUN_STORE": str(tmp_path / "store")}
    wrong = run_hardrun("pull", f"{registry}/team/bb@sha256:" + "0" * 64, env=env)
    assert wrong.returncode == 2 and "sha256:" + "0" * 64 in wrong.stderr


class FakeRegistry(BaseHTTPRequestHandler):
    """Serves one OCI layout as team/bb:1.0 behind a bearer-token (or basic) challenge."""
    layout: Path
    scheme = "bearer"
    user, password, token = "alice", "s3cret", "tok-123"
    seen: list = []

    def log_message(self, *_):
        pass

    def do_GET(self):
        basic = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if self.path.startswith("/token"):
            if self.headers.get("Authorization") != basic:
                return self._send(401, b"{}")
            self.seen.append(self.path)
            return self._send(200, json.dumps({"token": self.token}).encode())
        wanted = f"Bearer {self.token}" if self.scheme == "bearer" else basic
        if self.headers.get("Authorization") != wanted:
            challenge = (f'Bearer realm="http://{self.headers["Host"]}/token",service="fake",'
                         'scope="repository:team/bb:pull"' if self.scheme == "bearer" else 'Basic realm="fake"')
            return self._send(401, b"{}", {"WWW-Authenticate": challenge})
        index = json.loads((self.layout / "index.json").read_text())
        if self.path == "/v2/team/bb/manifests/1.0":
            return self._blob(index["manifests"][0]["digest"], "application/vnd.oci.image.manifest.v1+json")
        for kind in ("manifests", "blobs"):
            prefix = f"/v2/team/bb/{kind}/"
            if self.path.startswith(prefix):
                return self._blob(self.path[len(prefix):], "application/vnd.oci.image.manifest.v1+json")
        return self._send(404, b"{}")

    def _blob(self, digest, media_type):
        path = self.layout / "blobs" / "sha256" / digest[7:]
        if not path.exists():
            return self._send(404, b"{}")
        return self._send(200, path.read_bytes(), {"Content-Type": media_type})

    def _send(self, code, body, headers=None):
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_token_and_basic_auth_with_credentials_from_the_auth_file(image_layout, tmp_path, scheme):
    handler = type("Handler", (FakeRegistry,), {"layout": image_layout, "scheme": scheme, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        auth = tmp_path / "auth.json"
        env = {"HARDRUN_STORE": str(tmp_path / "store"), "REGISTRY_AUTH_FILE": str(auth)}
        auth.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(b"alice:wrong").decode()}}}))
        refused = run_hardrun("pull", f"{host}/team/bb:1.0", env=env)
        assert refused.returncode == 2 and "401" in refused.stderr    # the control: wrong password
        auth.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
        # a loopback registry speaks plain HTTP whatever --tls-verify says (as Docker's does);
        # what the flag changes for other hosts: test_plain_http_only_for_loopback_or_when_asked
        flag = "--tls-verify" if scheme == "bearer" else "--no-tls-verify"
        pulled = run_hardrun("pull", flag, f"{host}/team/bb:1.0", env=env)
        assert pulled.returncode == 0, pulled.stderr
        if scheme == "bearer":
            assert handler.seen and "scope=repository%3Ateam%2Fbb%3Apull" in handler.seen[-1]
    finally:
        server.shutdown()
        server.server_close()


def test_plain_http_only_for_loopback_or_when_asked():
    assert RegistrySource(parse_location("127.0.0.1:5000/a:1")).base.startswith("http://127.0.0.1:5000/v2/a")
    assert RegistrySource(parse_location("localhost:5000/a:1")).base.startswith("http://")
    assert RegistrySource(parse_location("ghcr.io/o/a:1")).base == "https://ghcr.io/v2/o/a"
    assert RegistrySource(parse_location("alpine")).base == "https://registry-1.docker.io/v2/library/alpine"
    assert RegistrySource(parse_location("example.com/a:1"), tls_verify=False).base.startswith("http://")


def test_challenge_parsing():
    assert parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                           'scope="repository:library/alpine:pull"') == (
        "bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                   "scope": "repository:library/alpine:pull"})
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert os.environ.get("HARDRUN_STORE") is None   # the tests never touch the real store


def test_a_zstd_image_pushed_by_skopeo_is_pulled_and_run(registry, tmp_path):
    """skopeo pushes the zstd layers as they are (tar+zstd in the registry's manifest)."""
    require_root()
    tree = busybox_tree(tmp_path / "tree")
    top = tar_layer([entry("etc/note", content=b"zstd from the registry\n")])
    layout = write_layout(tmp_path / "layout", {"z": Image([dir_layer(tree), top], {"Cmd": ["/bin/cat", "/etc/note"]},
                                                           compress="zstd")})
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:z",
                    f"docker://{registry}/team/zstd:1"], check=True, cwd=tmp_path, capture_output=True)
    source = RegistrySource(parse_location(f"{registry}/team/zstd:1"))
    assert {layer.media_type for layer in source.manifest().layers} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    ran = run_hardrun("run", f"{registry}/team/zstd:1", env={"HARDRUN_STORE": str(tmp_path / "store")})
    assert (ran.returncode, ran.stdout) == (0, "zstd from the registry\n"), ran.stderr
