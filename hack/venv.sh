#!/usr/bin/env bash
# Create (once) and print the path of this clone's Python environment.
#
# Two layers, so that torch's multi-GB wheels are installed once per machine while every clone
# runs its own code:
# - a base venv outside the clone, ~/.cache/kubetrain/venv-<key>, keyed by the Python version and
#   the dependency lists in pyproject.toml. It holds the dependencies only, never the project, so
#   any number of clones (CI) share it.
# - this clone's layer, .venv/ in the clone (ignored by git): a venv without packages of its own
#   whose .pth file puts this clone's trainer-image/ and operator/ on sys.path, then the base's
#   site-packages; its `kubetrain` command and its copies of the base's commands (pytest, ruff,
#   torchrun...) run this clone's code. Made in well under a second; rebuilt when the base changes.
#   Deleting a clone deletes its layer, and no other clone's `kubetrain` depends on it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${KUBETRAIN_CACHE:-$HOME/.cache/kubetrain}
python=${PYTHON:-python3}

key=$("$python" - "$root/pyproject.toml" <<'PY'
import hashlib, sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = {"base": p.get("dependencies", []), **p.get("optional-dependencies", {})}
blob = repr((sys.version_info[:2], sorted((k, sorted(v)) for k, v in deps.items())))
print(hashlib.sha256(blob.encode()).hexdigest()[:12])
PY
)
venv="$cache/venv-$key"
mkdir -p "$cache"
# One creator at a time: a second caller waits here instead of deleting a venv being built.
exec 9>"$cache/.venv-$key.lock"
flock 9
if [ ! -x "$venv/.complete" ]; then
  echo "hack/venv.sh: creating $venv (first run on this machine; torch is large)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  # Install the dependencies only (not the project), so the venv is clone-independent.
  "$venv/bin/python" - "$root/pyproject.toml" > "$venv/requirements.txt" <<'PY'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
for d in p.get("dependencies", []) + sum(p.get("optional-dependencies", {}).values(), []):
    print(d)
PY
  "$venv/bin/pip" install -q -r "$venv/requirements.txt" >&2
  printf '#!/bin/sh\n' > "$venv/.complete" && chmod +x "$venv/.complete"
fi
flock -u 9

# This clone's layer over the base.
layer="$root/.venv"
stamp="kubetrain layer: base $venv, clone $root"
exec 8>"$cache/.layer-$(printf %s "$root" | sha256sum | cut -c1-12).lock"
flock 8
if [ "$(cat "$layer/.kubetrain-layer" 2>/dev/null)" != "$stamp" ]; then
  if [ -e "$layer" ] && [ ! -e "$layer/.kubetrain-layer" ]; then
    echo "hack/venv.sh: $layer exists and was not made by this script; move it away" >&2
    exit 1
  fi
  rm -rf "$layer"
  "$venv/bin/python" -m venv --without-pip "$layer"
  site=$("$layer/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  base_site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  # Lines are appended to sys.path in order: this clone's packages come before anything the base
  # holds (addsitedir also runs the base's own .pth files).
  printf '%s\n%s\nimport site; site.addsitedir(%s)\n' "$root/trainer-image" "$root/operator" \
    "'$base_site'" > "$site/00-kubetrain-layer.pth"
  for cmd in "$venv"/bin/*; do
    name=${cmd##*/}
    case $name in python*|activate*|Activate.ps1|kubetrain) continue ;; esac
    if [ "$(head -c 2 "$cmd")" = "#!" ] && head -n 1 "$cmd" | grep -q "^#!$venv/bin/python"; then
      # A Python entry point: the same script, run by this layer's interpreter.
      { echo "#!$layer/bin/python"; tail -n +2 "$cmd"; } > "$layer/bin/$name"
      chmod +x "$layer/bin/$name"
    else
      ln -s "$cmd" "$layer/bin/$name"  # a native program (ruff)
    fi
  done
  # [project.scripts] of pyproject.toml.
  printf '#!%s\nimport sys\n\nfrom kubetrain.cli.main import main\n\nsys.exit(main())\n' \
    "$layer/bin/python" > "$layer/bin/kubetrain"
  chmod +x "$layer/bin/kubetrain"
  echo "$stamp" > "$layer/.kubetrain-layer"
fi
flock -u 8
echo "$layer"
