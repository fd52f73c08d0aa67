#!/usr/bin/env bash
# Create (once) and print the path of the project's Python environment.
#
# The venv lives outside the clone, keyed by the Python version and the
# dependency lists in pyproject.toml, so a fresh clone (CI) reuses it and torch's
# multi-GB wheels are installed once per machine. The project itself is then
# installed editable with --no-deps, which takes seconds.
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
# Point the venv at this clone (fast: no dependency resolution).
if ! "$venv/bin/python" -c "import kubetrain, sys; sys.exit(0 if kubetrain.__file__.startswith('$root/') else 1)" 2>/dev/null; then
  # setuptools warns about editable installs on every switch of clone; nothing to act on.
  PYTHONWARNINGS=ignore "$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$root" >&2
fi
echo "$venv"
