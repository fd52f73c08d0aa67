"""The commands of docs/cluster.md, and which test runs each (kept in step by a unit test)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"

INSTALL = "helm install kubetrain charts/kubetrain --namespace kubetrain-system --create-namespace"
ROLLOUT = "kubectl -n kubetrain-system rollout status deployment/kubetrain-operator --timeout=120s"
APPLY = "kubectl apply -f examples/cpu-cluster.yaml"
WATCH = "kubectl get tj -w"
WAIT = "kubectl wait tj/cpu-ddp --for=jsonpath={.status.phase}=Succeeded --timeout=15m"
GET_WIDE = "kubectl get tj cpu-ddp -o wide"
DESCRIBE = "kubectl describe tj cpu-ddp"
PODS = "kubectl get pods -l kubetrain.io/job-name=cpu-ddp"
EVENTS = "kubectl get events --field-selector involvedObject.name=cpu-ddp"
OPERATOR = "kubectl -n kubetrain-system get deployment,pods"
UPGRADE = (
    "helm upgrade kubetrain charts/kubetrain --namespace kubetrain-system --reuse-values"
    " --set workers=8"
)
UNINSTALL = "helm uninstall kubetrain --namespace kubetrain-system"
DELETE_JOBS = "kubectl delete tj --all --all-namespaces"
DELETE_CRD = "kubectl delete crd trainingjobs.kubetrain.io"
APPLY_CRD = "kubectl apply --server-side -f charts/kubetrain/crds/"

# Run by tests/integration/chart/test_cluster_doc.py.
EXERCISED = {
    INSTALL, ROLLOUT, APPLY, WATCH, WAIT, GET_WIDE, DESCRIBE, PODS, EVENTS, OPERATOR,
    UPGRADE, UNINSTALL, DELETE_JOBS, DELETE_CRD, APPLY_CRD,
}  # fmt: skip
# Not run by that test, and why.
_OWN_CLUSTER = (
    "the test starts a cluster of its own (a control plane and a real node: "
    "kubetrain_testenv.real_cluster), rather than touching the user's ~/.cache dev cluster"
)
ELSEWHERE = {
    "KUBETRAIN_DEV_CLUSTER_THEN= hack/dev-cluster.sh up": _OWN_CLUSTER,
    "export KUBECONFIG=~/.cache/kubetrain/dev-cluster/kubeconfig": _OWN_CLUSTER,
    'export PATH="$(hack/control-plane/build.sh):$PATH"': "the test puts the same directory "
    "first on PATH",
}


def doc_commands(text: str | None = None) -> list[str]:
    """Every `$ command` line of the console blocks, in order."""
    text = DOC.read_text() if text is None else text
    return re.findall(r"^\$ (.+)$", text, flags=re.MULTILINE)
