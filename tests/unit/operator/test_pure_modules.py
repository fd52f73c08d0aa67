"""The status computation is pure: it runs without kopf, the kubernetes client or torch."""

from __future__ import annotations

import subprocess
import sys

PURE = ["observe", "decision", "conditions", "status", "status_patch", "drift", "children"]
SCRIPT = f"""
import sys
for name in ("kopf", "kubernetes", "torch"):
    sys.modules[name] = None  # importing it now raises ImportError
for module in {PURE!r}:
    __import__("kubetrain_operator." + module)
"""


def test_the_status_modules_import_neither_kopf_nor_kubernetes_nor_torch():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
