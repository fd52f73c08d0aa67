#!/usr/bin/env bash
# Build (once) and print the directory holding Kueue for the tests: the `kueue` manager binary,
# its CRDs (crds/*.yaml) and webhook configurations (webhooks.yaml), all from the pinned
# release's Go module.
#
# Kueue's go.mod has no replace lines, but `go install ...@VERSION` reads the proxy's version
# list for deprecation notices, which this machine's proxy refuses (403); so the module is
# downloaded at the pinned version and built in its own directory with its own go.sum (the
# exact dependency set upstream releases with). The result is cached under ~/.cache/kubetrain/bin/kueue-<key>/, where <key> hashes
# this script (which pins the version) and the Go version; a warm run builds nothing. A lock
# makes concurrent callers wait for one build. Logs go to stderr; stdout is the directory only.
set -euo pipefail
# v0.13.2: built against Kubernetes 0.33 libraries, like the test control plane (v1.33); it
# serves kueue.x-k8s.io/v1beta1 Workloads.
KUEUE_VERSION=v0.13.2
cache=${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}

go=$(command -v go || echo /usr/local/go/bin/go)
if [ ! -x "$go" ]; then
  echo "kueue/build.sh: no Go toolchain found; install Go >= 1.21 or put it on PATH" >&2
  exit 1
fi
key=$( { cat "$0"; "$go" env GOVERSION; } | sha256sum | cut -c1-16)
out="$cache/bin/kueue-$key"
ready() { [ -x "$1/kueue" ] && [ -s "$1/crds/kueue.x-k8s.io_workloads.yaml" ] && [ -s "$1/webhooks.yaml" ]; }
if ready "$out"; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache/bin"
exec 9>"$cache/bin/.kueue-$key.lock"
flock 9  # another caller may be building it: wait, then use its result
if ready "$out"; then
  echo "$out"
  exit 0
fi

tmp=$(mktemp -d "$cache/bin/.build-kueue-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# readonly: the module cache is read-only, and upstream's go.sum already pins every dependency.
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$(date +%s)
echo "kueue/build.sh: building kueue $KUEUE_VERSION into $out" >&2
# Module download first: the same module version gives the CRDs.
src=$("$go" mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$src/config/components/crd/bases" ] || { echo "kueue/build.sh: no CRDs in $src" >&2; exit 1; }
mkdir -p "$tmp/crds"
cp "$src"/config/components/crd/bases/*.yaml "$tmp/crds/"
# Its webhook configurations (the tests register those of Kueue's own kinds by URL).
cp "$src"/config/components/webhook/manifests.yaml "$tmp/webhooks.yaml"
version_pkg=sigs.k8s.io/kueue/pkg/version
(cd "$src" && "$go" build -p "${KUBETRAIN_BUILD_JOBS:-2}" -trimpath -o "$tmp/kueue" \
  -ldflags "-s -w -X $version_pkg.GitVersion=$KUEUE_VERSION -X $version_pkg.GitCommit=release \
    -X $version_pkg.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  ./cmd/kueue)
ready "$tmp" || { echo "kueue/build.sh: build produced no kueue binary" >&2; exit 1; }
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "kueue/build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
