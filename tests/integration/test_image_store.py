"""The machine's image store is shared, not held: a second real cluster started while the
session's runs clones the store (no import of its own) and runs a pod from the trainer image."""

from __future__ import annotations

from kubernetes import client

from kubetrain_testenv import ControlPlane, wait_for
from kubetrain_testenv.clients import kubernetes_client
from kubetrain_testenv.objects import python_pod
from kubetrain_testenv.pytest_support import started_real_cluster
from kubetrain_testenv.real_node import RealNode, leftovers


def test_a_second_cluster_runs_beside_the_sessions_on_a_clone_of_the_store(
    control_plane: ControlPlane, nodes: list[RealNode]
) -> None:
    assert all(node.paths.private_root.is_dir() for node in nodes)  # the session's, running
    with started_real_cluster(images=("pause", "trainer"), nodes=1) as (cp, (node,)):
        timings = node.timings
        # The images are in the store already: nothing streams (a re-import takes minutes).
        assert timings["images imported into the store"] < 30, timings
        assert timings["containerd root cloned"] < 30, timings
        core = client.CoreV1Api(kubernetes_client(cp.kubeconfig))
        ref = node.images["trainer"].ref
        pod = python_pod(
            "hello", "import torch, kubetrain; print('hello from', torch.__version__)",
            container={"image": ref, "imagePullPolicy": "Never"},
        )  # fmt: skip
        core.create_namespaced_pod("default", pod)

        def done() -> str | None:
            phase = core.read_namespaced_pod("hello", "default").status.phase
            assert phase != "Failed", cp.pod_log("default", "hello")
            return phase if phase == "Succeeded" else None

        wait_for(done, 120, what="the pod on the second cluster to succeed")
        assert "hello from" in cp.pod_log("default", "hello")
    assert not leftovers(node)
    assert all(n.paths.private_root.is_dir() for n in nodes)  # the session's cluster is untouched
