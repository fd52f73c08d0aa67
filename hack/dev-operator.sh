#!/usr/bin/env bash
# Run by `hack/dev-cluster.sh up` once the cluster is ready (KUBECONFIG set): install the CRD
# and the trainer-progress admission policy, then run the operator on every namespace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$root/hack/venv.sh")
kubectl="$("$root/hack/control-plane/build.sh")/kubectl"
"$kubectl" apply --server-side -f "$root/crds/" -f "$root/operator/manifests/trainer-progress-policy.yaml"
"$kubectl" wait --for=condition=Established --timeout=60s crd/trainingjobs.kubetrain.io
exec "$venv/bin/python" -m kubetrain_operator --all-namespaces --log-format plain \
  --metrics-port "${KUBETRAIN_OPERATOR_METRICS_PORT:-18080}" --health-port "${KUBETRAIN_OPERATOR_HEALTH_PORT:-18081}"
