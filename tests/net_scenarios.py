"""Network scenarios, run by test_network.py inside a network namespace of its own
(`unshare --net`) that plays the host: every packet stays in namespaces made here.

Each scenario prints one JSON object of observations; the tests assert on them.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hardrun.runtime import gc, state  # noqa: E402
from hardrun.runtime.network import BRIDGE_PREFIX  # noqa: E402
from hardrun.spec.run import Port  # noqa: E402
from tests.helpers import wait_until  # noqa: E402
from tests.limits_support import Box, host_leftovers  # noqa: E402

SERVE = "busybox nc -ll -p {port} -e busybox echo {text}"
# Debian's interpreter (scripts/setup.sh installs it), for containers in the read-only view
# of the host: the test's own may live under /tmp, which is a fresh tmpfs there
CONTAINER_PYTHON = "/usr/bin/python3"


# busybox nc has no UDP: a one-line echo server in the container, a socket on the host
UDP_SERVE = (f"{sys.executable} -S -c \"import socket; s = socket.socket(2, 2); "
             "s.bind(('0.0.0.0', {port}))\nwhile 1: d, a = s.recvfrom(99); "
             "s.sendto(b'{text}', a)\"")


def host_nc(address: str, port: int, protocol: str = "tcp") -> str:
    if protocol == "udp":
        return _udp_ask(address, port)
    result = subprocess.run(["busybox", "nc", "-w", "2", address, str(port)],
                            input="ping\n", capture_output=True, text=True, timeout=10)
    return result.stdout.strip()


def _udp_ask(address: str, port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2)
        client.sendto(b"ping", (address, port))
        try:
            return client.recv(99).decode()
        except OSError:
            return ""


def first_answer(ask, attempts: int = 5) -> str:
    """What `ask()` answers, asked up to `attempts` times: on a loaded machine a first
    connection can time out while the bridge learns the new veth. A port that never
    answers still gives ''."""
    answer = ""
    for _ in range(attempts):
        answer = ask()
        if answer:
            break
    return answer


def listening(box: Box, port: int) -> bool:
    return f":{port} " in box.run("busybox netstat -ltn").stdout


def names() -> dict:
    alpha = Box(SERVE.format(port=7000, text="hi-from-alpha"), "bridge:tnames", name="alpha")
    beta = Box("busybox sleep 60", "bridge:tnames", name="beta")
    wait_until(lambda: listening(alpha, 7000))
    attempts = []

    def beta_to_alpha():
        done = beta.run("busybox nc -w 2 alpha 7000 </dev/null")
        attempts.append(f"rc={done.returncode} err={done.stderr.strip()!r}")
        return done.stdout.strip()
    observed = {
        "beta_to_alpha": first_answer(beta_to_alpha),
        "attempts": attempts,                     # why, should no attempt get an answer
        "alpha_hosts": alpha.run("busybox cat /etc/hosts").stdout,
        "beta_hosts": beta.run("busybox cat /etc/hosts").stdout,
        "hosts_write": beta.run("echo x >> /etc/hosts").returncode,
        "alpha_ip": alpha.ip, "beta_ip": beta.ip,
        "host_loopback_7000": host_nc("127.0.0.1", 7000),
    }
    problems = alpha.stop() + beta.stop()
    observed["problems"] = problems
    observed["leftovers"] = host_leftovers(state.state_root())
    return observed


def isolation() -> dict:
    """A container on another bridge cannot reach an unpublished port, over IPv4 or IPv6,
    even with the host forwarding both; `--control` removes hardrun's bridge table to show
    it would."""
    subprocess.run(["sysctl", "-qw", "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1"], check=True)
    target = Box(SERVE.format(port=7000, text="reached"), "bridge:tiso1", name="target")
    other = Box("busybox sleep 60", "bridge:tiso2", name="other")
    target_v6 = wire_ipv6(target, "fd89:1::")
    wire_ipv6(other, "fd89:2::")
    wait_until(lambda: listening(target, 7000))
    if "--control" in sys.argv:
        delete_bridge_table("tiso1")

    def other_to_target():
        return other.run(f"busybox nc -w 2 {target.ip} 7000 </dev/null").stdout.strip()
    # the control must show the port reachable, so it may ask again; the real check asks once
    retried = first_answer if "--control" in sys.argv else (lambda ask: ask())
    observed = {"other_to_target": retried(other_to_target),
                "other_to_target_v6": retried(lambda: ask_from(other, target_v6, 7000))}
    observed["problems"] = target.stop() + other.stop()
    observed["leftovers"] = host_leftovers(state.state_root())
    return observed


def delete_bridge_table(bridge: str) -> None:
    """Remove hardrun's isolation table of `bridge`, whatever its nftables family."""
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    found = [line.split() for line in tables if line.endswith(f" hardrun-br-{bridge}")]
    assert found, f"no table hardrun-br-{bridge} in {tables}"
    for words in found:
        subprocess.run(["nft", "delete", *words], check=True)


