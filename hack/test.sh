#!/usr/bin/env bash
# Everything `make test` does: install (cached), build the control plane (cached), lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

venv=$(hack/venv.sh)
export PATH="$venv/bin:$PATH"
echo "== python env: $venv"

assets=$(hack/control-plane/build.sh)
export KUBETRAIN_ASSETS="$assets"
echo "== control plane binaries: $assets"

bash hack/test-deps.sh  # system packages some tests need (lua5.4 for the Argo CD health check)

echo "== ruff"
ruff check .

echo "== pytest"
set +e
pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
echo "== make test took $((SECONDS - start)) s (pytest exit $rc)"
exit "$rc"
