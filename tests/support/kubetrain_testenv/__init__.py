"""A real Kubernetes cluster on this machine for tests and development.

Test and development tool only: never part of what users deploy.

`ControlPlane` runs etcd, kube-apiserver and kube-controller-manager (built by
hack/control-plane/build.sh). `real_cluster.real_cluster()` adds kube-scheduler and real nodes
(`real_node.RealNode`: containerd + runc, kubelet, kube-proxy; CoreDNS on the first), each in
its own network namespace, that run the project's images (hack/images/build.sh; pods use them
with `imagePullPolicy: Never`/`IfNotPresent`). `ControlPlane.pod_log()` reads a container's
output through the kubelet, as `kubectl logs` does; `pytest_support` wraps both for fixtures,
`dev_cluster` for `make dev-cluster`.

Every process the control plane starts carries KUBETRAIN_TESTENV_RUN/KUBETRAIN_TESTENV_OWNER in
its env: `ControlPlane.survivors()` lists what is still alive, and a new ControlPlane kills the
orphans of an owner that was SIGKILLed (a node's containers are found by its cgroup tree and
cleaned up the same way: `real_node.reap_orphaned_nodes`).
"""

from .control_plane import ControlPlane, ControlPlaneError
from .procs import survivors, wait_for

__all__ = ["ControlPlane", "ControlPlaneError", "survivors", "wait_for"]
