#!/usr/bin/env bash
# A local Kubernetes control plane for trying kubetrain without a cluster
# (development tool only: pods run as local processes on this machine, as root).
#
#   hack/dev-cluster.sh up       build (once), start in the background, print `export KUBECONFIG=...`
#   hack/dev-cluster.sh down     stop it and every process it started
#   hack/dev-cluster.sh status
#
# KUBETRAIN_DEV_CLUSTER_THEN: a shell command started once the cluster is ready,
# with KUBECONFIG set, and stopped by `down`; default: hack/dev-operator.sh (CRD, admission
# policy and the operator on all namespaces); set it empty to run no operator.
# KUBETRAIN_DEV_CLUSTER_GPUS: fake nvidia.com/gpu count of the node (default 0).
# KUBETRAIN_DEV_CLUSTER_NODE=real: a real node instead of the node agent (containerd, kubelet,
# kube-proxy, CoreDNS; the images hack/images/build.sh builds, whose names `up` prints;
# `kubectl logs` and `exec` work). The first start builds the binaries and images (long).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-up}
venv=$("$root/hack/venv.sh")
export PYTHONPATH="$root/tests/support${PYTHONPATH:+:$PYTHONPATH}"
case "$cmd" in
  up)
    "$root/hack/control-plane/build.sh" >/dev/null
    args=(up --gpus "${KUBETRAIN_DEV_CLUSTER_GPUS:-0}")
    KUBETRAIN_DEV_CLUSTER_THEN=${KUBETRAIN_DEV_CLUSTER_THEN-"bash $root/hack/dev-operator.sh"}
    if [ -n "${KUBETRAIN_DEV_CLUSTER_THEN:-}" ]; then args+=(--then "$KUBETRAIN_DEV_CLUSTER_THEN"); fi
    if [ "${KUBETRAIN_DEV_CLUSTER_NODE:-agent}" = real ]; then args+=(--real-node); fi
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
