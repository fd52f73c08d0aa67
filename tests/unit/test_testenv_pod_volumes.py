"""Volume contents and bind mounts of the node agent (pure)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubetrain_testenv.pod_env import PodRuntime
from kubetrain_testenv.pod_volumes import Mount, VolumeError, container_mounts, volume_files

RUNTIME = PodRuntime("127.1.0.3", "127.0.0.1", "node-a")
POD = {"metadata": {"name": "p", "namespace": "ml", "labels": {"a": "1"}}, "spec": {}}
CONFIGMAPS = {
    "spec": {
        "data": {"job.yaml": "epochs: 2\n"},
        "binaryData": {"blob": base64.b64encode(b"\x00\x01").decode()},
    },
    "kube-root-ca.crt": {"data": {"ca.crt": "CA"}},
}
SECRETS = {"creds": {"data": {"password": base64.b64encode(b"hunter2").decode()}}}


def token(audience: str | None, expiration: int) -> str:
    return f"token-{audience}-{expiration}"


@pytest.mark.parametrize(
    ("volume", "files"),
    [
        ({"emptyDir": {}}, {}),
        ({"hostPath": {"path": "/data"}}, None),
        ({"configMap": {"name": "spec"}}, {"job.yaml": b"epochs: 2\n", "blob": b"\x00\x01"}),
        (
            {
                "configMap": {
                    "name": "spec",
                    "items": [{"key": "job.yaml", "path": "conf/job.yaml"}],
                }
            },
            {"conf/job.yaml": b"epochs: 2\n"},
        ),
        ({"configMap": {"name": "missing", "optional": True}}, {}),
        ({"secret": {"secretName": "creds"}}, {"password": b"hunter2"}),
        (
            {
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                }
            },
            {"labels": b'a="1"'},
        ),
        (
            {
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ]
                }
            },
            {"token": b"token-None-3607", "ca.crt": b"CA", "namespace": b"ml"},
        ),
        (
            {
                "projected": {
                    "sources": [{"serviceAccountToken": {"path": "t", "audience": "vault"}}]
                }
            },
            {"t": b"token-vault-3607"},
        ),
    ],
)
def test_volume_files(volume: dict[str, Any], files: dict[str, bytes] | None) -> None:
    result = volume_files(POD, {"name": "v", **volume}, RUNTIME, CONFIGMAPS, SECRETS, token)
    assert result == files


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"configMap": {"name": "missing"}}, "not found"),
        ({"secret": {"secretName": "creds", "items": [{"key": "nope", "path": "x"}]}}, "no key"),
        ({"persistentVolumeClaim": {"claimName": "data"}}, "unsupported kind"),
    ],
)
def test_volume_errors(volume: dict[str, Any], message: str) -> None:
    with pytest.raises(VolumeError, match=message):
        volume_files(POD, {"name": "v", **volume}, RUNTIME, CONFIGMAPS, SECRETS, token)


def test_container_mounts_are_ordered_parents_first() -> None:
    container = {
        "name": "c",
        "volumeMounts": [
            {"name": "spec", "mountPath": "/workspace/spec", "readOnly": True},
            {"name": "work", "mountPath": "/workspace"},
            {"name": "work", "mountPath": "/data", "subPath": "d"},
        ],
    }
    mounts = container_mounts(container, {"spec": "/sb/spec", "work": "/sb/work"})
    assert mounts == [
        Mount("/sb/work", "/workspace"),
        Mount("/sb/work/d", "/data"),
        Mount("/sb/spec", "/workspace/spec", read_only=True),
    ]


def test_mount_of_an_unknown_volume_is_an_error() -> None:
    with pytest.raises(VolumeError, match="no volume 'x'"):
        container_mounts({"name": "c", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}, {})