def serve_on_all_addresses(port: int, text: str) -> None:
    """A host service on [::] taking IPv4 too (as many daemons listen), on a thread."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::", port))
    listener.listen(16)

    def serve():
        while True:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(text.encode() + b"\n")
    threading.Thread(target=serve, daemon=True).start()


IP = shutil.which("ip")     # iproute2's, not the busybox applet the box's shell prefers


# run in a container's network namespace: what (address, port) answers, '' if nothing
ASK = ("import socket, sys\ntry:\n"
       "    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:\n"
       "        print(s.recv(99).decode().strip())\n"
       "except OSError as error:\n    print(error, file=sys.stderr)")


def ask(address: str, port: int) -> str:
    done = subprocess.run([sys.executable, "-S", "-c", ASK, address, str(port)],
                          capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


def ask_from(box: Box, address: str, port: int) -> str:
    command = " ".join(shlex.quote(word) for word in
                       (sys.executable, "-S", "-c", ASK, address, str(port)))
    return box.run(command).stdout.strip()


def wire_ipv6(box: Box, prefix: str) -> str:
    """IPv6 on `box`'s bridge as a host routing IPv6 would set it up: IPv6 turned back on
    for the bridge (hardrun turns it off), `{prefix}1/64` on it, `{prefix}2/64` in the box
    with the bridge as its router; the box's address. Both sides know each other's link
    address (static neighbours): the bridge table drops neighbour discovery from the box
    (router_advert covers that), and these checks are about connections."""
    bridge = BRIDGE_PREFIX + box.endpoint.bridge
    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{bridge}.disable_ipv6=0"], check=True)
    subprocess.run([IP, "-6", "addr", "add", f"{prefix}1/64", "dev", bridge, "nodad"],
                   check=True)
    subprocess.run([IP, "-6", "neigh", "replace", f"{prefix}2", "lladdr", mac(box, "eth0"),
                    "dev", bridge, "nud", "permanent"], check=True)
    neighbours = [f"{IP} -6 neigh replace {address} lladdr {mac(None, bridge)} dev eth0 "
                  "nud permanent"
                  for address in (f"{prefix}1", link_local(None, bridge))]
    wired = box.run(f"{IP} -6 addr add {prefix}2/64 dev eth0 nodad && "
                    f"{IP} -6 route add default via {prefix}1 && " + " && ".join(neighbours))
    assert wired.returncode == 0, wired.stderr
    return f"{prefix}2"


def mac(box: Box | None, interface: str) -> str:
    """The link address of `interface` (in `box`, else on the host)."""
    command = f"{IP} -o link show dev {interface}"
    shown = (box.run(command).stdout if box else
             subprocess.run(command.split(), capture_output=True, text=True).stdout).split()
    return shown[shown.index("link/ether") + 1]


def link_local(box: Box | None, interface: str) -> str:
    """The IPv6 link-local address of `interface` (in `box`, else on the host) once it is
    usable (duplicate address detection over)."""
    command = f"{IP} -6 -o addr show dev {interface} scope link -tentative"

    def address():
        shown = box.run(command).stdout if box else subprocess.run(
            command.split(), capture_output=True, text=True).stdout
        words = shown.split()
        return words[words.index("inet6") + 1].split("/")[0] if "inet6" in words else ""
    return wait_until(address)


def host_services() -> dict:
    """A container cannot reach a service of the host itself (listening on [::], so on
    every address of both families) through the bridge: not on the IPv4 gateway, the
    bridge's IPv6 link-local or another IPv6 address of the host side, nor on the host's
    127.0.0.1 (sent to the gateway, which route_localnet, set for publishing, would take),
    where a port published on loopback by a container of another bridge also listens.
    The host reaches every one of them; `--control` removes hardrun's bridge table to
    show the container would too."""
    subprocess.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
    serve_on_all_addresses(7100, "host-service")
    box = Box("busybox sleep 60", "bridge:tsvc", name="prober",
              ports=[Port("7000", host_port="18070")])
    published = Box(SERVE.format(port=7000, text="published-service"), "bridge:tsvc2",
                    name="published", ports=[Port("7000", host_port="18071")])
    bridge = BRIDGE_PREFIX + "tsvc"
    wire_ipv6(box, "fd89::")
    # an attacker with NET_ADMIN in the container: 127.0.0.1 routed to the gateway
    wired = box.run(f"{IP} addr del 127.0.0.1/8 dev lo && "
                    f"{IP} route add 127.0.0.1/32 via {box.endpoint.gateway} && "
                    "echo 1 >/proc/sys/net/ipv4/conf/eth0/route_localnet")
    assert wired.returncode == 0, wired.stderr
    wait_until(lambda: listening(published, 7000))
    link_local(box, "eth0")
    bridge_link_local = link_local(None, bridge)
    targets = {"ipv4_gateway": (box.endpoint.gateway, 7100),
               "ipv6_link_local": (f"{bridge_link_local}%{bridge}", 7100),
               "ipv6_other_address": ("fd89::1", 7100),
               "host_loopback": ("127.0.0.1", 7100),
               "loopback_published": ("127.0.0.1", 18071)}
    if "--control" in sys.argv:
        delete_bridge_table("tsvc")
    observed = {"host": {name: first_answer(lambda: ask(*target))
                         for name, target in targets.items()}}
    targets["ipv6_link_local"] = (f"{bridge_link_local}%eth0", 7100)   # the container's side
    # the control must show the service reachable, so it may ask again; the check asks once
    if "--control" in sys.argv:
        observed["container"] = {name: first_answer(lambda: ask_from(box, *target))
                                 for name, target in targets.items()}
    else:
        observed["container"] = {name: ask_from(box, *target) for name, target in targets.items()}
    observed["problems"] = box.stop() + published.stop()
    observed["leftovers"] = host_leftovers(state.state_root())
    return observed


# an nft that fails as a kernel without nf_tables would: on everything, or on loading rules
FAILING_NFT = """#!/bin/sh
if [ "$FAIL" = everything ] || [ "$1" = -f ]; then
  echo "Error: simulated failure" >&2; exit 1
