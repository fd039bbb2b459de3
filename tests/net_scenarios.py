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
    """A container on another bridge cannot reach an unpublished port, even with the
    host forwarding; `--control` removes hardrun's bridge table to show it would."""
    subprocess.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
    target = Box(SERVE.format(port=7000, text="reached"), "bridge:tiso1", name="target")
    other = Box("busybox sleep 60", "bridge:tiso2", name="other")
    wait_until(lambda: listening(target, 7000))
    if "--control" in sys.argv:
        subprocess.run(["nft", "delete", "table", "ip", "hardrun-br-tiso1"], check=True)

    def other_to_target():
        return other.run(f"busybox nc -w 2 {target.ip} 7000 </dev/null").stdout.strip()
    # the control must show the port reachable, so it may ask again; the real check asks once
    observed = {"other_to_target": first_answer(other_to_target) if "--control" in sys.argv
                else other_to_target(),
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
                "container": container_id, "reaped": state.reap_stale()}
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
