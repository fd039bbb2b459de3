"""Container networks: `none`, `host`, and `bridge[:NAME]` with published ports.

`none` (the default: a new network namespace with only `lo`) and `host` (no network
namespace) are the runtime's business; `network_choice` tells it which. For a bridge
network the parent calls, in this order:

    endpoint = network.prepare(spec, container_id, state)   # before clone: IPAM, bridge,
                                                            # hosts file, published ports
    endpoint.hosts_file      # the child bind-mounts it read-only on /etc/hosts
    endpoint.attach(child_pid)                               # veth into the child's netns
    ... wait for the child ...
    endpoint.release()                                       # everything undone

A bridge `hr-NAME` (default `hr-hardrun0`) carries a private /24 (the default bridge
10.89.0.0/24, other bridges the next free /24 of 10.89.0.0/16; `HARDRUN_SUBNET` sets
it for a bridge being created). Its members find each other by name through their
/etc/hosts, rewritten in place whenever a member joins or leaves. Per bridge, an
nftables `inet` table `hardrun-br-NAME` drops traffic from the bridge to the host itself
over IPv4 and IPv6 (all but replies to what the host started, and anything for
127.0.0.0/8, which route_localnet would otherwise let in) and new forwarded connections
into the bridge that were not published. Without a working nft no bridge is set up
(NetworkError: exit 125). hardrun assigns no IPv6: the bridge and the host's veth ends
have it turned off, router adverts and redirects ignored.

Published ports (`-p`, `-P`) bind on 127.0.0.1 unless an address is given. They are
DNATed by a per-container nftables table `hardrun-<id>` (the bridge gets route_localnet
so 127.0.0.1 can be DNATed, plus masquerading so replies come back), or, with
`HARDRUN_PUBLISH=proxy`, relayed by a forked userspace proxy that dies with hardrun.
pyroute2 is imported only here, and only for bridge networks: it costs about 0.4 s.
"""
from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HardrunError, UsageError
from . import state as state_module
from . import syscalls as k

DEFAULT_BRIDGE = "hardrun0"
DEFAULT_SUBNET = "10.89.0.0/24"
SUBNET_POOL = "10.89.0.0/16"
BRIDGE_PREFIX = "hr-"
DEFAULT_PUBLISH_ADDRESS = "127.0.0.1"   # safer than Docker's every-interface default
BRIDGE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,12}")


class NetworkError(HardrunError):
    """A network could not be set up (hardrun's setup failure: exit 125)."""

    exit_code = 125


# ---------------------------------------------------------------------------- choice

@dataclass(frozen=True)
class NetworkChoice:
    mode: str                          # "none", "host" or "bridge"
    bridge: str | None = None          # bridge network name (without the hr- prefix)

    @property
    def needs_netns(self) -> bool:
        return self.mode != "host"


def network_choice(value: str | None) -> NetworkChoice:
    """`--network` as the runtime needs it (cheap: imports nothing)."""
    if value in (None, "", "none"):
        return NetworkChoice("none")
    if value == "host":
        return NetworkChoice("host")
    mode, _, name = value.partition(":")
    if mode in ("bridge", "default"):
        name = name or DEFAULT_BRIDGE
        if not BRIDGE_NAME.fullmatch(name):
            raise UsageError(f"--network bridge:{name}: a bridge name is 1 to 12 letters, "
                             "digits, '.', '_' or '-'")
        return NetworkChoice("bridge", name)
    raise UsageError(f"--network {value}: unsupported",
                     hint="use none, host, bridge or bridge:NAME")


# ---------------------------------------------------------------------------- ports

@dataclass(frozen=True)
class Publish:
    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.protocol}"


def resolve_ports(spec) -> list[Publish]:
    """Expand `spec.ports` (ranges, default address, ports chosen by the host)."""
    published = []
    for port in _requested_ports(spec):
        protocol = (port.protocol or "tcp").lower()
        if protocol not in ("tcp", "udp"):
            raise UsageError(f"--publish: protocol {port.protocol!r} is not tcp or udp")
        host_ip = port.host_ip or DEFAULT_PUBLISH_ADDRESS
        _check_address(host_ip)
        container_ports = _port_range(port.container_port)
        if port.host_port:
            host_ports = _port_range(port.host_port)
            if len(host_ports) != len(container_ports):
                raise UsageError(f"--publish {port.host_port}:{port.container_port}: the host "
                                 "and container ranges differ in length")
        else:
            host_ports = [_free_port(host_ip, protocol) for _ in container_ports]
        published += [Publish(host_ip, host, inner, protocol)
                      for host, inner in zip(host_ports, container_ports)]
    return published


