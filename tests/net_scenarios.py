"""Network scenarios, run by test_network.py inside a network namespace of its own
(`unshare --net`) that plays the host: every packet stays in namespaces made here.

Each scenario prints one JSON object of observations; the tests assert on them.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hardrun.runtime import state  # noqa: E402
from hardrun.spec.run import Port  # noqa: E402
from tests.limits_support import Box, host_leftovers, wait_until  # noqa: E402

SERVE = "busybox nc -ll -p {port} -e busybox echo {text}"


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
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2)
        client.sendto(b"ping", (address, port))
        try:
            return client.recv(99).decode()
        except OSError:
            return ""


def listening(box: Box, port: int) -> bool:
    return f":{port} " in box.run("busybox netstat -ltn").stdout


def names() -> dict:
    alpha = Box(SERVE.format(port=7000, text="hi-from-alpha"), "bridge:tnames", name="alpha")
    beta = Box("busybox sleep 60", "bridge:tnames", name="beta")
    wait_until(lambda: listening(alpha, 7000))
    observed = {
        "beta_to_alpha": beta.run("busybox nc -w 2 alpha 7000 </dev/null").stdout.strip(),
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
    """A container on another bridge cannot reach an unpublished port, even with the
    host forwarding; `--control` removes hardrun's bridge table to show it would."""
    subprocess.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
    target = Box(SERVE.format(port=7000, text="reached"), "bridge:tiso1", name="target")
    other = Box("busybox sleep 60", "bridge:tiso2", name="other")
    wait_until(lambda: listening(target, 7000))
    if "--control" in sys.argv:
        subprocess.run(["nft", "delete", "table", "ip", "hardrun-br-tiso1"], check=True)
    observed = {"other_to_target": other.run(f"busybox nc -w 2 {target.ip} 7000 </dev/null"
                                             ).stdout.strip(),
                "target_to_host_loopback": target.run(
                    "busybox nc -w 1 127.0.0.1 7999 </dev/null; echo rc=$?").stdout.strip()}
    observed["problems"] = target.stop() + other.stop()
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
        "published": host_nc("127.0.0.1", 18080),
        "udp": host_nc("127.0.0.1", 18082, "udp"),
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
                "container": container_id, "problems": state.reap_stale()}
    observed["leftovers"] = host_leftovers(state.state_root())
    return observed


FATES = ("normal", "payload-killed", "owner-killed", "owner-killed-during-setup")


def stress() -> dict:
    """100 containers with limits on bridges (every fourth publishes a port): some end
    normally, some payloads are SIGKILLed halfway, some lose their hardrun (SIGKILL)
    after or during setup. Then one reaper pass, and nothing may be left."""
    from hardrun.runtime.cgroups import Limits
    started = time.monotonic()
    owners = []
    for index in range(100):
        fate = FATES[index % len(FATES)]
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                ports = [Port("80", host_port=str(20000 + index))] if index % 4 == 1 else []
                command = "busybox true" if fate == "normal" else "busybox sleep 30"
                box = Box(command, f"bridge:ts{index % 3}", name=f"c{index}", ports=ports,
                          limits=Limits(memory=32 << 20, pids=64))
                os.write(write_end, f"{box.pid}\n".encode())
                box.wait()
                os._exit(1 if box.stop() else 0)
            finally:
                os._exit(2)
        os.close(write_end)
        if fate == "owner-killed-during-setup":
            time.sleep(0.002 * (index % 13))
            os.kill(pid, signal.SIGKILL)
        else:
            payload = int(os.read(read_end, 64).decode().split()[0])
            if fate == "payload-killed":
                os.kill(payload, signal.SIGKILL)
            elif fate == "owner-killed":
                os.kill(pid, signal.SIGKILL)
        os.close(read_end)
        owners.append((pid, fate))
    statuses = {}
    for pid, fate in owners:
        _, status = os.waitpid(pid, 0)
        statuses.setdefault(fate, []).append(os.waitstatus_to_exitcode(status))
    problems = state.reap_stale()
    return {"problems": problems, "statuses": statuses,
            "leftovers": host_leftovers(state.state_root()),
            "seconds": round(time.monotonic() - started, 1)}


if __name__ == "__main__":
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps(globals()[sys.argv[1]]()))
