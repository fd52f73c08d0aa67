"""Configuration files of a real test node (pure: values in, text out).

Facts behind the settings are in /work/shared/design/control-plane.md, "Real nodes".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

CLUSTER_DOMAIN = "cluster.local"
CLUSTER_DNS_IP = "10.0.0.10"  # inside the API server's --service-cluster-ip-range
CLUSTER_CIDR = "10.244.0.0/16"  # every node's pod subnet lies in it


@dataclass(frozen=True)
class NodePaths:
    """Where one node keeps its state (all under `dir`)."""

    dir: Path

    @property
    def containerd_config(self) -> Path:
        return self.dir / "containerd.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def private_root(self) -> Path:
        """containerd's root when the node does not use the machine's shared one."""
        return self.dir / "containerd" / "root"

    @property
    def cni_conf_dir(self) -> Path:
        return self.dir / "cni" / "net.d"

    @property
    def kubelet_root(self) -> Path:
        return self.dir / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.dir / "pod-logs"

    @property
    def kubelet_config(self) -> Path:
        return self.dir / "kubelet.yaml"

    @property
    def corefile(self) -> Path:
        return self.dir / "Corefile"


def containerd_config(paths: NodePaths, sandbox_image: str, root: Path | None = None) -> str:
    """containerd 1.6's config: private state, socket and runc root (and root, unless `root`
    names a shared one); the CRI plugin with the local sandbox image, Debian's CNI plugins and
    restrict_oom_score_adj."""
    d = paths.dir / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root or paths.private_root}"
state = "{d / "state"}"
# Snapshotters this machine cannot use (their failures are only log noise).
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{paths.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # Sandboxes ask for oom_score_adj -998; without CAP_SYS_RESOURCE (withheld on these machines)
  # runc then fails every sandbox ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  # Pods' network namespaces under the node's state dir, not the machine's /run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d / "runc"}"

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{paths.cni_conf_dir}"
"""


def cni_conflist(bridge: str, pod_subnet: str, ipam_dir: Path) -> str:
    """A bridge network: pods get an address of `pod_subnet`. No masquerading here: pods on
    other nodes see a pod's own address; the node masquerades only what leaves the cluster's
    pod network (real_node), so the API server can answer."""
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "kubetrain",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": pod_subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(ipam_dir),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(
    paths: NodePaths, ca_file: Path, node_ip: str, cgroup_root: str, resolv_conf: Path
) -> str:
    """KubeletConfiguration for these machines: cgroupfs on cgroup v1, no swap check, no
    filesystem-based accounting or eviction (cAdvisor cannot read /dev/vda's stats here), no
    image garbage collection (the images are imported, not pulled), webhook authn/authz."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "healthzBindAddress": "127.0.0.1",
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        # Its own cgroup tree: several nodes (and test sessions) share the machine.
        "cgroupRoot": cgroup_root,
        "cgroupsPerQOS": True,
        "failSwapOn": False,
        "failCgroupV1": False,
        "localStorageCapacityIsolation": False,
        "enforceNodeAllocatable": [],
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "0%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(resolv_conf),
        "podLogsDir": str(paths.pod_logs),
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "registerNode": True,
    }
    return yaml.safe_dump(config, sort_keys=False)


def corefile(kubeconfig: Path) -> str:
    """CoreDNS serving the cluster domain from the API server (Services, and headless
    Services' pod names), on port 53 of the node's addresses."""
    return f""".:53 {{
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""
