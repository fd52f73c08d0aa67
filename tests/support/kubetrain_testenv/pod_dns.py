"""Pod IPs and the hosts files that stand in for cluster DNS (pure).

Each pod gets a loopback address 127.1.x.y. Its identity for addressing is
(namespace, hostname.subdomain) when it has a subdomain, else (namespace, pod
name); the same identity always gets the same address, so a replacement pod
(a Job's retry, say) takes over its predecessor's name and address and hosts
files only ever grow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class PodName:
    """How a pod is named in DNS."""

    namespace: str
    hostname: str
    subdomain: str

    @property
    def identity(self) -> tuple[str, str]:
        return (self.namespace, f"{self.hostname}.{self.subdomain}" if self.subdomain else "")


def pod_name(pod: Mapping[str, Any]) -> PodName:
    meta, spec = pod["metadata"], pod.get("spec", {})
    return PodName(
        meta["namespace"], spec.get("hostname") or meta["name"], spec.get("subdomain") or ""
    )


def ip_key(pod: Mapping[str, Any]) -> tuple[str, str]:
    """What a pod's address is keyed by (see the module docstring)."""
    name = pod_name(pod)
    return name.identity if name.subdomain else (name.namespace, pod["metadata"]["name"])


def loopback_ip(index: int) -> str:
    """The `index`-th pod address (index >= 0), never a .0 or .255 host part."""
    high, low = divmod(index, 254)
    if high > 255:
        raise ValueError("out of pod addresses")
    return f"127.1.{high}.{low + 1}"


def fqdn(name: PodName) -> str:
    return f"{name.hostname}.{name.subdomain}.{name.namespace}.svc.{CLUSTER_DOMAIN}"


def own_line(name: PodName, ip: str) -> str:
    """The pod's entry for itself, as a kubelet writes it into the pod's /etc/hosts."""
    if name.subdomain:
        return f"{ip}\t{fqdn(name)}\t{name.hostname}\n"
    return f"{ip}\t{name.hostname}\n"


def peer_line(name: PodName, ip: str, reader_namespace: str) -> str | None:
    """Another pod's entry as cluster DNS would answer it to a pod in `reader_namespace`.

    Only pods with a subdomain have DNS names; the short `hostname.subdomain`
    form resolves (via the search path in a real cluster) in the same namespace only.
    """
    if not name.subdomain:
        return None
    base = f"{name.hostname}.{name.subdomain}.{name.namespace}"
    names = [fqdn(name), f"{base}.svc", base]
    if name.namespace == reader_namespace:
        names.append(f"{name.hostname}.{name.subdomain}")
    return f"{ip}\t{' '.join(names)}\n"


def render_hosts(base: str, own: str, peers: list[str]) -> str:
    """A pod's hosts file: the machine's, then its own entry, then its peers'."""
    head = base if base.endswith("\n") or not base else base + "\n"
    return head + "# kubetrain test node agent\n" + own + "".join(peers)
