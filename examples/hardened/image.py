#!/usr/bin/env python3
"""Build the hardened example's image offline: Debian's busybox-static in one layer, the
confinement report as its command, an unprivileged user, written as an OCI archive.

    python3 examples/hardened/image.py [OUTPUT]      # default: examples/hardened/image.tar
    hardrun run oci-archive:examples/hardened/image.tar:1.0
"""
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

REPORT = """echo "user:    $(id)"
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
touch /hardrun-probe 2>/dev/null || echo "root:    read-only"
echo "network: $(ls /sys/class/net | tr '\\n' ' ')"
"""


def add(tar, name, kind=tarfile.DIRTYPE, data=b"", linkname="", mode=0o755):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, linkname, mode, len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            add(tar, directory)
        add(tar, "bin/busybox", tarfile.REGTYPE, Path("/bin/busybox").read_bytes())
        applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout
        for applet in applets.split():
            if applet != "busybox":
                add(tar, f"bin/{applet}", tarfile.SYMTYPE, linkname="busybox")   # relative, as images do
        add(tar, "etc/passwd", tarfile.REGTYPE, b"root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n", mode=0o644)
        add(tar, "etc/group", tarfile.REGTYPE, b"root:x:0:\nnogroup:x:65534:\n", mode=0o644)
    return buffer.getvalue()


def main(output: str) -> None:
    raw = layer()
    blob = gzip.compress(raw, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": [REPORT], "User": "65534:65534",
                                    "Env": ["PATH=/bin"], "WorkingDir": "/"},
                         "rootfs": {"type": "layers", "diff_ids": [digest(raw)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digest(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": digest(blob), "size": len(blob)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest),
         "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "1.0"}}]}).encode()
    with tarfile.open(output, "w") as tar:
        for name, data in (("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", index),
                           *((f"blobs/sha256/{digest(d)[7:]}", d) for d in (config, blob, manifest))):
            add(tar, name, tarfile.REGTYPE, data, mode=0o644)
    print(output)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parent / "image.tar"))