def _requested_ports(spec) -> list:
    """`-p` ports, then (with -P) every --expose port not published already."""
    from ..spec.run import Port
    ports = list(spec.ports)
    if spec.publish_all:
        taken = {(str(port.container_port), (port.protocol or "tcp").lower()) for port in ports}
        for exposed in getattr(spec, "exposed_ports", ()):
            number, _, protocol = exposed.partition("/")
            if (number, protocol or "tcp") not in taken:
                ports.append(Port(number, None, None, protocol or "tcp"))
    return ports


def _port_range(text: str) -> list[int]:
    first, _, last = str(text).partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise UsageError(f"--publish: {text!r} is not a port or port range") from None
    if not 1 <= start <= end <= 65535:
        raise UsageError(f"--publish: {text!r} is not a port range within 1-65535")
    return list(range(start, end + 1))


def _check_address(address: str) -> None:
    try:
        if ipaddress.ip_address(address).version != 4:
            raise UsageError(f"--publish: {address}: only IPv4 host addresses are supported")
    except ValueError:
        raise UsageError(f"--publish: {address!r} is not an IP address") from None


def _free_port(host_ip: str, protocol: str) -> int:
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((host_ip, 0))
        return probe.getsockname()[1]


def _check_bindable(publish: Publish) -> None:
    """The address belongs to this host and the port is free (fail before anything runs)."""
    kind = socket.SOCK_STREAM if publish.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((publish.host_ip, publish.host_port))
        except OSError as error:
            raise NetworkError(f"--publish {publish}: cannot bind {publish.host_ip}:"
                               f"{publish.host_port}: {error.strerror}") from None


# ---------------------------------------------------------------------------- IPAM

def net_root() -> Path:
    return Path(state_module.state_root()) / "net"


@contextmanager
def _flock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class BridgeStore:
    """`<state>/net/<bridge>/network.json`: subnet and members, changed under its lock."""

    def __init__(self, bridge: str):
        self.bridge = bridge
        self.directory = net_root() / bridge
        self.file = self.directory / "network.json"

    @contextmanager
    def locked(self):
        with _flock(net_root() / f".{self.bridge}.lock"):
            yield self

    def load(self) -> dict | None:
        try:
            return json.loads(self.file.read_text())
        except FileNotFoundError:
            return None

    def save(self, data: dict) -> None:
        from ..userfiles import replace_private
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_private(str(self.directory), self.file.name, json.dumps(data, indent=1).encode())

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        try:
            (net_root() / f".{self.bridge}.lock").unlink()
        except FileNotFoundError:
            pass


def _choose_subnet(bridge: str) -> ipaddress.IPv4Network:
    """HARDRUN_SUBNET, else 10.89.0.0/24 for the default bridge, else a free /24."""
    wanted = os.environ.get("HARDRUN_SUBNET")
    if wanted:
        try:
            subnet = ipaddress.IPv4Network(wanted)
        except ValueError:
            raise UsageError(f"HARDRUN_SUBNET={wanted}: not an IPv4 network") from None
        if not subnet.is_private or subnet.num_addresses < 4:
            raise UsageError(f"HARDRUN_SUBNET={wanted}: needs a private network of at least 4 "
                             "addresses")
        return subnet
    taken = set()
    for store_dir in net_root().glob("*/network.json"):
        try:
            taken.add(ipaddress.IPv4Network(json.loads(store_dir.read_text())["subnet"]))
        except (OSError, ValueError, KeyError):
            continue
    candidates = [ipaddress.IPv4Network(DEFAULT_SUBNET)] if bridge == DEFAULT_BRIDGE else []
    candidates += list(ipaddress.IPv4Network(SUBNET_POOL).subnets(new_prefix=24))[1:]
    for subnet in candidates:
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise NetworkError(f"no free /24 left in {SUBNET_POOL} for bridge {bridge}")


def _live_member(member_id: str) -> bool:
    """A member stays until its container's state is undone (by its owner or a reaper)."""
    return os.path.isdir(os.path.join(state_module.state_root(), member_id))


