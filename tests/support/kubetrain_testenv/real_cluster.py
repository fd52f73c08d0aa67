"""A control plane with kube-scheduler and one real node, as one context manager."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from .control_plane import ControlPlane
from .node_assets import ensure_images, ensure_node_binaries
from .node_network import NodeNetwork
from .real_node import RealNode, new_tag, reap_orphaned_nodes


@contextmanager
def real_cluster(
    images: tuple[str, ...] = ("pause", "operator", "trainer"),
    timings: dict[str, float] | None = None,
) -> Iterator[tuple[ControlPlane, RealNode]]:
    """Build (once) the node's binaries and `images`, start a control plane whose API server
    real pods reach, kube-scheduler and one real node; stop and clean up all of it afterwards,
    also on failure. Raises AssetsError if a build fails. `timings` gets start-up durations."""
    timings = {} if timings is None else timings
    started = time.monotonic()
    binaries = ensure_node_binaries()
    built = ensure_images(*images)
    timings.setdefault(
        "real node: binaries and images (built or cached)", time.monotonic() - started
    )
    reap_orphaned_nodes()
    net = NodeNetwork.create(new_tag())
    cp = ControlPlane(advertise_address=net.host_ip)
    # Known to the control plane from now on: cp.stop() cleans it up whatever happens next.
    node = RealNode(cp, net, binaries, built)
    cp.nodes.append(node)
    try:
        t0 = time.monotonic()
        cp.start()
        cp.start_scheduler(binaries / "kube-scheduler")
        node.start()
        timings.setdefault("real node: control plane start to node Ready", time.monotonic() - t0)
        for what, seconds in node.timings.items():
            timings.setdefault(f"real node: {what}", seconds)
        yield cp, node
    finally:
        cp.stop()