fi
exec {real} "$@"
"""


def without_nft() -> dict:
    """`hardrun run --network bridge` where the bridge's isolation rules cannot be put in
    place (argv[3]: `missing`, no nft in PATH; `refused`, every nft command fails;
    `rules-fail`, only loading the rules fails) refuses to start; the control (`control`)
    is the same run with nft, its table in place while the container runs."""
    rootfs, mode = sys.argv[2], sys.argv[3]
    real_nft = shutil.which("nft")
    path = os.environ["PATH"]
    if mode != "control":
        path = os.pathsep.join(d for d in path.split(os.pathsep)
                               if d and not os.path.exists(os.path.join(d, "nft")))
    with tempfile.TemporaryDirectory() as fake:
        if mode in ("refused", "rules-fail"):
            Path(fake, "nft").write_text(FAILING_NFT.format(real=real_nft))
            os.chmod(Path(fake, "nft"), 0o755)
            path = os.pathsep.join((fake, path))
        run = subprocess.Popen([sys.executable, "-m", "hardrun", "run", "-i", "--rootfs", rootfs,
                                "--network", "bridge:tnonft", "--", "sh", "-c",
                                "echo payload-ran; read line"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PATH": path,
                                    "FAIL": "everything" if mode == "refused" else ""})
        first_line = run.stdout.readline().strip()
        ruleset = subprocess.run([real_nft, "list", "ruleset"], capture_output=True,
                                 text=True).stdout
        stdout, stderr = run.communicate("go\n", timeout=60)
    return {"status": run.returncode, "stdout": first_line + stdout, "stderr": stderr,
            "table_while_running": "hardrun-br-tnonft" in ruleset,
            "leftovers": host_leftovers(state.state_root())}


# run in a container with NET_RAW: once eth0 has its link-local address, on "go" send
# the ICMPv6 message argv[1] (hex) to every node of the link, as ND does (hop limit 255)
SEND_ICMPV6 = """import socket, sys, time
def ready():
    return any(w[5] == 'eth0' and w[3] == '20' and not int(w[4], 16) & 0x40
               for w in map(str.split, open('/proc/net/if_inet6')))
