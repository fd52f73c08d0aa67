#!/usr/bin/env bash
# System packages a real test node needs (idempotent; a no-op when they are present):
# containerd + runc run the containers, containernetworking-plugins gives pods an IP on a
# bridge, iptables is kube-proxy's backend, buildah + debootstrap + busybox-static build the
# images without a registry or a Docker daemon (hack/images/build.sh). Debian/Ubuntu only;
# elsewhere install the same packages by hand.
set -euo pipefail
packages=(containerd runc containernetworking-plugins iptables buildah debootstrap busybox-static
  conntrack uidmap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "hack/node/install.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq >&2
# --no-install-recommends: buildah recommends podman's whole stack, which the node does not use.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >&2
# Debian starts containerd as a service on install; the node runs its own instance (own
# socket, root and config), so the machine-wide one is not needed.
if command -v systemctl >/dev/null && systemctl is-active -q containerd 2>/dev/null; then
  $sudo systemctl disable --now containerd >&2 || true
fi
