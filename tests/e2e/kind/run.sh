#!/usr/bin/env bash
# End to end on a kind cluster: build both images with docker, load them, then run the same
# tests as `make test` runs on its local real node (tests/e2e: helm install, the CPU example to
# Succeeded, a killed worker's group restart, clean deletion). Needs docker (with a daemon),
# kind, kubectl, helm (kubectl and helm default to the ones hack/control-plane/build.sh builds).
#
#   tests/e2e/kind/run.sh            KEEP_CLUSTER=1 keeps the cluster afterwards
# On failure it prints the jobs, pods, events and logs, and exports kind's logs to
# $ARTIFACTS (default ./e2e-artifacts).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
cluster=${KIND_CLUSTER:-kubetrain-e2e}
tag=e2e
artifacts=${ARTIFACTS:-$root/e2e-artifacts}
timeout=${JOB_TIMEOUT:-15m}
if ! command -v helm >/dev/null || ! command -v kubectl >/dev/null; then
  PATH="$(hack/control-plane/build.sh):$PATH"
fi
export KUBECONFIG=${KUBECONFIG_E2E:-$(mktemp -t kubetrain-e2e-kubeconfig.XXXXXX)}

collect() {
  echo "== e2e failed: collecting state into $artifacts" >&2
  mkdir -p "$artifacts"
  kubectl get tj,pods -A -o wide || true
  kubectl describe tj -A || true
  kubectl get events -A --sort-by=.lastTimestamp || true
  kubectl -n kubetrain-system logs deployment/kubetrain-operator --tail=300 || true
  for pod in $(kubectl get pods -n kubetrain-e2e -o name 2>/dev/null); do
    echo "--- $pod"; kubectl logs -n kubetrain-e2e "$pod" --tail=200 || true
  done
  kind export logs "$artifacts" --name "$cluster" || true
}
cleanup() {
  rc=$?
  [ "$rc" -eq 0 ] || collect
  [ -n "${KEEP_CLUSTER:-}" ] || kind delete cluster --name "$cluster" || true
  exit "$rc"
}
trap cleanup EXIT

echo "== kind cluster $cluster"
# Two workers (the two-node test puts one trainer on each) sharing one /var/tmp, the example's
# run volume: on one machine that is how a group restart on other nodes finds the checkpoint.
shared_tmp=${SHARED_TMP:-$(mktemp -d -t kubetrain-e2e-var-tmp.XXXXXX)}
chmod 1777 "$shared_tmp"
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 180s \
  --config - <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  extraMounts: [{hostPath: $shared_tmp, containerPath: /var/tmp}]
- role: worker
  extraMounts: [{hostPath: $shared_tmp, containerPath: /var/tmp}]
EOF
kind export kubeconfig --name "$cluster"

echo "== images"
docker build -f operator/Dockerfile -t "kubetrain/operator:$tag" .
docker build -f trainer-image/Dockerfile -t "kubetrain/trainer:$tag" .
kind load docker-image --name "$cluster" "kubetrain/operator:$tag" "kubetrain/trainer:$tag"

echo "== tests/e2e on kind"
export KUBETRAIN_E2E_KIND_CLUSTER="$cluster"
export KUBETRAIN_E2E_OPERATOR_IMAGE="kubetrain/operator:$tag"
export KUBETRAIN_E2E_TRAINER_IMAGE="kubetrain/trainer:$tag"
"$(hack/venv.sh)/bin/pytest" -q tests/e2e
echo "== e2e passed"
