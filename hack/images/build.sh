#!/usr/bin/env bash
# Build the images a real test node runs, with buildah, without a registry or a Docker daemon:
#
#   base      Debian bookworm (debootstrap --variant=minbase) with python3.11 and venv
#   pause     the CRI's sandbox image: Debian's busybox-static sleeping
#   operator  operator/Dockerfile       --build-arg BASE=<base>
#   trainer   trainer-image/Dockerfile  --build-arg BASE=<base>
#
# Every image is named by a hash of what goes into it (the Dockerfile, the build context the
# .dockerignore lets through, the base's name, the build arguments), so a warm run builds
# nothing and a changed source file rebuilds only its images; buildah's storage lives under
# $KUBETRAIN_CACHE (default ~/.cache/kubetrain)/images/. The machine's pip cache is mounted into
# the builds (where it keeps wheels, they are not fetched twice). Needs root and
# hack/node/install.sh's packages. After a build (or with KUBETRAIN_IMAGES_PRUNE=1) the storage
# is pruned to the current images (every name's current key; other keys' for 2 hours) and the
# layers they are made of: older builds, layers only they used, build stages, and what killed
# builds left go, so the disk holds about one generation plus the layer cache the next build
# reuses. Builds take turns (a lock).
#
#   hack/images/build.sh [base|pause|operator|trainer ...]   (default: pause operator trainer)
#     stdout: one line per image, "<name> <image reference>"; logs go to stderr.
#   hack/images/build.sh --import SOCKET REF...
#     streams each image that containerd at SOCKET lacks into its k8s.io namespace
#     (buildah push docker-archive | missing_blobs.py | ctr images import: no archive is written
#     to disk, and only the layers containerd lacks are sent).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}/images
mirror=${KUBETRAIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
pip_cache=${PIP_CACHE_DIR:-$HOME/.cache/pip}
ca_bundle=${KUBETRAIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
base_packages=python3,python3-venv,python-is-python3,ca-certificates
mkdir -p "$cache" "$pip_cache"
buildah=(buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver overlay)
log() { echo "hack/images/build.sh: $*" >&2; }
key() { sha256sum | cut -c1-16; }
has_image() { "${buildah[@]}" inspect --type image "$1" >/dev/null 2>&1; }
# Bump when the way images are made changes (not how they are moved): it is part of every key.
recipe=1

# The files the .dockerignore lets into the build context, hashed by content.
context_hash() {
  (cd "$root" && find pyproject.toml trainer-image/kubetrain trainer-image/constraints.txt \
    operator/kubetrain_operator operator/constraints.txt -name __pycache__ -prune -o -type f -print \
    | LC_ALL=C sort | xargs sha256sum) | key
}

# Stream the images containerd at $1 lacks into its k8s.io namespace.
import_images() {
  local socket=$1 ref; shift
  local ctr=(ctr --address "$socket" -n k8s.io)
  for ref in "$@"; do
    if "${ctr[@]}" images ls -q "name==$ref" | grep -qx "$ref"; then continue; fi
    local t0=$SECONDS have; have=$(mktemp)
    "${ctr[@]}" content ls -q > "$have"
    # Only the layers containerd lacks travel on (a rebuilt image shares all but its top one).
    "${buildah[@]}" push -q "$ref" "docker-archive:/dev/stdout:$ref" \
      | python3 "$here/missing_blobs.py" "$ref" "$have" | "${ctr[@]}" images import - >&2
    rm -f "$have"
    "${ctr[@]}" images ls -q "name==$ref" | grep -qx "$ref" || { log "importing $ref failed"; exit 1; }
    log "imported $ref in $((SECONDS - t0)) s"
  done
}

base_ref() { echo "localhost/kubetrain/base:$(printf '%s\n' bookworm minbase "$base_packages" "$mirror" | key)"; }

build_base() {
  local ref; ref=$(base_ref)
  if ! has_image "$ref"; then
    local t0=$SECONDS dir; dir=$(mktemp -d "$cache/rootfs-XXXXXX")
    log "base: debootstrap bookworm ($base_packages) from $mirror"
    debootstrap --variant=minbase --include="$base_packages" bookworm "$dir" "$mirror" \
      >"$cache/debootstrap.log" 2>&1 || { tail -30 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    local c m; c=$("${buildah[@]}" from scratch)
    m=$("${buildah[@]}" mount "$c")
    cp -a "$dir/." "$m/"
    "${buildah[@]}" umount "$c" >/dev/null
    rm -rf "$dir"
    "${buildah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd /bin/bash "$c"
    "${buildah[@]}" commit -q --rm "$c" "$ref" >/dev/null
    log "base: built $ref in $((SECONDS - t0)) s"
    built=1
  fi
  made+=("$ref")
  echo "base $ref"
}

pause_ref() { echo "localhost/kubetrain/pause:$( { echo "$recipe"; sha256sum < /bin/busybox; } | key)"; }

build_pause() {
  local ref busybox=/bin/busybox
  ref=$(pause_ref)
  if ! has_image "$ref"; then
    local c; c=$("${buildah[@]}" from scratch)
    "${buildah[@]}" copy -q "$c" "$busybox" /bin/busybox >/dev/null
    "${buildah[@]}" config --entrypoint '["/bin/busybox","sleep","2147483647"]' "$c"
    "${buildah[@]}" commit -q --rm "$c" "$ref" >/dev/null
    log "pause: built $ref"
    built=1
  fi
  made+=("$ref")
  echo "pause $ref"
}

dockerfile_ref() {  # name dockerfile
  echo "localhost/kubetrain/$1:$( { echo "$recipe $(base_ref)"; cat "$root/$2" "$root/.dockerignore"; context_hash; } | key)"
}

build_dockerfile() {  # name dockerfile
  local name=$1 dockerfile="$root/$2" base ref
  base=$(base_ref)
  has_image "$base" || build_base >/dev/null
  ref=$(dockerfile_ref "$name" "$2")
  if ! has_image "$ref"; then
    local t0=$SECONDS
    log "$name: building $ref from $2"
    # --layers: the dependency layer is reused while constraints.txt is unchanged. The machine's
    # CA bundle and a pip.conf naming it are mounted (not copied): pip then trusts what this
    # machine trusts (a TLS-intercepting proxy's CA, say), and the image keeps Debian's bundle.
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$cache/pip.conf"
    "${buildah[@]}" bud -q --layers --network host -f "$dockerfile" \
      --build-arg BASE="$base" --build-arg PIP_CACHE_MOUNT=/pip-cache -v "$pip_cache:/pip-cache" \
      -v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro" -v "$cache/pip.conf:/etc/pip.conf:ro" \
      -t "$ref" "$root" >&2
    log "$name: built in $((SECONDS - t0)) s"
    built=1
  fi
  made+=("$ref")
  echo "$name $ref"
}

# Keep the current image of every name (and what this run made: sources may have changed since)
# and the layers they are made of; remove the rest.
prune() {
  local t0=$SECONDS before old keep
  keep=" ${made[*]} $(base_ref) $(pause_ref) $(dockerfile_ref operator operator/Dockerfile)"
  keep+=" $(dockerfile_ref trainer trainer-image/Dockerfile) "
  before=$(du -sm "$cache/storage" | cut -f1)
  # Older builds: images named like ours with another key, once they are 2 hours old (another
  # checkout's tests, say CI's clone beside a working tree, may be about to import a newer one).
  local now name created; now=$(date +%s)
  while read -r name created; do
    case "$keep" in *" $name "*) continue ;; esac
    [ $((now - created)) -lt 7200 ] || "${buildah[@]}" rmi -f "$name" >/dev/null || true
  done < <("${buildah[@]}" images --format '{{.Name}}:{{.Tag}} {{.CreatedAtRaw.Unix}}' \
             | grep '^localhost/kubetrain/' || true)
  # Working containers: a finished build leaves none, so these are killed builds' (the lock
  # says none runs now); they pin their images.
  "${buildah[@]}" rm --all >/dev/null || true
  # Unnamed images nothing is built on: older builds' layers and every build stage (the stage
  # copies the sources, which change whenever the key does: a next build could not reuse it).
  # The current images' own layers have children and stay (the dependency layer is reused).
  "${buildah[@]}" rmi --prune >/dev/null || true
  log "pruned the image storage from $before MB to $(du -sm "$cache/storage" | cut -f1) MB" \
    "in $((SECONDS - t0)) s"
}

if [ "${1:-}" = --import ]; then
  [ $# -ge 2 ] || { echo "usage: $0 --import SOCKET REF..." >&2; exit 2; }
  shift
  exec 9>"$cache/build.lock"
  flock -s 9  # no prune removes an image while it is streamed out
  import_images "$@"
  exit 0
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pause operator trainer)
for t in "${targets[@]}"; do
  case "$t" in
    base|pause|operator|trainer) ;;
    *) echo "usage: $0 [base|pause|operator|trainer ...]" >&2; exit 2 ;;
  esac
done
exec 9>"$cache/build.lock"
flock 9
built=0
made=()
for t in "${targets[@]}"; do
  case "$t" in
    base) build_base ;;
    pause) build_pause ;;
    operator) build_dockerfile operator operator/Dockerfile ;;
    trainer) build_dockerfile trainer trainer-image/Dockerfile ;;
  esac
done
if [ "$built" = 1 ] || [ -n "${KUBETRAIN_IMAGES_PRUNE:-}" ]; then prune; fi
