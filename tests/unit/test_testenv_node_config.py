"""The real test node's configuration files (pure renderers; the node itself is exercised by
tests/e2e)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml

from kubetrain_testenv.node_config import (
    CLUSTER_DNS_IP,
    NodePaths,
    cni_conflist,
    containerd_config,
    corefile,
    kubelet_config,
)

PATHS = NodePaths(Path("/tmp/n1"))


def test_containerd_config_is_private_and_restricts_oom_score_adj() -> None:
    config = tomllib.loads(containerd_config(PATHS, "localhost/kubetrain/pause:1"))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # every sandbox fails without it here
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "localhost/kubetrain/pause:1"
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/tmp/n1/cni/net.d"}
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"] == {"SystemdCgroup": False, "Root": "/tmp/n1/containerd/runc"}
    assert config["grpc"]["address"] == str(PATHS.containerd_socket)
    for key in ("root", "state"):
        assert config[key].startswith("/tmp/n1/")


def test_containerd_config_can_share_a_root() -> None:
    config = tomllib.loads(containerd_config(PATHS, "p", Path("/cache/root")))
    assert config["root"] == "/cache/root" and config["state"].startswith("/tmp/n1/")


def test_cni_network_leaves_masquerading_to_the_node_and_keeps_ipam_state_private() -> None:
    conf = json.loads(cni_conflist("ktbr0", "10.244.0.0/24", Path("/tmp/n1/ipam")))
    bridge = conf["plugins"][0]
    assert (bridge["type"], bridge["bridge"], bridge["ipMasq"]) == ("bridge", "ktbr0", False)
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.0.0/24"}]]
    assert bridge["ipam"]["dataDir"] == "/tmp/n1/ipam"


def test_kubelet_config_fits_these_machines() -> None:
    config = yaml.safe_load(
        kubelet_config(PATHS, Path("/ca.crt"), "10.250.0.2", "/kubetrain-x", Path("/r"))
    )
    assert config["cgroupDriver"] == "cgroupfs" and config["failCgroupV1"] is False
    assert config["cgroupRoot"] == "/kubetrain-x" and config["address"] == "10.250.0.2"
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authorization"]["mode"] == "Webhook"
    assert config["clusterDNS"] == [CLUSTER_DNS_IP]
    assert config["containerRuntimeEndpoint"] == f"unix://{PATHS.containerd_socket}"
    assert config["imageGCHighThresholdPercent"] == 100  # imported images are never pulled


def test_corefile_serves_the_cluster_domain_from_the_api() -> None:
    text = corefile(Path("/tmp/n1/coredns.kubeconfig"))
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa" in text
    assert "kubeconfig /tmp/n1/coredns.kubeconfig" in text
