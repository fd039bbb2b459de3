#!/bin/sh
# Install everything hardrun needs on Debian 12 (run as root), idempotently:
# system packages, then a virtualenv in .venv with hardrun and its runtime extra.
#   scripts/setup.sh          the tool
#   scripts/setup.sh --test   the tool and its test dependencies
set -eu
cd "$(dirname "$0")/.."

# python3-dev and gcc build hardrun's own C modules (hardrun/runtime/_kernel.c, the system calls;
# hardrun/images/_tarscan.c, the image audit's tar header walk, also built with AddressSanitizer
# by tests/images/test_tarscan.py)
# and, with libcap-dev, python-prctl; libseccomp2 is loaded by pyseccomp;
# busybox-static makes the test root filesystems; uidmap gives newuidmap for rootless use;
# iproute2 and nftables are used by bridge networks.
PACKAGES="python3 python3-venv python3-dev gcc libc6-dev libcap-dev libseccomp2 busybox-static \
uidmap iproute2 nftables procps ca-certificates"
EXTRAS="runtime"
if [ "${1:-}" = "--test" ]; then
    EXTRAS="runtime,test"
    # The CI tests: git for the pre-commit hook's temporary repositories, chromium to
    # render the HTML report headless, shellcheck over the CI templates' scripts
    # and for the audit's ShellCheck bridge (tests/audit/test_shellcheck.py).
    PACKAGES="$PACKAGES git chromium shellcheck"
    # tests/engines/ run hardrun-oci under the real engines, runc and crun beside it (the
    # controls), containerd's CRI plugin with pods networked by the CNI plugins
    PACKAGES="$PACKAGES docker.io podman containerd runc crun conmon containernetworking-plugins"
    # the image tests check hardrun's archives against skopeo's and pull from a
    # docker-registry they start on 127.0.0.1 (skopeo pushes to it); bench/ unpacks with umoci
    PACKAGES="$PACKAGES skopeo umoci docker-registry"
    # the image audit's tests judge a real Debian minbase root, built once per machine
    # with debootstrap from deb.debian.org and cached in /var/cache/hardrun-tests
    PACKAGES="$PACKAGES debootstrap"
    # tests/vm/ boot a virtual machine on a pure cgroup v2 hierarchy (qemu's TCG, no KVM
    # needed) with Debian's own kernel, which the tests fetch with `apt-get download` and
    # unpack into their cache: linux-image-amd64 is not installed (no /boot, no initramfs hooks)
    PACKAGES="$PACKAGES qemu-system-x86"
fi

missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $package"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The interpreter of the python3 package installed above (python3-dev has its headers),
# not whichever python3 comes first on PATH.
[ -x .venv/bin/python ] || /usr/bin/python3 -m venv .venv
# compat: the checkout goes on sys.path through a plain .pth line. The default editable
# mode installs an import hook whose own imports add about 12 ms to every start of Python,
# and `hardrun run` start-up is measured against crun.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]" \
    --config-settings editable_mode=compat
# Nothing in the virtualenv needs setuptools at run time (pip builds in an isolated
# environment), and its distutils-precedence.pth runs an import on every start of Python
# (about 0.6 ms). Python 3.12 and later create virtualenvs without it.
if [ -e .venv/lib/python3*/site-packages/distutils-precedence.pth ]; then
    .venv/bin/python -m pip uninstall -q -y setuptools
fi

# `hardrun` started as `python -IS` (bin/hardrun says why): pip writes the script's first
# line without the flags its source gives.
sed -i '1s/^\(#!.*python[0-9.]*\)$/\1 -IS/' .venv/bin/hardrun

# hardrun-oci's compiled front (bin/hardrun-oci-front.c): engines call `state`, `start`, `kill`
# and `delete` several times per container, and the front answers the plain cases from the
# record Python wrote, without starting Python; every other call goes to the Python command
# beside it, hardrun-oci-py: bin/hardrun-oci started as `python -IS`, with the directory
# hardrun is imported from written in (the script says why).
.venv/bin/python -I - <<'PYTHON'   # -I: hardrun as installed, not the current directory
import os
import hardrun
home = os.path.dirname(os.path.dirname(os.path.abspath(hardrun.__file__)))
with open("bin/hardrun-oci", encoding="utf-8") as handle:
    body = handle.read().split("\n", 1)[1]
assert "\nHARDRUN_HOME = None\n" in body
body = body.replace("\nHARDRUN_HOME = None\n", f"\nHARDRUN_HOME = {home!r}\n", 1)
target = ".venv/bin/hardrun-oci-py"
with open(target + ".new", "w", encoding="utf-8") as handle:
    handle.write(f"#!{os.path.abspath('.venv/bin/python')} -IS\n{body}")
os.chmod(target + ".new", 0o755)
os.replace(target + ".new", target)
PYTHON
gcc -O2 -Wall -o .venv/bin/hardrun-oci.new bin/hardrun-oci-front.c   # no -Werror: a newer gcc's new warning must not stop an install
mv .venv/bin/hardrun-oci.new .venv/bin/hardrun-oci

# The bytecode compiled now, as pip compiles a regular install's: an engine started with
# PYTHONDONTWRITEBYTECODE in its environment, or a checkout it cannot write, would otherwise
# have hardrun-oci compile its modules on every call (measured: 168 ms of a 237 ms create).
.venv/bin/python -m compileall -q hardrun >/dev/null