def _allocate(data: dict) -> str:
    subnet = ipaddress.IPv4Network(data["subnet"])
    used = {data["gateway"]} | {member["ip"] for member in data["members"].values()}
    for host in subnet.hosts():
        if str(host) not in used:
            return str(host)
    raise NetworkError(f"bridge {data['bridge']}: subnet {subnet} is full")


# ---------------------------------------------------------------------------- hosts

def hosts_text(own_ip: str, own_names: list[str], members: dict) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{own_ip}\t{' '.join(own_names)}"]
    for member in sorted(members.values(), key=lambda m: m["ip"]):
        if member["ip"] != own_ip and member.get("names"):
            lines.append(f"{member['ip']}\t{' '.join(member['names'])}")
    return "\n".join(lines) + "\n"


def _rewrite_in_place(path: Path, text: str) -> None:
    """Write without replacing the inode: the file is bind-mounted into a container."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        data = text.encode()
        os.write(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _refresh_hosts_files(members: dict) -> None:
    for member in members.values():
        if member.get("hosts"):
            _rewrite_in_place(Path(member["hosts"]), hosts_text(member["ip"], member["names"],
                                                                members))


# ---------------------------------------------------------------------------- netlink

def _iproute():
    try:
        from pyroute2 import IPRoute
    except ImportError:
        raise NetworkError("bridge networks need pyroute2",
                           hint="pip install 'hardrun[runtime]'") from None
    return IPRoute()


def in_netns(pid: int, function):
    """Run `function()` in the network namespace of `pid` (on a thread that setns'd)."""
    outcome: dict = {}

    def run():
        own = target = -1
        try:
            # opened inside the try: a failure (the child already gone) reaches the caller
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            k.setns(target, k.CLONE_NEWNET)
            try:
                outcome["value"] = function()
            finally:
                try:
                    k.setns(own, k.CLONE_NEWNET)
                except OSError:
                    os._exit(125)   # never leave a thread of hardrun in the container's netns
        except BaseException as error:      # handed to the calling thread
            outcome["error"] = error
        finally:
            for fd in (own, target):
                if fd >= 0:
                    os.close(fd)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/net/{path}", "w") as handle:
        handle.write(value)


def _no_host_ipv6(ifname: str) -> None:
    """No IPv6 on the host's side of `ifname`: hardrun assigns none, and a container must
    not configure the host's (a router advert giving it an address and a default route)."""
    if not os.path.isdir("/proc/sys/net/ipv6"):     # a kernel without IPv6: nothing to take
        return
    # autoconfiguration off first, so it stays off should IPv6 be turned back on
    for setting, value in (("accept_ra", "0"), ("accept_redirects", "0"),
                           ("disable_ipv6", "1")):
        try:
            _sysctl(f"ipv6/conf/{ifname}/{setting}", value)
        except OSError as error:
            raise NetworkError(f"cannot set {setting}={value} on {ifname}: "
                               f"{error.strerror}") from None


def _ensure_bridge(ipr, name: str, gateway: str, prefix: int) -> None:
    ifname = BRIDGE_PREFIX + name
    if not ipr.link_lookup(ifname=ifname):
        ipr.link("add", ifname=ifname, kind="bridge")
    _no_host_ipv6(ifname)           # before the link is up (and on a bridge made earlier)
    index = ipr.link_lookup(ifname=ifname)[0]
    addresses = [dict(a["attrs"]).get("IFA_ADDRESS") for a in ipr.get_addr(index=index)]
    if gateway not in addresses:
        ipr.addr("add", index=index, address=gateway, prefixlen=prefix)
    ipr.link("set", index=index, state="up")


def _delete_link(ifname: str) -> None:
    with _iproute() as ipr:
        indexes = ipr.link_lookup(ifname=ifname)
        if indexes:
            try:
                ipr.link("del", index=indexes[0])
            except Exception as error:     # gone meanwhile (its netns died): nothing to do
                if getattr(error, "code", None) not in (errno.ENODEV, errno.ENOENT):
                    raise


# ---------------------------------------------------------------------------- nftables

def _nft(script: str) -> None:
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if result.returncode != 0:
        raise NetworkError(f"nft failed: {_first_line(result.stderr)}")


def _first_line(message: str) -> str:
    return (message.strip().splitlines() or ["(no message)"])[0]


_NFT_PROBLEM: list = []


def nft_problem() -> str | None:
    """Why nft cannot be used here, or None when it is installed and the kernel answers
    it (probed once per process)."""
    if not _NFT_PROBLEM:
        _NFT_PROBLEM.append(_probe_nft())
    return _NFT_PROBLEM[0]


def _probe_nft() -> str | None:
    if shutil.which("nft") is None:
        return "the nft command is not in PATH"
    try:
        result = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"nft list tables failed: {error}"
    if result.returncode != 0:
        return f"nft list tables failed: {_first_line(result.stderr)}"
    return None


def _require_nft(bridge: str) -> None:
    """A bridge is isolated by nftables alone: without nft it is not set up (fail closed)."""
    problem = nft_problem()
    if problem:
        raise NetworkError(f"--network bridge:{bridge} needs nftables for the bridge's "
                           f"isolation rules: {problem}",
                           hint="install nftables; the kernel needs nf_tables")


def publish_method() -> str:
    forced = os.environ.get("HARDRUN_PUBLISH")
    if forced in ("nft", "proxy"):
        return forced
    if forced:
        raise UsageError(f"HARDRUN_PUBLISH={forced}: expected nft or proxy")
    return "nft"        # a bridge exists only where nft works (_require_nft)


def bridge_table(name: str) -> str:
    return f"hardrun-br-{name}"


def container_table(container_id: str) -> str:
    return f"hardrun-{container_id}"


def _replacing(table: str, family: str = "ip") -> str:
    """nft lines that (re)declare `table` from scratch, in the same atomic transaction."""
    return f"table {family} {table} {{}}\ndelete table {family} {table}\n"


# inet: the bridge carries IPv6 too (every port has a link-local address), so the input
# and forward rules hold for both families (the kernel itself drops ::1 from outside lo)
BRIDGE_FAMILY = "inet"


def _bridge_rules(name: str) -> str:
    # input takes only replies to what the host started: not new connections, and not the
    # untracked (conntrack leaves ICMPv6 router adverts, redirects and neighbour discovery
    # so) or invalid packets that would otherwise reach the host's stack unchecked
    # with br_netfilter, traffic between two ports of the bridge also passes the forward
    # hook (in and out on the bridge itself): only traffic coming from elsewhere is cut
    ifname = BRIDGE_PREFIX + name
    table = bridge_table(name)
    # the `ip` table of an earlier hardrun goes too: the last member out deletes `inet` only
    replacing = _replacing(table, "ip") + _replacing(table, BRIDGE_FAMILY)
    return replacing + f"""table {BRIDGE_FAMILY} {table} {{
  chain prerouting {{ type filter hook prerouting priority raw;
    iifname "{ifname}" ip daddr 127.0.0.0/8 drop; }}
  chain input {{ type filter hook input priority filter;
    iifname "{ifname}" ct state != {{ established, related }} drop; }}
  chain forward {{ type filter hook forward priority filter;
    iifname != "{ifname}" oifname "{ifname}" ct state new ct status & dnat == 0 drop; }}
}}
"""


def _container_rules(container_id: str, bridge: str, ip: str, publishes) -> str:
    dnat = []
    for publish in publishes:
        match = ("fib daddr type local" if publish.host_ip == "0.0.0.0"
                 else f"ip daddr {publish.host_ip}")
        dnat.append(f"{match} {publish.protocol} dport {publish.host_port} "
                    f"dnat to {ip}:{publish.container_port};")
    rules = "\n    ".join(dnat)
    return _replacing(container_table(container_id)) + f"""table ip {container_table(container_id)} {{
  chain prerouting {{ type nat hook prerouting priority dstnat;
    {rules} }}
  chain output {{ type nat hook output priority -100;
    {rules} }}
  chain postrouting {{ type nat hook postrouting priority srcnat;
    ip saddr 127.0.0.0/8 ip daddr {ip} oifname "{BRIDGE_PREFIX}{bridge}" masquerade; }}
}}
"""


def _delete_table(name: str, family: str = "ip") -> None:
    result = subprocess.run(["nft", "delete", "table", family, name], capture_output=True,
                            text=True)
    if result.returncode != 0 and "No such file or directory" not in result.stderr:
        raise NetworkError(f"nft delete table {family} {name}: {result.stderr.strip()}")


# ---------------------------------------------------------------------------- proxy

def start_proxy(publish: Publish, target_ip: str) -> int:
    """Fork a relay for one published port; it dies with this process (PDEATHSIG)."""
    kind = socket.SOCK_STREAM if publish.protocol == "tcp" else socket.SOCK_DGRAM
    listener = socket.socket(socket.AF_INET, kind)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((publish.host_ip, publish.host_port))
    except OSError as error:
        listener.close()
        raise NetworkError(f"--publish {publish}: cannot bind: {error.strerror}") from None
    if kind == socket.SOCK_STREAM:
        listener.listen(64)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            k.set_parent_death_signal(signal.SIGKILL)
            if os.getppid() != parent:       # hardrun died before prctl took effect
                os._exit(0)
            os.closerange(3, listener.fileno())
            os.closerange(listener.fileno() + 1, 65536)
            target = (target_ip, publish.container_port)
            (_relay_tcp if kind == socket.SOCK_STREAM else _relay_udp)(listener, target)
        finally:
            os._exit(0)
    listener.close()
    return pid


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                end.shutdown(how)
            except OSError:
                pass


def _relay_tcp(listener: socket.socket, target) -> None:
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _relay_udp(listener: socket.socket, target) -> None:
    upstreams: dict = {}

    def answer(upstream, client):
        while True:
            try:
                listener.sendto(upstream.recv(65536), client)
            except OSError:
                return

    while True:
        data, client = listener.recvfrom(65536)
        upstream = upstreams.get(client)
        if upstream is None:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            upstream.connect(target)
            upstreams[client] = upstream
            threading.Thread(target=answer, args=(upstream, client), daemon=True).start()
        upstream.send(data)


def _stop_process(pid: int | None) -> None:
    """Kill one of hardrun's own relays (`ContainerState.recorded_child` vouched for it)."""
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:        # not ours (the gc path): the kernel reaps it elsewhere
        pass


# ---------------------------------------------------------------------------- endpoint

def veth_name(container_id: str) -> str:
    return f"hrv{container_id[:12]}"


@dataclass
class Endpoint:
    """One container's place on a bridge."""

    container_id: str
    bridge: str
    ip: str
    gateway: str
    prefix: int
    hosts_file: Path
    state: state_module.ContainerState   # where what is made for the container is recorded
    publishes: list = field(default_factory=list)
    method: str | None = None          # "nft" or "proxy" when something is published

    def attach(self, pid: int) -> None:
        """Give the (paused) child `pid` its eth0 on the bridge, address and route."""
        try:
            self._attach(pid)
        except HardrunError:
            raise
        except Exception as error:          # netlink errors: one line, never a traceback
            raise NetworkError(f"cannot connect the container to bridge "
                               f"{BRIDGE_PREFIX}{self.bridge}: {error}") from None

    def _attach(self, pid: int) -> None:
        host_side = veth_name(self.container_id)
        self.state.record("veth", host_side)
        with _iproute() as ipr:
            ipr.link("add", ifname=host_side, kind="veth",
                     peer={"ifname": "eth0", "net_ns_pid": pid})
            index = ipr.link_lookup(ifname=host_side)[0]
            _no_host_ipv6(host_side)        # before it is up
            bridge = ipr.link_lookup(ifname=BRIDGE_PREFIX + self.bridge)[0]
            ipr.link("set", index=index, master=bridge, state="up")
        in_netns(pid, self._configure_inside)

    def _configure_inside(self) -> None:
        with _iproute() as ipr:
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=eth0, address=self.ip, prefixlen=self.prefix)
            ipr.link("set", index=eth0, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway=self.gateway)

    def release(self) -> list[str]:
        return undo(self.state)


