#!/usr/bin/env bash
# Everything `make test` does: install (cached), build the control plane (cached), lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

venv=$(hack/venv.sh)
export PATH="$venv/bin:$PATH"
echo "== python env: $venv"

bash hack/test-deps.sh  # system packages the tests need (lua5.4; the real node's: hack/node/install.sh)

# The images of the real node (cached by content; a changed source rebuilds its image's last layer
# only). On a cold machine their build mostly waits on the network and the disk (debootstrap, the
# trainer's multi-GB wheels), so it runs beside the Go builds below, which mostly use the CPU.
t_images=$SECONDS
KUBETRAIN_IMAGES=$(mktemp -t kubetrain-images.XXXXXX)
export KUBETRAIN_IMAGES
hack/images/build.sh > "$KUBETRAIN_IMAGES" &
images_pid=$!
trap 'kill "$images_pid" 2>/dev/null || true; rm -f "$KUBETRAIN_IMAGES"' EXIT

assets=$(hack/control-plane/build.sh)
export KUBETRAIN_ASSETS="$assets"
echo "== control plane binaries: $assets"

# The S3-compatible server of the object-storage tests (MinIO, built once from Go modules, cached).
KUBETRAIN_MINIO=$(hack/minio/build.sh)
export KUBETRAIN_MINIO
echo "== minio: $KUBETRAIN_MINIO"

# Kueue for the admission tests (the manager and its CRDs, built once from its Go module, cached).
t0=$SECONDS
KUBETRAIN_KUEUE=$(hack/kueue/build.sh)
export KUBETRAIN_KUEUE
echo "== kueue: $KUBETRAIN_KUEUE ($((SECONDS - t0)) s)"

# The real node of tests/e2e: kubelet, kube-proxy, kube-scheduler, CoreDNS (cached by key).
t0=$SECONDS
KUBETRAIN_NODE_BIN=$(hack/node/build.sh)
export KUBETRAIN_NODE_BIN
echo "== node binaries: $KUBETRAIN_NODE_BIN ($((SECONDS - t0)) s)"
wait "$images_pid" || { echo "hack/images/build.sh failed" >&2; exit 1; }
echo "== images (ready $((SECONDS - t_images)) s after their build started):"
sed 's/^/   /' "$KUBETRAIN_IMAGES"

echo "== ruff"
ruff check .

echo "== pytest"
set +e
# The slowest tests, printed with every run: where a warm run's time goes is then on record.
pytest --durations=30 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
echo "== make test took $((SECONDS - start)) s (pytest exit $rc)"
exit "$rc"
