#!/usr/bin/env bash
# A local Kubernetes cluster for trying kubetrain without one (development tool only; runs as
# root): a control plane and one real node (containerd + runc, kubelet, kube-proxy, CoreDNS)
# running the project's images, which hack/images/build.sh builds and `up` names.
#
#   hack/dev-cluster.sh up       build (once), start in the background, print `export KUBECONFIG=...`
#   hack/dev-cluster.sh down     stop it and every process and container it started
#   hack/dev-cluster.sh status
#
# KUBETRAIN_DEV_CLUSTER_THEN: a shell command started once the cluster is ready,
# with KUBECONFIG set, and stopped by `down`; default: hack/dev-operator.sh (CRD, admission
# policy and the operator on all namespaces); set it empty to run no operator.
# The first start builds the node's binaries and the images (long); `kubectl logs` and `exec` work.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-up}
venv=$("$root/hack/venv.sh")
export PYTHONPATH="$root/tests/support${PYTHONPATH:+:$PYTHONPATH}"
case "$cmd" in
  up)
    "$root/hack/control-plane/build.sh" >/dev/null
    args=(up)
    KUBETRAIN_DEV_CLUSTER_THEN=${KUBETRAIN_DEV_CLUSTER_THEN-"bash $root/hack/dev-operator.sh"}
    if [ -n "${KUBETRAIN_DEV_CLUSTER_THEN:-}" ]; then args+=(--then "$KUBETRAIN_DEV_CLUSTER_THEN"); fi
    exec "$venv/bin/python" -m kubetrain_testenv "${args[@]}"
    ;;
  down|status)
    exec "$venv/bin/python" -m kubetrain_testenv "$cmd"
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