def prepare(spec, container_id: str, container_state, hostname: str | None = None
            ) -> Endpoint | None:
    """Set up what a bridge network needs before the child exists (None: not a bridge).
    The container is known on the bridge by its --name, its host name and its short id."""
    choice = network_choice(spec.network)
    if choice.mode != "bridge":
        if spec.ports or spec.publish_all:
            raise UsageError(f"--publish needs a bridge network, not --network {choice.mode}",
                             hint="add --network bridge")
        return None
    publishes = resolve_ports(spec)
    bridge = choice.bridge
    assert bridge is not None, "network_choice names the bridge of every bridge choice"
    _require_nft(bridge)     # before anything of the bridge exists
    names = [n for n in dict.fromkeys([spec.name, hostname or spec.hostname, container_id[:12]]) if n]
    endpoint = _join_bridge(bridge, container_id, names, container_state)
    try:
        if publishes:
            _publish(endpoint, publishes)
    except BaseException:
        undo(container_state)
        raise
    return endpoint


def _join_bridge(bridge: str, container_id: str, names: list[str], container_state) -> Endpoint:
    store = BridgeStore(bridge)
    hosts_file = Path(container_state.file("hosts"))
    with store.locked():
        data = store.load()
        if data is None:
            subnet = _choose_subnet(bridge)
            data = {"bridge": bridge, "subnet": str(subnet),
                    "gateway": str(next(subnet.hosts())), "members": {}}
        data["members"] = {key: member for key, member in data["members"].items()
                           if _live_member(key)}
        if spec_name_taken(data, names[0], container_id):
            raise UsageError(f"--name {names[0]}: a container of that name is already on "
                             f"bridge {bridge}")
        ip = _allocate(data)
        container_state.record("address", f"{bridge} {ip}")
        data["members"][container_id] = {"ip": ip, "names": names, "hosts": str(hosts_file)}
        store.save(data)
        subnet = ipaddress.IPv4Network(data["subnet"])
        hosts_file.write_text(hosts_text(ip, names, data["members"]))
        try:
            with _iproute() as ipr:
                _ensure_bridge(ipr, bridge, data["gateway"], subnet.prefixlen)
            _nft(_bridge_rules(bridge))     # replaces the table: never duplicated rules
        except BaseException:
            _leave_bridge(store, container_id, locked=True)
            container_state.forget("address", f"{bridge} {ip}")
            raise
        _refresh_hosts_files(data["members"])
    return Endpoint(container_id, bridge, ip, data["gateway"], subnet.prefixlen, hosts_file,
                    state=container_state)


