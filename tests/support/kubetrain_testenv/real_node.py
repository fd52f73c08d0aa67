"""A real Kubernetes node on this machine: containerd + runc, kubelet, kube-proxy and CoreDNS.

Test and development tool only. Each node lives in its own network namespace (node_network),
with its own containerd (state, socket and root), kubelet root dir, pod log dir and cgroup
tree, so several nodes, clusters and test sessions can share the machine at once. The project's
images (hack/images/build.sh) are imported into the machine's image store (`SHARED_ROOT`, a
containerd root kept across runs that no node ever runs on); every node runs on a
hard-linked clone of it (`provision`): its images are there in about 2 s at no
disk cost, and nothing a node writes reaches the store or another node's files. Pods use the
images from containerd's `k8s.io` namespace with `imagePullPolicy: Never`/`IfNotPresent` (no
registry is reachable).

`stop()` leaves nothing behind, even after a failed test: the kubelet, kube-proxy and CoreDNS
stop, every process in the node's cgroup tree is killed, containerd stops, everything mounted
under the node's directory is unmounted, the private containerd root, the cgroups and the
network namespace (its CNI bridge and veth pair included) are removed, and with the first node
the cluster's LAN bridge. A record under /run/kubetrain-testenv/nodes/ lets a later run do the
same for a node whose owner was SIGKILLed (`reap_orphaned_nodes`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import procs
from .kubeconfig import render_kubeconfig, write_kubeconfig
from .node_config import (
    CLUSTER_CIDR,
    CLUSTER_DNS_IP,
    NodePaths,
    cni_conflist,
    containerd_config,
    corefile,
    kubelet_config,
)
from .node_network import Lan, NodeNetwork
from .pki import client_cert

RECORDS = Path("/run/kubetrain-testenv/nodes")
REPO_ROOT = Path(__file__).resolve().parents[3]
IMAGES_SCRIPT = REPO_ROOT / "hack" / "images" / "build.sh"
_CACHE = Path(os.environ.get("KUBETRAIN_CACHE", Path.home() / ".cache" / "kubetrain"))
# The image store: a containerd root (content, snapshots) kept across runs, because the trainer
# image is GBs. Imported into and cloned under its lock (`provision`): clusters of several
# sessions take turns for seconds, and never see half an import.
SHARED_ROOT = _CACHE / "node" / "containerd-root"
SHARED_ROOT_LOCK = SHARED_ROOT.with_suffix(".lock")
# What of a containerd root a clone takes: content, unpacked layers and the metadata (not the
# CRI's or the runtimes' per-container state, which belongs to the node that made it).
CLONED_PARTS = (
    "io.containerd.content.v1.content",
    "io.containerd.snapshotter.v1.overlayfs",
    "io.containerd.metadata.v1.bolt",
)
CGROUP_FS = Path("/sys/fs/cgroup")
COREDNS_USER = "kubetrain:coredns"


@dataclass(frozen=True)
class Image:
    """One line of hack/images/build.sh's output."""

    name: str
    ref: str


def stale_images(listing: str, wanted: set[str]) -> list[str]:
    """The image references to remove from a kept containerd root, given `ctr images ls`:
    our images' older builds, and the `sha256:<id>` references the CRI plugin adds for every
    image, unless they point at a wanted one (else they would keep every old image's layers)."""
    refs = dict(line.split()[0:3:2] for line in listing.splitlines()[1:] if line.strip())
    kept = {refs[ref] for ref in wanted if ref in refs}
    return [
        ref
        for ref, digest in refs.items()
        if (ref.startswith("localhost/kubetrain/") and ref not in wanted)
        or (ref.startswith("sha256:") and digest not in kept)
    ]


def parse_images(text: str) -> dict[str, Image]:
    """hack/images/build.sh's stdout ("<name> <ref>" per line) by name."""
    images = {}
    for line in text.splitlines():
        name, ref = line.split()
        images[name] = Image(name, ref)
    return images


