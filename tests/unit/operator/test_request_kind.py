"""The operator's request metric names each request as the API server's audit log does."""

from __future__ import annotations

import pytest

from kubetrain_operator.kube import request_kind

JOBS = "/apis/kubetrain.io/v1alpha1/namespaces/team/trainingjobs"


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/api/v1/namespaces/team/pods", ("list", "pods")),
        ("GET", "/api/v1/namespaces/team/pods?labelSelector=a%3Db", ("list", "pods")),
        ("GET", "/api/v1/namespaces/team/pods/w-0", ("get", "pods")),
        ("DELETE", "/api/v1/namespaces/team/pods/w-0", ("delete", "pods")),
        ("PATCH", f"{JOBS}/j/status", ("patch", "trainingjobs/status")),
        ("GET", f"{JOBS}/j", ("get", "trainingjobs")),
        ("POST", "/api/v1/namespaces/team/events", ("create", "events")),
        ("PATCH", "/apis/kueue.x-k8s.io/v1beta1/namespaces/team/workloads/w/status",
         ("patch", "workloads/status")),
        ("GET", "/apis/kueue.x-k8s.io/v1beta1/resourceflavors/cpu", ("get", "resourceflavors")),
        ("GET", "/api/v1/namespaces/team", ("get", "namespaces")),
    ],
)
def test_request_kind(method: str, path: str, kind: tuple[str, str]) -> None:
    assert request_kind(method, path) == kind