def spec_name_taken(data: dict, name: str, container_id: str) -> bool:
    return any(name in member.get("names", ())[:1] for key, member in data["members"].items()
               if key != container_id)


def _publish(endpoint: Endpoint, publishes: list[Publish]) -> None:
    method = publish_method()
    endpoint.method = method
    endpoint.publishes = publishes
    if method == "nft":
        for publish in publishes:
            _check_bindable(publish)
        table = container_table(endpoint.container_id)
        endpoint.state.record("nft", table)
        _sysctl(f"ipv4/conf/{BRIDGE_PREFIX}{endpoint.bridge}/route_localnet", "1")
        _nft(_container_rules(endpoint.container_id, endpoint.bridge, endpoint.ip, publishes))
        return
    for publish in publishes:
        pid = start_proxy(publish, endpoint.ip)
        endpoint.state.record("proxy", f"{pid} {state_module.process_start_time(pid)}")


def _leave_bridge(store: BridgeStore, container_id: str, locked: bool = False) -> None:
    """Drop the member; the last one out removes the bridge, its table and its store."""
    def leave():
        data = store.load()
        if data is None:
            return
        data["members"].pop(container_id, None)
        data["members"] = {key: member for key, member in data["members"].items()
                           if _live_member(key)}
        if data["members"]:
            store.save(data)
            _refresh_hosts_files(data["members"])
            return
        _delete_link(BRIDGE_PREFIX + store.bridge)
        _delete_table(bridge_table(store.bridge), BRIDGE_FAMILY)
        store.remove()

    if locked:
        leave()
    else:
        with store.locked():
            leave()