class RealNode:
    """One node of `cp` (a started ControlPlane whose advertise address is `net.host_ip`)."""

    def __init__(
        self,
        cp: Any,
        net: NodeNetwork,
        binaries: Path,
        images: dict[str, Image],
        name: str = "node-1",
        pod_subnet: str = "10.244.0.0/24",
        dns: bool = True,
        lan: Lan | None = None,
    ) -> None:
        """`lan`: the cluster's bridge, given to the one node that removes it when it stops."""
        self.cp = cp
        self.net = net
        self.binaries = binaries
        self.images = images
        self.name = name
        self.pod_subnet = pod_subnet
        self.dns = dns
        self.lan = lan
        self.tag = net.netns.removeprefix("kt-")
        self.paths = NodePaths(cp.root / "nodes" / name)
        self.cgroup_root = f"/kubetrain-{self.tag}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopped = False
        self._prepared = False
        self._cloned_root = False
        self.timings: dict[str, float] = {}

    # -- helpers -------------------------------------------------------------------

    def log_path(self, component: str) -> Path:
        return self.cp.root / "logs" / f"{self.name}-{component}.log"

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run `ctr` against this node's containerd, in the `k8s.io` namespace."""
        argv = ["ctr", "--address", str(self.paths.containerd_socket), "-n", "k8s.io", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def _spawn(self, component: str, argv: list[str | Path]) -> None:
        self._procs[component] = procs.start(
            [*self.net.nsenter(), *argv], self.log_path(component), self.cp.run_id
        )

    def _check_alive(self) -> None:
        for component, proc in self._procs.items():
            if proc.poll() is not None:
                tail = self.log_path(component).read_text(errors="replace")[-3000:]
                raise RuntimeError(
                    f"{component} of {self.name} exited ({proc.returncode}):\n{tail}"
                )

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        def ready() -> bool:
            self._check_alive()
            return bool(predicate())

        procs.wait_for(ready, timeout, 0.2, what)

    def _kubeconfig(self, component: str, subject: str, user: str) -> Path:
        cert, key = client_cert(self.cp.pki, f"{self.name}-{component}", subject)
        server = f"https://{self.net.host_ip}:{self.cp.port}"
        config = render_kubeconfig(server, self.cp.ca_file, user, client_cert=cert, client_key=key)
        return write_kubeconfig(self.paths.dir / f"{component}.kubeconfig", config)

    # -- lifecycle -----------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> RealNode:
        """Bring the images into the store and clone it (unless done before), start containerd,
        the kubelet (wait for Ready), kube-proxy and CoreDNS (wait until it answers)."""
        started = time.monotonic()
        self.prepare()
        if not self._cloned_root:
            provision([self])
        self._start_containerd()
        self._wait(self.paths.containerd_socket.exists, 30, f"containerd of {self.name}")
        self._start_kubelet()
        self._wait(self._ready, timeout, f"node {self.name} to be Ready")
        self.timings["node Ready"] = time.monotonic() - started
        self._start_kube_proxy()
        if self.dns:
            self._start_coredns()
        return self

    def prepare(self) -> None:
        """Directories, record, cgroups and NAT rule. Idempotent."""
        if self._prepared:
            return
        self._prepared = True
        self.paths.dir.mkdir(parents=True, exist_ok=True)
        _write_record(self)
        _make_cgroups(self.cgroup_root)
        # Pods reach other nodes' pods unmasqueraded (the CNI bridge's ipMasq would hide their
        # addresses); only traffic leaving the cluster's pod network is masqueraded.
        subprocess.run(
            [*self.net.nsenter(), "iptables", "-t", "nat", "-A", "POSTROUTING", "-s",
             self.pod_subnet, "!", "-d", CLUSTER_CIDR, "-j", "MASQUERADE"],
            check=True, capture_output=True,
        )  # fmt: skip

    def _fill_store(self) -> None:
        """Import the images the store lacks: a containerd of this node's (its state and
        socket) runs on the store for the import only. The caller holds the store's lock."""
        self.prepare()
        started = time.monotonic()
        self._start_containerd(SHARED_ROOT)
        try:
            self._wait(self.paths.containerd_socket.exists, 30, f"containerd of {self.name}")
            self._import_images()
        finally:
            procs.stop(self._procs.pop("containerd"), grace=10.0)
            # start() waits for the socket to appear: a stale one would answer too soon.
            self.paths.containerd_socket.unlink(missing_ok=True)
        self.timings["images imported into the store"] = time.monotonic() - started

    def _clone_store(self) -> None:
        """Make this node's root a hard-linked copy of the store (the caller holds its lock).
        Blobs and unpacked layers are never written after they are made, so links are safe;
        the metadata databases are written in place, so they are real copies."""
        assert "containerd" not in self._procs, "clone before containerd starts"
        self.prepare()
        started = time.monotonic()
        target = self.paths.private_root
        target.mkdir(parents=True, exist_ok=True)
        for part in CLONED_PARTS:
            if (SHARED_ROOT / part).is_dir():
                subprocess.run(["cp", "-al", str(SHARED_ROOT / part), str(target)], check=True)
        for db in target.rglob("*.db"):
            db.unlink()
            shutil.copy2(SHARED_ROOT / db.relative_to(target), db)
        self._cloned_root = True
        self.timings["containerd root cloned"] = time.monotonic() - started

    def _start_containerd(self, root: Path | None = None) -> None:
        """containerd of this node on `root` (default: its own clone of the store)."""
        p = self.paths
        p.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (p.cni_conf_dir / "10-kubetrain.conflist").write_text(
            cni_conflist("ktbr0", self.pod_subnet, p.dir / "cni" / "ipam")
        )
        p.containerd_config.write_text(containerd_config(p, self.images["pause"].ref, root))
        self._spawn("containerd", ["containerd", "--config", p.containerd_config])

    def _import_images(self) -> None:
        """Stream the images the store lacks into it, after clearing containers a store used
        by an older version of this code may hold; then remove older builds' images. In that
        order: a new build shares most layers with the old one, and removing the old first
        would let the garbage collector delete them before the import reuses them (the import
        skips what containerd has, and would then miss them)."""
        for kind in ("tasks", "containers"):
            ids = self.ctr(kind, "ls", "-q").stdout.split()
            if ids:
                self.ctr(kind, "rm", *(["-f"] if kind == "tasks" else []), *ids)
        refs = [image.ref for image in self.images.values()]
        done = subprocess.run(
            ["bash", str(IMAGES_SCRIPT), "--import", str(self.paths.containerd_socket), *refs],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"importing {refs} failed:\n{done.stderr[-3000:]}")
        stale = stale_images(self.ctr("images", "ls").stdout, set(refs))
        if stale:
            # --sync: the space is free (and a clone made next holds none of it) on return.
            self.ctr("images", "rm", "--sync", *stale)

    def _start_kubelet(self) -> None:
        p = self.paths
        kubeconfig = self._kubeconfig(
            "kubelet", f"/O=system:nodes/CN=system:node:{self.name}", f"system:node:{self.name}"
        )
        # Pods' upstream resolvers: none (the cluster's DNS answers its own names only).
        resolv = p.dir / "resolv.conf"
        resolv.write_text("")
        p.kubelet_config.write_text(
            kubelet_config(p, self.cp.ca_file, self.net.node_ip, self.cgroup_root, resolv)
        )
        self._spawn(
            "kubelet",
            [
                self.binaries / "kubelet",
                f"--config={p.kubelet_config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={p.kubelet_root}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.net.node_ip}",
                "--v=1",
            ],
        )

    def _ready(self) -> bool:
        try:
            node = self.cp.request("GET", f"/api/v1/nodes/{self.name}")
        except urllib.error.HTTPError:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _start_kube_proxy(self) -> None:
        kubeconfig = self._kubeconfig("kube-proxy", "/CN=system:kube-proxy", "system:kube-proxy")
        self._spawn(
            "kube-proxy",
            [
                self.binaries / "kube-proxy",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={self.name}",
                f"--cluster-cidr={CLUSTER_CIDR}",
                "--proxy-mode=iptables",
                # Machine-wide conntrack sysctls: not the business of a node in a namespace.
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
                "--metrics-bind-address=127.0.0.1:10249",
                "--healthz-bind-address=127.0.0.1:10256",
            ],
        )

    def _start_coredns(self) -> None:
        _ensure_dns_objects(self.cp, self.net.node_ip)
        kubeconfig = self._kubeconfig("coredns", f"/CN={COREDNS_USER}", COREDNS_USER)
        self.paths.corefile.write_text(corefile(kubeconfig))
        self._spawn("coredns", [self.binaries / "coredns", "-conf", self.paths.corefile])

    def stop(self) -> None:
        """Stop everything and clean up (see the module docstring). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for component in ("coredns", "kube-proxy", "kubelet"):
            if component in self._procs:
                procs.stop(self._procs[component], grace=10.0)
        _kill_cgroup_tree(self.cgroup_root)
        if "containerd" in self._procs:
            procs.stop(self._procs["containerd"], grace=10.0)
        # Shims outlive containerd by design (a restart reattaches); this node is gone for good.
        socket = str(self.paths.containerd_socket)
        for pid, cmd in procs.survivors(self.cp.run_id):
            if "containerd-shim" in cmd and socket in cmd:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _clean_up(self.paths.dir, self.cgroup_root, self.net, self.lan)
        _record_path(self.tag).unlink(missing_ok=True)


# -- DNS -------------------------------------------------------------------------------


def _ensure_dns_objects(cp: Any, node_ip: str) -> None:
    """RBAC for CoreDNS, and the kube-dns Service (CLUSTER_DNS_IP) whose endpoint is the CoreDNS
    of the first node (a process on that node, reached through kube-proxy like any Service)."""
    objects = [
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            {
                "metadata": {"name": "kubetrain:coredns"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["endpoints", "services", "pods", "namespaces"],
                        "verbs": ["list", "watch"],
                    },
                    {
                        "apiGroups": ["discovery.k8s.io"],
                        "resources": ["endpointslices"],
                        "verbs": ["list", "watch"],
                    },
                ],
            },
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "metadata": {"name": "kubetrain:coredns"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "kubetrain:coredns",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}
                ],
            },
        ),
        (
            "/api/v1/namespaces/kube-system/services",
            {
                "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "clusterIP": CLUSTER_DNS_IP,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    ],
                },
            },
        ),
        (
            "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices",
            {
                "metadata": {
                    "name": "kube-dns-node",
                    "labels": {
                        "kubernetes.io/service-name": "kube-dns",
                        "endpointslice.kubernetes.io/managed-by": "kubetrain-testenv",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [node_ip], "conditions": {"ready": True}}],
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        ),
    ]
    for path, body in objects:
        try:
            cp.request("POST", path, body)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # a second node: the first one made them
                raise


# -- clean-up (also for nodes whose owner was SIGKILLed) ---------------------------------


def provision(nodes: list[RealNode]) -> None:
    """Bring the images into the store (through the first node's containerd), then give every
    node its clone, all under the store's lock: another session's import, which removes the
    images it does not use from the store, cannot come between this one's and its clones."""
    SHARED_ROOT.parent.mkdir(parents=True, exist_ok=True)
    with open(SHARED_ROOT_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or its holder dies
        nodes[0]._fill_store()
        for node in nodes:
            node._clone_store()


def _record_path(tag: str) -> Path:
    return RECORDS / f"{tag}.json"


def _write_record(node: RealNode) -> None:
    RECORDS.mkdir(parents=True, exist_ok=True)
    record = {
        "owner": procs.owner_tag(),
        "dir": str(node.paths.dir),
        "cgroup_root": node.cgroup_root,
        "net": node.net.__dict__,
        "lan": node.lan.__dict__ if node.lan else None,
    }
    _record_path(node.tag).write_text(json.dumps(record))


def reap_orphaned_nodes() -> list[str]:
    """Clean up the nodes of owners that died without stopping them; return their names."""
    reaped = []
    for path in RECORDS.glob("*.json") if RECORDS.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if procs.owner_alive(record["owner"]):
            continue
        _kill_cgroup_tree(record["cgroup_root"])
        lan = Lan(**record["lan"]) if record.get("lan") else None
        _clean_up(Path(record["dir"]), record["cgroup_root"], NodeNetwork(**record["net"]), lan)
        path.unlink(missing_ok=True)
        reaped.append(record["net"]["netns"])
    return reaped


def _hierarchies() -> list[Path]:
    """The machine's cgroup hierarchies (v1 controllers, and v2 if mounted)."""
    return [d for d in CGROUP_FS.iterdir() if (d / "cgroup.procs").exists()]


def _make_cgroups(root: str) -> None:
    """The kubelet's cgroupRoot must exist in every hierarchy before it starts."""
    for hierarchy in _hierarchies():
        path = hierarchy / root.lstrip("/")
        path.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset starts empty: inherit
            if (hierarchy / name).exists() and not (path / name).read_text().strip():
                (path / name).write_text((hierarchy / name).read_text())


def _tree(root: str) -> list[Path]:
    """Every cgroup directory under `root` in every hierarchy, deepest first."""
    found = []
    for hierarchy in _hierarchies():
        top = hierarchy / root.lstrip("/")
        if top.is_dir():
            found += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _pids(root: str) -> set[int]:
    pids: set[int] = set()
    for cgroup in _tree(root):
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
    return pids


def _kill_cgroup_tree(root: str, timeout: float = 20.0) -> None:
    """SIGKILL every process of the node's containers (they carry no tag of ours)."""

    def empty() -> bool:
        left = _pids(root)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not left

    with contextlib.suppress(TimeoutError):
        procs.wait_for(empty, timeout, 0.2, f"processes in cgroup {root} to die")


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            mounts.append(point)
    return sorted(set(mounts), key=len, reverse=True)


def _clean_up(directory: Path, cgroup_root: str, net: NodeNetwork, lan: Lan | None) -> None:
    """Unmount under `directory`, remove the cgroups, the private containerd root, the network
    namespace and (if the node owns it) the cluster's LAN bridge."""
    for _ in range(3):  # a lazy unmount can uncover another mount at the same point
        points = _mounts_under(directory)
        if not points:
            break
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True)
    for cgroup in _tree(cgroup_root):
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    # The node's clone of the image store (its links would pin the store's old blobs); logs stay.
    shutil.rmtree(NodePaths(directory).private_root, ignore_errors=True)
    net.delete()
    if lan is not None:
        lan.delete()


def leftovers(node: RealNode) -> list[str]:
    """What of `node` is still there after stop(): processes, mounts, cgroups, namespace."""
    found = [f"pid {pid} in {node.cgroup_root}" for pid in _pids(node.cgroup_root)]
    found += [f"mount {m}" for m in _mounts_under(node.paths.dir)]
    found += [f"cgroup {c}" for c in _tree(node.cgroup_root)]
    if node.net.exists():
        found.append(f"netns {node.net.netns}")
    if node.lan is not None and node.lan.exists():
        found.append(f"bridge {node.lan.bridge}")
    if node.paths.private_root.exists():
        found.append(f"containerd root {node.paths.private_root}")
    return found


def new_tag() -> str:
    """A short unique name part for a node's namespace, link and cgroups."""
    return secrets.token_hex(4)
