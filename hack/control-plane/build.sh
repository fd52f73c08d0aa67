#!/usr/bin/env bash
# Build (once) and print the directory holding the test control plane's binaries:
# etcd, kube-apiserver, kube-controller-manager, kubectl and helm.
#
# They are built from Go modules (the wrapper go.mod files next to this script)
# with the machine's Go and the module proxy, and cached under
# ~/.cache/kubetrain/bin/<key>/, where <key> hashes this script, the wrapper
# modules and the Go version; a warm run builds nothing. If KUBEBUILDER_ASSETS
# names a directory that already holds the binaries (controller-runtime's envtest
# convention), that directory is used instead. Logs go to stderr; stdout is the
# directory only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}
binaries=(etcd kube-apiserver kube-controller-manager kubectl helm)

has_all() {
  local b
  for b in "${binaries[@]}"; do [ -x "$1/$b" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && has_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  # envtest's own downloads lack kube-controller-manager and helm, which the tests need.
  echo "build.sh: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks some of ${binaries[*]}; using our own build" >&2
fi

go=$(command -v go || echo /usr/local/go/bin/go)
if [ ! -x "$go" ]; then
  # Any Go >= 1.21 will do: it fetches the go line's toolchain from the module proxy itself.
  echo "build.sh: no Go toolchain found; install Go >= 1.21 (e.g. Debian's golang-1.21+ from" \
    "bookworm-backports) or put it on PATH" >&2
  exit 1
fi

# The key covers everything the binaries are built from; the Go version only
# through `go env GOVERSION` (cheap, no network).
key=$( { cat "$0" "$here"/*/go.mod "$here"/*/go.sum; "$go" env GOVERSION; } | sha256sum | cut -c1-16)
out="$cache/bin/$key"
if has_all "$out"; then
  echo "$out"
  exit 0
fi

# The version a wrapper go.mod requires of a module (in a require block or line).
required() { awk -v m="$2" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$1" | head -1; }
k8s_version=$(required "$here/kubernetes/go.mod" k8s.io/kubernetes)
helm_version=$(required "$here/helm/go.mod" helm.sh/helm/v3)
[ -n "$k8s_version" ] && [ -n "$helm_version" ] || { echo "build.sh: cannot read versions from go.mod" >&2; exit 1; }
major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# Version stamps like upstream's hack/lib/version.sh: without them /version says
# v0.0.0 and helm's kubeVersion checks fail.
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

tmp=$(mktemp -d "$cache/bin/.build-XXXXXX" 2>/dev/null || { mkdir -p "$cache/bin"; mktemp -d "$cache/bin/.build-XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# -p bounds parallel compiles: kube-apiserver's link needs several GB on its own.
jobs=${KUBETRAIN_BUILD_JOBS:-2}
start=$(date +%s)

echo "build.sh: building etcd into $out" >&2
(cd "$here/etcd" && "$go" build -p "$jobs" -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)

echo "build.sh: building helm $helm_version" >&2
(cd "$here/helm" && "$go" build -p "$jobs" -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
  -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)

for cmd in kubectl kube-controller-manager kube-apiserver; do
  echo "build.sh: building $cmd $k8s_version" >&2
  (cd "$here/kubernetes" && "$go" build -p "$jobs" -trimpath -tags selinux,notest \
    -ldflags "$k8s_ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
