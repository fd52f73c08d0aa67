"""Parity: `kubetrain validate --cluster` and the real API server give the same verdict on every
file of both spec corpora (tests/cases/), and name the same fields where both reject.

The server gets the file's bytes as they are (Content-Type application/yaml), as a server-side
dry run with strict field validation, so its own YAML reader (sigs.k8s.io/yaml, go-yaml v2),
strict decoding, metadata checks, schema and CEL rules all take part. Where the verdicts differ
on purpose, the case says why (and this test fails if they stop differing).
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from spec_cases import SpecCase, invalid_cases, valid_cases, validate_locally

from kubetrain_testenv import ControlPlane

GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"
CASES = invalid_cases() + valid_cases()


@pytest.fixture(scope="module")
def crd_ready(control_plane: ControlPlane) -> ControlPlane:
    root = Path(__file__).resolve().parents[3]
    applied = control_plane.kubectl(
        "apply", "--server-side", "-f", str(root / "crds" / f"{GROUP}_{PLURAL}.yaml")
    )
    assert applied.returncode == 0, applied.stderr
    control_plane.wait_crd_established(f"{PLURAL}.{GROUP}")
    return control_plane


SERVER_REQUEST_LIMIT = 3 * 1024 * 1024  # kube-apiserver's --max-request-bytes default for writes


def server_verdict(cp: ControlPlane, namespace: str, data: bytes) -> tuple[int, dict]:
    """HTTP status and Status body of a strict server-side dry-run create of the raw YAML."""
    url = (
        f"{cp.server}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        "?dryRun=All&fieldValidation=Strict"
    )
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Authorization", f"Bearer {cp.admin_token}")
    request.add_header("Content-Type", "application/yaml")
    request.add_header("Accept", "application/json")
    context = ssl.create_default_context(cafile=str(cp.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, {"message": body.decode(errors="replace")}
    except (ssl.SSLError, ConnectionError, urllib.error.URLError) as e:
        # Over its request limit the server answers 413 and closes at once; a client still
        # sending the body then sees EOF or a reset instead (a race that load makes likely).
        if len(data) <= SERVER_REQUEST_LIMIT:
            raise
        return 413, {"message": f"closed while {len(data)} bytes were sent ({e})"}


def server_fields(status: dict) -> set[str]:
    """The field paths a rejection names (causes, strict unknown and duplicate fields)."""
    causes = status.get("details", {}).get("causes", []) or []
    fields = {
        c["field"]
        for c in causes
        if c.get("field") not in (None, "", "<nil>")
        # With a wrong kind the server runs CEL rules on the object without its defaults,
        # and they fail on fields it has not filled in: an artifact, not a finding.
        and "no such key" not in c.get("message", "")
    }
    message = status.get("message", "")
    fields |= set(re.findall(r'(?:unknown|duplicate) field "([^"]+)"', message))
    return {f.removeprefix(".") for f in fields}


def server_lines(status: dict) -> set[int]:
    """Lines a YAML-level rejection names (go-yaml: 'line 31: key "seed" already set')."""
    return {int(n) for n in re.findall(r"\bline (\d+):", status.get("message", ""))}


def named_locally(field: str, local: list[str]) -> bool:
    """A server path is named locally as itself, a part of it, or a field inside it."""
    plain = re.sub(r"\[\d+\]", "", field)
    for path in local:
        mine = re.sub(r"\[\d+\]", "", path)
        if mine == plain or mine.startswith(plain + ".") or plain.startswith(mine + "."):
            return True
    return False


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_verdict_as_the_api_server(
    crd_ready: ControlPlane, namespace: str, case: SpecCase, tmp_path: Path
) -> None:
    local = validate_locally(case, tmp_path)
    assert local.code in (0, 2), local.stderr
    status, body = server_verdict(crd_ready, namespace, case.data)
    assert status < 500, f"server error {status}: {body}"
    server_accepts = status in (200, 201)
    local_accepts = local.code == 0
    if case.server_agrees:
        assert server_accepts == local_accepts, (
            f"kubetrain {'accepts' if local_accepts else 'rejects'}, the API server "
            f"{'accepts' if server_accepts else 'rejects'}: {body.get('message', body)}\n"
            f"{local.stderr}"
        )
    else:
        assert server_accepts != local_accepts, (
            f"the case says the verdicts differ ({case.why_differs}), but both "
            f"{'accept' if local_accepts else 'reject'}: {body.get('message', '')}"
        )
    if server_accepts or local_accepts:
        return
    local_fields = [field for _, field, _ in local.issues]
    for field in server_fields(body):
        assert named_locally(field, local_fields), (
            f"the API server names {field}, kubetrain does not: {local_fields}\n"
            f"{body.get('message', '')}"
        )
    local_lines = {line for line, _, _ in local.issues}
    for line in server_lines(body):
        # go-yaml v2 counts lines from 0 in parser errors (from 1 in scanner and decode errors).
        assert {line, line + 1} & local_lines, f"the server names line {line}: {local.stderr}"


@pytest.fixture(autouse=True)
def _no_leftovers(namespace: str) -> Iterator[None]:
    yield  # dry runs create nothing; the namespace fixture deletes the namespace
