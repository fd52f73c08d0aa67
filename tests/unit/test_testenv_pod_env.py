"""The node agent's env resolution matches the kubelet's (pure, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain_testenv.pod_env import (
    EnvError,
    PodRuntime,
    container_argv,
    container_env,
    expand,
    field_ref,
    referenced_objects,
)

INDEX_PATH = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
RUNTIME = PodRuntime(pod_ip="127.1.0.7", host_ip="127.0.0.1", node_name="node-a")
POD: dict[str, Any] = {
    "metadata": {
        "name": "trainer-0",
        "namespace": "ml",
        "uid": "u-1",
        "labels": {"app": "kt", "role": "worker"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "3"},
    },
    "spec": {"serviceAccountName": "kt"},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "trainer-0"),
        ("metadata.namespace", "ml"),
        ("metadata.uid", "u-1"),
        ("metadata.labels['role']", "worker"),
        ("metadata.labels['missing']", ""),
        (INDEX_PATH, "3"),
        ("metadata.labels", 'app="kt"\nrole="worker"'),
        ("spec.nodeName", "node-a"),
        ("spec.serviceAccountName", "kt"),
        ("status.podIP", "127.1.0.7"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
def test_field_ref(path: str, expected: str) -> None:
    assert field_ref(POD, path, RUNTIME) == expected


def test_unknown_field_ref_is_an_error() -> None:
    with pytest.raises(EnvError, match="unsupported fieldPath"):
        field_ref(POD, "status.phase", RUNTIME)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x-$(A)-$(B)", "x-1-two"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("no refs", "no refs"),
        ("$A", "$A"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "two"}) == expected


CONFIGMAPS = {"settings": {"mode": "fast", "lr": "0.1"}}
SECRETS = {"creds": {"password": "hunter2"}}


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"env": [{"name": "X", "value": "1"}]}, {"BASE": "b", "X": "1"}),
        ({"env": [{"name": "BASE", "value": "over"}]}, {"BASE": "over"}),
        ({"env": [{"name": "X", "value": "$(BASE)-x"}]}, {"BASE": "b", "X": "b-x"}),
        (
            {"envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}]},
            {"BASE": "b", "CFG_mode": "fast", "CFG_lr": "0.1"},
        ),
        (
            {
                "envFrom": [{"configMapRef": {"name": "settings"}}],
                "env": [{"name": "mode", "value": "slow"}],
            },
            {"BASE": "b", "mode": "slow", "lr": "0.1"},
        ),
        (
            {
                "env": [
                    {
                        "name": "P",
                        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
                    }
                ]
            },
            {"BASE": "b", "P": "hunter2"},
        ),
        (
            {
                "env": [
                    {
                        "name": "M",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                    }
                ]
            },
            {"BASE": "b", "M": "fast"},
        ),
        (
            {
                "env": [
                    {
                        "name": "M",
                        "valueFrom": {
                            "configMapKeyRef": {"name": "nope", "key": "k", "optional": True}
                        },
                    }
                ]
            },
            {"BASE": "b"},
        ),
        (
            {"envFrom": [{"secretRef": {"name": "nope", "optional": True}}]},
            {"BASE": "b"},
        ),
        (
            {
                "env": [
                    {
                        "name": "IDX",
                        "valueFrom": {"fieldRef": {"fieldPath": INDEX_PATH}},
                    },
                    {"name": "RANK", "value": "rank-$(IDX)"},
                ]
            },
            {"BASE": "b", "IDX": "3", "RANK": "rank-3"},
        ),
    ],
)
def test_container_env(container: dict[str, Any], expected: dict[str, str]) -> None:
    env = container_env(
        POD, {"name": "c", **container}, RUNTIME, {"BASE": "b"}, CONFIGMAPS, SECRETS
    )
    assert env == expected


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (
            {
                "env": [
                    {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}
                ]
            },
            "configMap 'nope'",
        ),
        (
            {"env": [{"name": "M", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
            "no key 'k'",
        ),
        ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, "not found"),
        (
            {"env": [{"name": "R", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]},
            "unsupported valueFrom",
        ),
    ],
)
def test_container_env_errors(container: dict[str, Any], message: str) -> None:
    with pytest.raises(EnvError, match=message):
        container_env(POD, {"name": "c", **container}, RUNTIME, {}, CONFIGMAPS, SECRETS)


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"command": ["python", "-c", "pass"]}, ["python", "-c", "pass"]),
        (
            {"command": ["torchrun"], "args": ["--rank=$(RANK)", "$$(RANK)"]},
            ["torchrun", "--rank=2", "$(RANK)"],
        ),
    ],
)
def test_container_argv(container: dict[str, Any], expected: list[str]) -> None:
    assert container_argv({"name": "c", **container}, {"RANK": "2"}) == expected


def test_container_without_command_cannot_run() -> None:
    with pytest.raises(EnvError, match="ignores images"):
        container_argv({"name": "c", "image": "busybox", "args": ["x"]}, {})


def test_referenced_objects() -> None:
    pod = {
        "spec": {
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s1"}}]}],
            "containers": [
                {
                    "name": "c",
                    "env": [
                        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c1", "key": "k"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}},
                    ],
                },
            ],
            "volumes": [
                {"name": "v1", "configMap": {"name": "c2"}},
                {"name": "v2", "secret": {"secretName": "s3"}},
                {
                    "name": "v3",
                    "projected": {
                        "sources": [
                            {"configMap": {"name": "kube-root-ca.crt"}},
                            {"serviceAccountToken": {"path": "token"}},
                        ]
                    },
                },
            ],
        }
    }
    assert referenced_objects(pod) == ({"c1", "c2", "kube-root-ca.crt"}, {"s1", "s2", "s3"})
