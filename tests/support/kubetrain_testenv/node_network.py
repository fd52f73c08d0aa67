"""A real test node's network: its own network namespace, joined to the machine by a veth pair.

The machine's end of the pair (`host_ip`) is where the node (kubelet, kube-proxy, CoreDNS and,
masqueraded, every pod) reaches the API server; `node_ip` is the node's InternalIP, where the
API server reaches the kubelet. Inside the namespace, the CNI bridge and kube-proxy's iptables
rules are the node's own: nothing is written to the machine's tables, and deleting the
namespace deletes the bridge and the veth pair with it.
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
# 10.250.N.0/30 per node: far from the pod (10.244/16) and service (10.0.0/24) ranges.
LINK_POOL = ipaddress.ip_network("10.250.0.0/16")


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
    def create(cls, tag: str) -> NodeNetwork:
        """Make the namespace `kt-<tag>` and its link, with a free /30 of LINK_POOL."""
        used = _used_networks()
        subnets = list(LINK_POOL.subnets(new_prefix=30))
        random.shuffle(subnets)
        link = next(s for s in subnets if not any(s.overlaps(u) for u in used))
        host_ip, node_ip = (str(h) for h in link.hosts())
        net = cls(f"kt-{tag}", f"kth{tag[-8:]}", host_ip, node_ip)
        try:
            _ip("netns", "add", net.netns)
            _ip("link", "add", net.host_link, "type", "veth", "peer", "name", "eth0",
                "netns", net.netns)  # fmt: skip
            _ip("addr", "add", f"{host_ip}/30", "dev", net.host_link)
            _ip("link", "set", net.host_link, "up")
            _ip("-n", net.netns, "addr", "add", f"{node_ip}/30", "dev", "eth0")
            _ip("-n", net.netns, "link", "set", "eth0", "up")
            _ip("-n", net.netns, "link", "set", "lo", "up")
            _ip("-n", net.netns, "route", "add", "default", "via", host_ip)
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

    def delete(self) -> None:
        """Remove the namespace (its bridge and veth pair go with it). Idempotent."""
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.host_link)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.netns)

    def exists(self) -> bool:
        return self.netns_path.exists()