for _ in range(400):
    if ready(): break
    time.sleep(0.05)
else: sys.exit('eth0 never got its link-local address')
print('ready', flush=True)
sys.stdin.readline()
index = socket.if_nametoindex('eth0')
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
for _ in range(3):
    s.sendto(bytes.fromhex(sys.argv[1]), ('ff02::1', 0, 0, index))
    time.sleep(0.1)
print('sent', flush=True)
sys.stdin.readline()
"""

# a router advert offering fd89:ab::/64 for autoconfiguration and the sender as the
# default router (the kernel fills in the checksum)
ROUTER_ADVERT = (struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
                 + struct.pack("!BBBBIII16s", 3, 4, 64, 0xc0, 86400, 14400, 0,
                               socket.inet_pton(socket.AF_INET6, "fd89:ab::")))
VICTIM, VICTIM_MAC, SPOOFED_MAC = "fd89:cd::5", "02:00:00:00:00:05", "02:00:00:00:00:66"
# an unsolicited neighbour advert (override flag) claiming VICTIM is at SPOOFED_MAC
NEIGHBOUR_ADVERT = (struct.pack("!BBHI16s", 136, 0, 0, 0x20000000,
                                socket.inet_pton(socket.AF_INET6, VICTIM))
                    + struct.pack("!BB6s", 2, 1, bytes.fromhex(SPOOFED_MAC.replace(":", ""))))


def ipv6_settings(interface: str) -> dict:
    return {name: Path(f"/proc/sys/net/ipv6/conf/{interface}/{name}").read_text().strip()
            for name in ("disable_ipv6", "accept_ra", "accept_redirects")}


def host_ipv6_config(bridge: str) -> dict:
    """What the host took from router adverts on `bridge`: global addresses, default
    routes (as `ip -6` shows them, '' for none)."""
    def shown(*words):
        return subprocess.run([IP, "-6", *words], capture_output=True, text=True).stdout.strip()
    return {"addresses": shown("-o", "addr", "show", "dev", bridge, "scope", "global"),
            "default_routes": shown("route", "show", "default")}


def from_raw_container(name: str, message: bytes, arrange, watch, describe=None) -> dict:
    """`hardrun run --network bridge:NAME --cap-add NET_RAW` sends `message` (ICMPv6) to
    the link after `arrange(bridge)` has run on the host; then `watch(bridge)` is polled
    for 3 s until it returns something true. Observations, the bridge's and host veth's
    IPv6 settings as hardrun left them and `describe(bridge)` at the end included."""
    bridge = BRIDGE_PREFIX + name
    run = subprocess.Popen([sys.executable, "-m", "hardrun", "run", "-i", "--network",
                            f"bridge:{name}", "--cap-add", "NET_RAW", "--", CONTAINER_PYTHON,
                            "-S", "-c", SEND_ICMPV6, message.hex()], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = run.stdout.readline().strip()
    veths = subprocess.run([IP, "-o", "link", "show", "master", bridge], capture_output=True,
                           text=True).stdout
    ipv6_off = {interface: ipv6_settings(interface) for interface in
                [bridge] + [line.split(":")[1].strip().split("@")[0]
                            for line in veths.splitlines()]}
    arrange(bridge)
    run.stdin.write("go\n")
    run.stdin.flush()
    sent = run.stdout.readline().strip()
    try:
        wait_until(lambda: watch(bridge), timeout=3)
    except AssertionError:
        pass
    observed = {"ready": ready, "sent": sent, "bridge_ipv6": ipv6_off, "seen": watch(bridge),
                "described": describe(bridge) if describe else None}
    stdout, stderr = run.communicate("done\n", timeout=60)
    observed.update(status=run.returncode, stderr=stderr,
                    leftovers=host_leftovers(state.state_root()))
    return observed


def router_advert() -> dict:
    """A container given NET_RAW sends router adverts to its bridge, on a host that does
    not forward IPv6 (so it would take them). argv[2]: `hardrun`, the bridge as hardrun
    leaves it; `rules-only`, IPv6 and accept_ra turned back on for the bridge (the table
    alone); `sysctls-only`, the bridge table removed (hardrun's sysctls alone);
    `control`, both removed. What the host took (addresses, default routes)."""
    mode = sys.argv[2]
    subprocess.run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"], check=True)

    def arrange(bridge):
        if mode in ("rules-only", "control"):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{bridge}.disable_ipv6=0",
                            f"net.ipv6.conf.{bridge}.accept_ra=1"], check=True)
        if mode in ("sysctls-only", "control"):
            delete_bridge_table("tra")

    def taken(bridge):
        config = host_ipv6_config(bridge)
        return config if any(config.values()) else {}
    return from_raw_container("tra", ROUTER_ADVERT, arrange, taken)


def neighbour_advert() -> dict:
    """A host with IPv6 turned back on for the bridge knows VICTIM (a stale neighbour
    entry); a container given NET_RAW claims VICTIM's address with an overriding
    neighbour advert. argv[2]: `rules`, hardrun's bridge table in place; `control`, the
    table removed. The host's entry for VICTIM afterwards."""
    def arrange(bridge):
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{bridge}.disable_ipv6=0"], check=True)
        subprocess.run([IP, "-6", "neigh", "replace", VICTIM, "lladdr", VICTIM_MAC, "dev",
                        bridge, "nud", "stale"], check=True)
        if sys.argv[2] == "control":
            delete_bridge_table("tna")

    def entry(bridge):
        return subprocess.run([IP, "-6", "neigh", "show", VICTIM, "dev", bridge],
                              capture_output=True, text=True).stdout.strip()
    return from_raw_container("tna", NEIGHBOUR_ADVERT, arrange,
                              lambda bridge: SPOOFED_MAC in entry(bridge), entry)


def bridge_tables() -> list[str]:
    return [line for line in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                            text=True, check=True).stdout.splitlines()
            if "hardrun-br-" in line]


