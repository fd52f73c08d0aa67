"""`make dev-cluster`: a control plane and a real node left running in the background.

`up` starts `serve` detached and waits until it is ready, then prints the
`export KUBECONFIG=...` line; `down` stops it; `status` says whether it runs.
State lives in ~/.cache/kubetrain/dev-cluster/ ($KUBETRAIN_DEV_CLUSTER_DIR overrides).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from . import procs
from .control_plane import ControlPlane
from .real_cluster import real_cluster

READY_TIMEOUT = 1800.0  # a first real-node start builds binaries and images


def state_dir() -> Path:
    """$KUBETRAIN_DEV_CLUSTER_DIR, else <cache>/dev-cluster."""
    if os.environ.get("KUBETRAIN_DEV_CLUSTER_DIR"):
        return Path(os.environ["KUBETRAIN_DEV_CLUSTER_DIR"])
    cache = Path(os.environ.get("KUBETRAIN_CACHE", Path.home() / ".cache" / "kubetrain"))
    return cache / "dev-cluster"


def _ready(state: Path) -> dict[str, Any] | None:
    """The running cluster's description, or None if none runs."""
    try:
        info = json.loads((state / "ready.json").read_text())
        os.kill(info["pid"], 0)
        return info
    except (OSError, ValueError, KeyError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _export(info: dict[str, Any]) -> str:
    return f"export KUBECONFIG={shlex.quote(info['kubeconfig'])}"


def serve(state: Path, then: str | None) -> None:
    """Run the cluster in the foreground until SIGTERM/SIGINT (what `up` starts): a real node
    (containerd, kubelet, kube-proxy, CoreDNS) with the local images."""
    with real_cluster(("pause", "operator", "trainer")) as (cp, (node,)):
        images = {name: image.ref for name, image in node.images.items()}
        _serve(state, cp, then, {"images": images, "pod_logs": str(node.paths.pod_logs)})


def _serve(state: Path, cp: ControlPlane, then: str | None, more: dict[str, Any]) -> None:
    extra: subprocess.Popen[bytes] | None = None
    try:
        kubeconfig = state / "kubeconfig"
        shutil.copyfile(cp.kubeconfig, kubeconfig)
        if then:  # the hook for running more (the operator, say) against the cluster
            env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
            extra = procs.start(["sh", "-c", then], cp.log_path("extra"), cp.run_id, env=env)
        info = {
            "pid": os.getpid(),
            "kubeconfig": str(kubeconfig),
            "server": cp.server,
            "run_id": cp.run_id,
            "logs": str(cp.root / "logs"),
            **more,
        }
        (state / "ready.json").write_text(json.dumps(info, indent=2))
        threading.Event().wait()  # until a signal turns into SystemExit/KeyboardInterrupt
    finally:
        (state / "ready.json").unlink(missing_ok=True)
        if extra is not None:
            procs.stop(extra)


def up(state: Path, then: str | None) -> int:
    info = _ready(state)
    if info is None:
        state.mkdir(parents=True, exist_ok=True)
        (state / "ready.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "kubetrain_testenv", "serve"]
        if then:
            argv += ["--then", then]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        with open(state / "serve.log", "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        (state / "serve.pid").write_text(str(proc.pid))

        def started() -> dict[str, Any] | None:
            if proc.poll() is not None:
                tail = (state / "serve.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"dev cluster failed to start:\n{tail}")
            return _ready(state)

        info = procs.wait_for(started, READY_TIMEOUT, 0.2, "the dev cluster")
    print(f"# dev cluster with a real node (containerd + kubelet): {info['server']}")
    for name, ref in info["images"].items():
        print(f"# local image {name}: {ref} (imagePullPolicy IfNotPresent)")
    print(f"# component logs: {info['logs']}; pod logs: {info['pod_logs']}")
    print(_export(info))
    return 0


def down(state: Path) -> int:
    try:
        pid = int((state / "serve.pid").read_text())
    except (OSError, ValueError):
        print("no dev cluster", file=sys.stderr)
        return 0
    info = _ready(state)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        try:  # not our child, so no wait(): poll for its exit
            procs.wait_for(lambda: not _alive(pid), 60, what="the dev cluster to stop")
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
    if info is not None:
        procs.kill_survivors(info["run_id"])
    (state / "serve.pid").unlink(missing_ok=True)
    print("dev cluster stopped", file=sys.stderr)
    return 0


def status(state: Path) -> int:
    info = _ready(state)
    if info is None:
        print("dev cluster: not running")
        return 1
    print(f"dev cluster: running at {info['server']} (pid {info['pid']})")
    print(_export(info))
    return 0
