#!/usr/bin/env bash
# Build (once) and print the directory holding a real test node's binaries: kubelet,
# kube-proxy, kube-scheduler (from the control plane's wrapper module, hack/control-plane/
# kubernetes, with the same version stamps) and coredns (hack/node/coredns: the plugins cluster
# DNS needs). Cached under ~/.cache/kubetrain/bin/node-<key>/, where <key> hashes this script,
# both wrapper modules and the Go version; a warm run builds nothing. Logs go to stderr; stdout
# is the directory only. Containerd, runc and the CNI plugins are Debian's (hack/node/install.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_module=$(cd "$here/../control-plane/kubernetes" && pwd)
cache=${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}
binaries=(kube-scheduler kube-proxy kubelet coredns)

go=$(command -v go || echo /usr/local/go/bin/go)
[ -x "$go" ] || { echo "hack/node/build.sh: no Go toolchain (see hack/control-plane/build.sh)" >&2; exit 1; }

key=$( { cat "$0" "$k8s_module"/go.mod "$k8s_module"/go.sum "$here"/coredns/*; "$go" env GOVERSION; } \
  | sha256sum | cut -c1-16)
out="$cache/bin/node-$key"
has_all() { local b; for b in "${binaries[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if has_all; then
  echo "$out"
  exit 0
fi

required() { awk -v m="$2" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$1" | head -1; }
k8s_version=$(required "$k8s_module/go.mod" k8s.io/kubernetes)
[ -n "$k8s_version" ] || { echo "hack/node/build.sh: cannot read k8s.io/kubernetes from go.mod" >&2; exit 1; }
major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The same stamps as hack/control-plane/build.sh: without them the node reports v0.0.0-master.
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

mkdir -p "$cache/bin"
tmp=$(mktemp -d "$cache/bin/.node-build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Build from copies of the wrapper modules: -mod=mod may add go.sum lines, which must not
# change the checked-in files (they key the control plane's cache too).
mkdir -p "$tmp/src/kubernetes" "$tmp/src/coredns"
cp "$k8s_module"/go.mod "$k8s_module"/go.sum "$tmp/src/kubernetes/"
cp "$here"/coredns/* "$tmp/src/coredns/"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
jobs=${KUBETRAIN_BUILD_JOBS:-2}
start=$(date +%s)
for cmd in kube-scheduler kube-proxy kubelet; do
  echo "hack/node/build.sh: building $cmd $k8s_version" >&2
  (cd "$tmp/src/kubernetes" && "$go" build -p "$jobs" -trimpath -tags selinux,notest \
    -ldflags "$k8s_ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done
coredns_version=$(required "$here/coredns/go.mod" github.com/coredns/coredns)
echo "hack/node/build.sh: building coredns $coredns_version" >&2
(cd "$tmp/src/coredns" && "$go" build -p "$jobs" -trimpath \
  -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns_version" \
  -o "$tmp/coredns" .)
rm -rf "$tmp/src"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "hack/node/build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$out"
