#!/usr/bin/env bash
# End to end on a kind cluster: build both images, load them, helm install the chart, run
# examples/cpu-cluster.yaml to Succeeded. Needs docker (with a daemon), kind, kubectl, helm
# (kubectl and helm default to the ones hack/control-plane/build.sh builds).
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
  for pod in $(kubectl get pods -l kubetrain.io/job-name -o name 2>/dev/null); do
    echo "--- $pod"; kubectl logs "$pod" --tail=200 || true
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
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 180s
kind export kubeconfig --name "$cluster"

echo "== images"
docker build -f operator/Dockerfile -t "kubetrain/operator:$tag" .
docker build -f trainer-image/Dockerfile -t "kubetrain/trainer:$tag" .
kind load docker-image --name "$cluster" "kubetrain/operator:$tag" "kubetrain/trainer:$tag"

echo "== helm install"
helm upgrade --install kubetrain charts/kubetrain --namespace kubetrain-system \
  --create-namespace --wait --timeout 5m \
  --set image.repository=kubetrain/operator --set image.tag="$tag" --set image.pullPolicy=Never
kubectl -n kubetrain-system rollout status deployment/kubetrain-operator --timeout=120s

echo "== examples/cpu-cluster.yaml with the local trainer image"
sed "s|image: .*|image: kubetrain/trainer:$tag|" examples/cpu-cluster.yaml | kubectl apply -f -
kubectl wait tj/cpu-ddp --for=jsonpath='{.status.phase}'=Succeeded --timeout="$timeout"
kubectl get tj cpu-ddp -o wide
echo "== e2e passed"
