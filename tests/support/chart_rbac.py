"""The permissions the chart grants the operator: the one table tests compare against.

(apiGroup, resource) → verbs. Change it together with charts/kubetrain/templates/_helpers.tpl
and operator/kubetrain_operator/kube.py.
"""

from __future__ import annotations

# Granted in every watched namespace (or cluster-wide by a ClusterRole).
NAMESPACED: dict[tuple[str, str], frozenset[str]] = {
    ("kubetrain.io", "trainingjobs"): frozenset({"get", "list", "watch", "delete"}),
    ("kubetrain.io", "trainingjobs/status"): frozenset({"get", "patch"}),
    ("kubetrain.io", "trainingjobs/finalizers"): frozenset({"update"}),
    ("", "pods"): frozenset({"list", "watch", "create", "patch", "delete"}),
    ("", "services"): frozenset({"list", "watch", "create", "patch"}),
    ("", "configmaps"): frozenset({"list", "watch", "create", "patch"}),
    ("", "serviceaccounts"): frozenset({"list", "watch", "create", "patch"}),
    ("rbac.authorization.k8s.io", "roles"): frozenset(
        {"list", "watch", "create", "patch"}
    ),
    ("rbac.authorization.k8s.io", "rolebindings"): frozenset(
        {"list", "watch", "create", "patch"}
    ),
    ("", "events"): frozenset({"create"}),
    ("kueue.x-k8s.io", "workloads"): frozenset({"get", "list", "watch", "create", "patch"}),
    ("kueue.x-k8s.io", "workloads/status"): frozenset({"patch"}),
}

# Always cluster-scoped, kopf's own (framework, not the operator's logic): its CRD observer.
CLUSTER: dict[tuple[str, str], frozenset[str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"list", "watch"}),
    # The operator's cluster-scoped reads for Kueue (flavor, PriorityClass).
    ("kueue.x-k8s.io", "resourceflavors"): frozenset({"get"}),
    ("scheduling.k8s.io", "priorityclasses"): frozenset({"get"}),
}
# Added when watching named namespaces: kopf's namespace observer (unused cluster-wide).
CLUSTER_NAMESPACED_MODE = {**CLUSTER, ("", "namespaces"): frozenset({"list", "watch"})}
