"""The Argo CD health check (deploy/argocd/health-trainingjob.lua), run by a real Lua.

Argo CD runs it with a global `obj` (the resource) and reads `status` and `message` of the
table it returns; so do these tests, with `lua5.4` from Debian (hack/test-deps.sh installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from lua_table import to_lua

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy" / "argocd" / "health-trainingjob.lua"
EXAMPLE = yaml.safe_load((ROOT / "examples" / "cpu-cluster.yaml").read_text())
LUA = "lua5.4"


def lua() -> str:
    path = shutil.which(LUA)
    if path is None:
        pytest.fail(
            f"{LUA} is not installed: run `bash hack/test-deps.sh` (apt-get install -y lua5.4)",
            pytrace=False,
        )
    return path


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the check on `obj` as Argo CD does; return (status, message)."""
    program = (
        f"obj = {to_lua(obj)}\n"
        f"local hs = dofile({to_lua(str(SCRIPT))})\n"
        'io.write(hs.status, "\\n", hs.message or "")\n'
    )
    done = subprocess.run([lua(), "-"], input=program, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    status, _, message = done.stdout.partition("\n")
    return status, message


def job(phase: str | None = None, suspend: bool = False, **status: Any) -> dict[str, Any]:
    obj = {**EXAMPLE, "spec": {**EXAMPLE["spec"]}}
    obj["spec"]["runPolicy"] = {**obj["spec"]["runPolicy"], "suspend": suspend}
    if phase is not None or status:
        obj["status"] = {**({"phase": phase} if phase else {}), **status}
    return obj


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("Pending", "Progressing"),
        ("Starting", "Progressing"),
        ("Running", "Progressing"),
        ("Restarting", "Progressing"),
        ("Succeeded", "Healthy"),
        ("Failed", "Degraded"),
        ("Suspended", "Suspended"),
        (None, "Progressing"),
    ],
)
def test_phase_maps_to_health(phase: str | None, expected: str) -> None:
    assert health(job(phase))[0] == expected


def test_suspended_by_spec_before_the_operator_reacts() -> None:
    assert health(job("Running", suspend=True))[0] == "Suspended"
    assert health(job(None, suspend=True))[0] == "Suspended"


def test_finished_jobs_stay_finished_when_suspended() -> None:
    assert health(job("Succeeded", suspend=True))[0] == "Healthy"
    assert health(job("Failed", suspend=True))[0] == "Degraded"


def test_messages_carry_reason_and_progress() -> None:
    status, message = health(
        job("Failed", reason="BackoffLimitExceeded", message="3 restarts used")
    )
    assert (status, message) == ("Degraded", "BackoffLimitExceeded: 3 restarts used")
    progress = {"step": 120, "totalSteps": 300, "loss": 0.5}
    assert health(job("Running", progress=progress)) == ("Progressing", "step 120/300")
    assert health(job(None)) == ("Progressing", "Waiting for the kubetrain operator")


def test_unknown_phase_is_unknown() -> None:
    assert health(job("Exploded"))[0] == "Unknown"


def test_the_check_in_the_docs_is_this_file() -> None:
    doc = (ROOT / "docs" / "gitops.md").read_text()
    body = SCRIPT.read_text()
    indented = "".join(f"    {line}\n" if line else "\n" for line in body.splitlines())
    assert indented in doc, "docs/gitops.md must embed deploy/argocd/health-trainingjob.lua"
