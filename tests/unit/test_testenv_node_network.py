"""Pure parts of the real test nodes: the LAN's addresses, which images are stale."""

from __future__ import annotations

from kubetrain_testenv.node_network import Lan
from kubetrain_testenv.real_cluster import pod_subnet
from kubetrain_testenv.real_node import stale_images


def test_the_machine_holds_the_first_address_and_nodes_the_next() -> None:
    lan = Lan("ktl0", "10.250.7.0/24")
    assert lan.host_ip == "10.250.7.1"
    assert [lan.node_ip(i) for i in range(3)] == ["10.250.7.2", "10.250.7.3", "10.250.7.4"]


def test_each_node_gets_its_own_pod_subnet() -> None:
    assert [pod_subnet(i) for i in range(2)] == ["10.244.0.0/24", "10.244.1.0/24"]


def test_old_builds_and_their_id_references_are_stale() -> None:
    listing = """REF TYPE DIGEST SIZE PLATFORMS LABELS
localhost/kubetrain/trainer:new application/x m-new 6.4GiB linux/amd64 -
localhost/kubetrain/trainer:old application/x m-old 6.2GiB linux/amd64 -
sha256:id-new application/x m-new 6.4GiB linux/amd64 io.cri-containerd.image=managed
sha256:id-old application/x m-old 6.2GiB linux/amd64 io.cri-containerd.image=managed
docker.io/library/other:1 application/x m-other 1MiB linux/amd64 -
"""
    stale = stale_images(listing, {"localhost/kubetrain/trainer:new"})
    assert stale == ["localhost/kubetrain/trainer:old", "sha256:id-old"]
