#!/usr/bin/env bash
# System packages the tests need (idempotent, quiet when present): lua5.4 runs the Argo CD
# health check in tests/unit/gitops; hack/node/install.sh installs the real node's (containerd,
# runc, CNI plugins, buildah, debootstrap...). Debian/Ubuntu only; elsewhere install them by hand.
set -euo pipefail
bash "$(dirname "$0")/node/install.sh"
missing=()
command -v lua5.4 >/dev/null || missing+=(lua5.4)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "hack/test-deps.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
