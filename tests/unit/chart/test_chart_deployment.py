"""The operator Deployment: one replica, Recreate, hardened, probed, told what to watch."""

from __future__ import annotations

import pytest
from kubetrain_chart import VARIANTS, by_kind, render

from kubetrain_operator.__main__ import parse_args


def _deployment(values: dict | None = None) -> dict:
    (deployment,) = by_kind(render(values), "Deployment")
    return deployment


def _container(values: dict | None = None) -> dict:
    (container,) = _deployment(values)["spec"]["template"]["spec"]["containers"]
    return container


def test_one_replica_replaced_not_rolled() -> None:
    spec = _deployment()["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_security_context_is_restricted() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == "kubetrain-operator"
    context = _container()["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_probes_and_ports_use_the_operators_endpoints() -> None:
    container = _container({"ports": {"metrics": 9100, "health": 9101}})
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9100, "health": 9101}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "--metrics-port=9100" in container["args"]
    assert "--log-format=json" in container["args"]
    assert "--health-port=9101" in container["args"]
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}


def test_args_say_what_to_watch() -> None:
    assert "--all-namespaces" in _container()["args"]
    args = _container(VARIANTS["namespaced"])["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_operator_accepts_the_args(variant: str) -> None:
    """The chart's args parse with the operator's own argument parser."""
    container = _container(VARIANTS[variant])
    assert container["command"] == ["python", "-m", "kubetrain_operator"]
    args = parse_args(container["args"])
    assert args.all_namespaces == (variant != "namespaced")


def test_image_defaults_to_the_app_version() -> None:
    assert _container()["image"] == "ghcr.io/kubetrain/operator:0.1.0"
    assert _container({"image": {"tag": "dev"}})["image"] == "ghcr.io/kubetrain/operator:dev"