def earlier_table() -> dict:
    """The IPv4-only table an earlier hardrun left for a bridge is replaced when a
    container joins it, so nothing stays once the bridge goes."""
    subprocess.run(["nft", "add", "table", "ip", "hardrun-br-tearly"], check=True)
    before = bridge_tables()
    box = Box("busybox sleep 60", "bridge:tearly", name="joiner")
    observed = {"before": before, "while_running": bridge_tables(), "problems": box.stop()}
    observed["leftovers"] = host_leftovers(state.state_root())
    return observed


def publish() -> dict:
    box = Box(SERVE.format(port=7000, text="published-hello") + " & "
              + UDP_SERVE.format(port=7002, text="udp-hello") + " & "
              + SERVE.format(port=7001, text="unpublished") + " & wait",
              "bridge:tpub", name="web",
              ports=[Port("7000", host_port="18080"), Port("7002", host_port="18082",
                                                           protocol="udp")])
    wait_until(lambda: listening(box, 7000) and listening(box, 7001)
               and ":7002 " in box.run("busybox netstat -lun").stdout)
    observed = {
        "published": first_answer(lambda: host_nc("127.0.0.1", 18080)),
        "udp": first_answer(lambda: host_nc("127.0.0.1", 18082, "udp")),
        "unpublished_via_host": host_nc("127.0.0.1", 7001),
        "method": box.endpoint.method,
    }
    observed["problems"] = box.stop()
    observed["after_stop"] = host_nc("127.0.0.1", 18080)
    observed["leftovers"] = host_leftovers(state.state_root())
    return observed


