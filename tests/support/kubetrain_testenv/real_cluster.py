"""A control plane with kube-scheduler and real nodes on one LAN, as one context manager."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from .control_plane import ControlPlane
from .node_assets import ensure_images, ensure_node_binaries
from .node_network import Lan, NodeNetwork
from .real_node import RealNode, new_tag, provision, reap_orphaned_nodes


def pod_subnet(index: int) -> str:
    """Node `index`'s share of the cluster's pod network (node_config.CLUSTER_CIDR)."""
    return f"10.244.{index}.0/24"


@contextmanager
def real_cluster(
    images: tuple[str, ...] = ("pause", "operator", "trainer"),
    timings: dict[str, float] | None = None,
    nodes: int = 1,
) -> Iterator[tuple[ControlPlane, list[RealNode]]]:
    """Build (once) the node's binaries and `images`, start a control plane whose API server
    real pods reach, kube-scheduler and `nodes` real nodes (node-1, node-2, ...; CoreDNS on
    the first) whose pods reach each other's across the LAN; stop and clean up all of it
    afterwards, also on failure. Raises AssetsError if a build fails. `timings` gets
    start-up durations."""
    timings = {} if timings is None else timings
    started = time.monotonic()
    binaries = ensure_node_binaries()
    built = ensure_images(*images)
    timings.setdefault(
        "real node: binaries and images (built or cached)", time.monotonic() - started
    )
    reap_orphaned_nodes()
    lan = Lan.create(new_tag())
    cp = ControlPlane(advertise_address=lan.host_ip)
    members: list[RealNode] = []
    try:
        for i in range(nodes):
            net = NodeNetwork.create(new_tag(), lan, i)
            node = RealNode(
                cp, net, binaries, built, name=f"node-{i + 1}", pod_subnet=pod_subnet(i),
                dns=i == 0, lan=lan if i == 0 else None,
            )  # fmt: skip
            # Known to the control plane from now on: cp.stop() cleans it up whatever happens.
            cp.nodes.append(node)
            members.append(node)
    except BaseException:
        cp.stop()
        if not members:
            lan.delete()
        raise
    try:
        for node in members:
            for other in members:
                if other is not node:
                    node.net.add_pod_route(other.pod_subnet, other.net.node_ip)
        t0 = time.monotonic()
        cp.start()
        cp.start_scheduler(binaries / "kube-scheduler")
        provision(members)  # the images into the machine's store; each node runs on a clone
        for node in members:
            node.start()
        timings.setdefault("real node: control plane start to node Ready", time.monotonic() - t0)
        for node in members:
            for what, seconds in node.timings.items():
                timings.setdefault(f"real node: {node.name}: {what}", seconds)
        yield cp, members
    finally:
        cp.stop()
