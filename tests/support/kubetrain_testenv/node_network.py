"""Real test nodes' network: one bridge on the machine per cluster (the nodes' LAN), and per node
a network namespace joined to that bridge by a veth pair.

The bridge's address (`host_ip`) is where every node (kubelet, kube-proxy, CoreDNS and,
masqueraded, every pod) reaches the API server; `node_ip` is a node's InternalIP on the LAN,
where the API server reaches its kubelet and where the other nodes send the traffic of its pod
subnet (`add_pod_route`): pods talk to pods on other nodes across the bridge, unmasqueraded, as
on a real cluster. The machine only bridges (layer 2): it needs no IP forwarding. Inside a
namespace, the CNI bridge and kube-proxy's iptables rules are the node's own: nothing is written
to the machine's tables, and deleting the namespace deletes its veth pair with it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
# 10.250.N.0/24 per cluster: far from the pod (10.244/16) and service (10.0.0/24) ranges.
LAN_POOL = ipaddress.ip_network("10.250.0.0/16")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-4", "-j", "addr"], check=True, capture_output=True, text=True
    ).stdout
    return [
        ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
        for link in json.loads(out)
        for a in link.get("addr_info", [])
    ]


@dataclass(frozen=True)
class Lan:
    """The bridge a cluster's nodes share, and its subnet (the machine holds the first address)."""

    bridge: str
    subnet: str

    @property
    def host_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    def node_ip(self, index: int) -> str:
        """The address of node `index` (0-based)."""
        return str(list(ipaddress.ip_network(self.subnet).hosts())[index + 1])

    @classmethod
    def create(cls, tag: str) -> Lan:
        """Make the bridge `ktl<tag>` on a free /24 of LAN_POOL."""
        used = _used_networks()
        subnets = list(LAN_POOL.subnets(new_prefix=24))
        random.shuffle(subnets)
        subnet = next(s for s in subnets if not any(s.overlaps(u) for u in used))
        lan = cls(f"ktl{tag[-8:]}", str(subnet))
        try:
            _ip("link", "add", lan.bridge, "type", "bridge")
            _ip("addr", "add", f"{lan.host_ip}/{subnet.prefixlen}", "dev", lan.bridge)
            _ip("link", "set", lan.bridge, "up")
        except BaseException:
            lan.delete()
            raise
        return lan

    def delete(self) -> None:
        """Remove the bridge. Idempotent."""
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)

    def exists(self) -> bool:
        return Path("/sys/class/net", self.bridge).exists()


@dataclass(frozen=True)
class NodeNetwork:
    """Names and addresses of one node's namespace and link."""

    netns: str
    host_link: str
    host_ip: str
    node_ip: str

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    def nsenter(self) -> list[str]:
        """argv prefix running a command in the node's network namespace (and nothing else:
        `ip netns exec` would also remount /sys, hiding the cgroup mounts under it)."""
        return ["nsenter", f"--net={self.netns_path}", "--"]

    @classmethod
    def create(cls, tag: str, lan: Lan, index: int = 0) -> NodeNetwork:
        """Make the namespace `kt-<tag>` and its link to `lan`, as node `index` of it."""
        prefix = ipaddress.ip_network(lan.subnet).prefixlen
        net = cls(f"kt-{tag}", f"kth{tag[-8:]}", lan.host_ip, lan.node_ip(index))
        try:
            _ip("netns", "add", net.netns)
            _ip("link", "add", net.host_link, "type", "veth", "peer", "name", "eth0",
                "netns", net.netns)  # fmt: skip
            _ip("link", "set", net.host_link, "master", lan.bridge)
            _ip("link", "set", net.host_link, "up")
            _ip("-n", net.netns, "addr", "add", f"{net.node_ip}/{prefix}", "dev", "eth0")
            _ip("-n", net.netns, "link", "set", "eth0", "up")
            _ip("-n", net.netns, "link", "set", "lo", "up")
            _ip("-n", net.netns, "route", "add", "default", "via", lan.host_ip)
            # Pods' traffic is routed through the node, and bridged traffic must meet
            # kube-proxy's iptables rules (per namespace on this kernel).
            for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
                subprocess.run(
                    [*net.nsenter(), "sysctl", "-qw", f"{key}=1"], check=True, capture_output=True
                )
        except BaseException:
            net.delete()
            raise
        return net

    def add_pod_route(self, pod_subnet: str, via: str) -> None:
        """Send traffic for another node's pods (`pod_subnet`) to that node (`via`)."""
        _ip("-n", self.netns, "route", "add", pod_subnet, "via", via)

    def delete(self) -> None:
        """Remove the namespace (its bridge and veth pair go with it). Idempotent."""
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.host_link)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.netns)

    def exists(self) -> bool:
        return self.netns_path.exists()