def _recorded_by(container_id: str, kind: str, item: str) -> bool:
    """Whether a record names what this container could have made (its own link and table,
    a valid bridge): a record is never a way to delete someone else's interface or files."""
    if kind == "veth":
        return item == veth_name(container_id)
    if kind == "nft":
        return item == container_table(container_id)
    if kind == "address":           # the bridge names a directory under the state root
        bridge = item.split(" ")[0]
        return bool(BRIDGE_NAME.fullmatch(bridge)) and bridge not in (".", "..")
    return True


def undo(container_state) -> list[str]:
    """Remove every network resource `container_state` records; problems as lines."""
    problems = []
    steps = [("proxy", lambda item: _stop_process(container_state.recorded_child(item))),
             ("nft", _delete_table),
             ("veth", _delete_link),
             ("address", lambda item: _leave_bridge(BridgeStore(item.split()[0]),
                                                    container_state.id))]
    for kind, remove in steps:
        for item in container_state.resources(kind):
            if not _recorded_by(container_state.id, kind, item):
                problems.append(f"{kind} {item} is not container {container_state.id}'s: left alone")
                continue
            try:
                remove(item)
            except Exception as error:     # keep going: undo as much as possible
                problems.append(f"cannot remove {kind} {item}: {error}")
    return problems
