#!/usr/bin/env bash
# Build (once) and print the path of a MinIO server binary, the S3-compatible server the object
# storage tests start on loopback (tests/support/kubetrain_testenv/object_store.py). Built from the
# Go module proxy at a pinned version and cached under ~/.cache/kubetrain/bin/minio-<key>, where
# <key> hashes the pinned version and the Go version; a warm run builds nothing. Concurrent
# callers wait on a lock instead of building twice. Logs go to stderr; stdout is the path only.
# MinIO is AGPLv3: it runs as a separate test process only and is never part of kubetrain's code
# or images.
set -euo pipefail
# The newest commit of minio/minio on the module proxy when pinned (the repository has no semver
# tags, so its versions are pseudo-versions). Change it deliberately: it keys the cache.
version=v0.0.0-20260212201848-7aac2a2c5b7c
cache=${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}

go=$(command -v go || echo /usr/local/go/bin/go)
[ -x "$go" ] || { echo "hack/minio/build.sh: no Go toolchain (see hack/control-plane/build.sh)" >&2; exit 1; }

key=$( { echo "$version"; "$go" env GOVERSION; } | sha256sum | cut -c1-16)
out="$cache/bin/minio-$key"
if [ -x "$out/minio" ]; then
  echo "$out/minio"
  exit 0
fi

mkdir -p "$cache/bin"
exec 9>"$cache/bin/.minio-$key.lock"
flock 9  # another caller may be building it: wait, then use its result
if [ -x "$out/minio" ]; then
  echo "$out/minio"
  exit 0
fi

tmp=$(mktemp -d "$cache/bin/.minio-build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "hack/minio/build.sh: building github.com/minio/minio@$version (a few minutes, once)" >&2
start=$(date +%s)
(cd "$tmp" && GOFLAGS="-mod=mod -p=${KUBETRAIN_BUILD_JOBS:-2}" CGO_ENABLED=0 GOBIN="$tmp" \
  "$go" install -trimpath -ldflags "-s -w" "github.com/minio/minio@$version")
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "hack/minio/build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$out/minio"