OWNER = """
import os, sys, time
sys.path.insert(0, {root!r})
from hardrun.spec.run import Port
from tests.limits_support import Box
box = Box("busybox sleep 300", "bridge:tkill", name="victim", ports=[Port("80", host_port="18090")])
print(box.id, box.pid, flush=True)
time.sleep(300)
"""


def killed_owner() -> dict:
    """hardrun SIGKILLed with a published, running container: a later run cleans up."""
    root = str(Path(__file__).resolve().parent.parent)
    owner = subprocess.Popen([sys.executable, "-c", OWNER.format(root=root)],
                             stdout=subprocess.PIPE, text=True)
    container_id, payload = owner.stdout.readline().split()
    before = host_leftovers(state.state_root())
    owner.kill()
    owner.wait()
    wait_until(lambda: not os.path.exists(f"/proc/{payload}"))   # PDEATHSIG
    observed = {"before": before, "stale": [s.id for s in state.stale_containers()],
                "container": container_id, "reaped": gc.reap_stale()}
    observed["leftovers"] = host_leftovers(state.state_root())
    return observed


FATES = ("normal", "payload-killed", "hardrun-killed", "hardrun-killed-during-setup")


def stress() -> dict:
    """100 `hardrun run` containers, a quarter of them on bridges with a published port:
    some end normally, some payloads are SIGKILLed halfway, some lose their hardrun
    (SIGKILL) once running or during set-up. Then `hardrun gc`, and nothing may be left."""
    rootfs = sys.argv[2]
    started = time.monotonic()
    running: list = []
    statuses: dict = {}
    for index in range(100):
        fate = FATES[index % len(FATES)]
        running.append(_start(index, fate, rootfs))
        while len(running) >= 6:
            _finish(running.pop(0), statuses)
    while running:
        _finish(running.pop(0), statuses)
    gc = subprocess.run([sys.executable, "-m", "hardrun", "gc"], capture_output=True, text=True)
    return {"gc": gc.returncode, "gc_err": gc.stderr, "statuses": statuses,
            "leftovers": host_leftovers(state.state_root()),
            "seconds": round(time.monotonic() - started, 1)}


def _start(index: int, fate: str, rootfs: str):
    network = []
    if index % 4 == 1:
        network = ["--network", f"bridge:ts{index % 3}", "--name", f"c{index}",
                   "-p", f"{20000 + index}:80"]
    command = ["true"] if fate == "normal" else ["sh", "-c", "echo ready; exec sleep 60"]
    proc = subprocess.Popen([sys.executable, "-m", "hardrun", "run", "--rootfs", rootfs, "-m", "32m",
                             "--pids-limit", "64", *network, "--", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if fate == "hardrun-killed-during-setup":
        time.sleep(0.01 * (index % 20))
        proc.kill()
    elif fate != "normal":
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        if fate == "hardrun-killed":
            proc.kill()
        else:
            _kill_payload(proc.pid)
    return proc, fate


def _kill_payload(hardrun_pid: int) -> None:
    """SIGKILL the processes in the cgroup of the container that `hardrun_pid` runs."""
    for container in state.container_states():
        if container.pid == hardrun_pid:
            for path in container.resources("cgroup"):
                if "/pids/" in path:
                    for pid in open(os.path.join(path, "cgroup.procs")).read().split():
                        os.kill(int(pid), signal.SIGKILL)
                    return
    raise AssertionError(f"no container state for hardrun {hardrun_pid}")


def _finish(item, statuses: dict) -> None:
    proc, fate = item
    proc.communicate(timeout=60)
    statuses.setdefault(fate, []).append(proc.returncode)


if __name__ == "__main__":
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps(globals()[sys.argv[1]]()))
