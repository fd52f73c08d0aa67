"""etcd + kube-apiserver + kube-controller-manager (+ kube-scheduler) as local processes."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from . import procs
from .assets import ensure_assets
from .kubeconfig import render_kubeconfig, write_kubeconfig
from .pki import Pki, client_cert, make_pki

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "kubetrain-admin"


class ControlPlaneError(RuntimeError):
    """A component failed to start; the message carries the tail of its log."""


class ControlPlane:
    """A throwaway Kubernetes control plane on loopback.

    `start()` runs etcd, kube-apiserver (RBAC, client-cert and token auth, a
    service-account issuer) and kube-controller-manager, and waits until the API
    server is ready and the controllers work. Pods run on real nodes (`real_cluster()`
    starts them with kube-scheduler; they register in `nodes`); with none, pods stay
    Pending. `stop()` (also run at exit and on SIGTERM) stops the nodes and kills every
    process, leaving none behind.
    """

    def __init__(
        self,
        assets: Path | None = None,
        root: Path | None = None,
        advertise_address: str | None = None,
    ) -> None:
        """`advertise_address`: an address of this machine that real nodes' pods reach (see
        kubetrain_testenv.real_node); the API server then listens on every address and the
        `kubernetes` Service points there. Default: loopback only, no `kubernetes` endpoints."""
        self.assets = assets
        self.advertise_address = advertise_address
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="kubetrain-testenv-"))
        self.run_id = secrets.token_hex(8)
        self.port = 0
        self.admin_token = secrets.token_hex(16)
        self.pki: Pki | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._etcd_dir: Path | None = None
        self.nodes: list[Any] = []  # real nodes (real_node.RealNode), stopped first by stop()
        self._stopped = False

    # -- addresses and credentials -------------------------------------------------

    @property
    def server(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in group system:masters)."""
        return self.root / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        assert self.pki is not None, "start() first"
        return self.pki.ca_cert

    def log_path(self, component: str) -> Path:
        """Where a component (etcd, kube-apiserver, ...) writes its output."""
        return self.root / "logs" / f"{component}.log"

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        """A pod container's stdout+stderr so far ("" if it has not started)."""
        query = f"?container={container}" if container else ""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/log{query}"
        try:  # through the kubelet, as `kubectl logs` reads it
            return self._send("GET", path).decode(errors="replace")
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 404):  # not started yet (or gone)
                return ""
            raise

    def token_kubeconfig(self, token: str, path: Path, namespace: str | None = None) -> Path:
        """Write a kubeconfig that authenticates with `token` (for example a ServiceAccount's)."""
        config = render_kubeconfig(
            self.server, self.ca_file, "token-user", token=token, namespace=namespace
        )
        return write_kubeconfig(path, config)

    def service_account_token(
        self, namespace: str, name: str, expiration_seconds: int = 3600
    ) -> str:
        """Mint a token for ServiceAccount `namespace/name` (TokenRequest API)."""
        body = {"spec": {"expirationSeconds": expiration_seconds}}
        answer = self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body
        )
        return str(answer["status"]["token"])

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path | None = None
    ) -> Path:
        """Write a kubeconfig acting as ServiceAccount `namespace/name` and return its path."""
        path = path or self.root / "kubeconfigs" / f"{namespace}.{name}.kubeconfig"
        return self.token_kubeconfig(self.service_account_token(namespace, name), path, namespace)

    def kubectl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin (check `.returncode` yourself; output is text)."""
        assert self.assets is not None, "start() first"
        argv = [str(self.assets / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def wait_crd_established(self, name: str, timeout: float = 60) -> None:
        """Poll until CustomResourceDefinition `name` is Established.

        (`kubectl wait --for=condition=Established` right after an apply can fail
        with "status.conditions accessor error" before the first status is written.)
        """

        def established() -> bool:
            crd = self.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
            conditions = crd.get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        procs.wait_for(established, timeout, what=f"CRD {name} to be Established")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One admin request to the API server; returns the decoded JSON answer."""
        return json.loads(self._send(method, path, body) or b"null")

    def _send(self, method: str, path: str, body: Any = None) -> bytes:
        """One admin request to the API server; returns the answer's bytes."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.admin_token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self._ssl_context(), timeout=30) as answer:
            return bytes(answer.read())

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- lifecycle -----------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> ControlPlane:
        """Start etcd, the API server and the controller manager; wait until usable."""
        atexit.register(self.stop)
        _stop_on_sigterm()
        started = time.monotonic()
        procs.reap_orphans()  # left by an earlier run whose owner was SIGKILLed
        _remove_orphaned_etcd_dirs()
        self.assets = self.assets or ensure_assets()
        extra_ips = (self.advertise_address,) if self.advertise_address else ()
        self.pki = make_pki(self.root / "pki", extra_ips)
        self.port = procs.free_port()
        write_kubeconfig(
            self.kubeconfig,
            render_kubeconfig(
                self.server,
                self.pki.ca_cert,
                ADMIN_USER,
                client_cert=self.pki.admin_cert,
                client_key=self.pki.admin_key,
            ),
        )
        self._start_etcd()
        self._start_apiserver()
        # The controller manager retries until the API server answers: start both at once.
        self._start_controller_manager()
        deadline = started + timeout
        self._wait("kube-apiserver", self._readyz, deadline, "kube-apiserver /readyz")
        # Controllers run once the "default" ServiceAccount and root CA ConfigMap appear.
        self._wait(
            "kube-controller-manager",
            lambda: (
                self._exists("/api/v1/namespaces/default/serviceaccounts/default")
                and self._exists("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
            ),
            deadline,
            "the controller manager to create default/default and kube-root-ca.crt",
        )
        return self

    def _bin(self, name: str) -> Path:
        assert self.assets is not None
        return self.assets / name

    def _spawn(self, name: str, argv: list[str | Path], env: dict[str, str] | None = None) -> None:
        self._procs[name] = procs.start(argv, self.log_path(name), self.run_id, env=env)

    def _check_alive(self, name: str) -> None:
        proc = self._procs[name]
        if proc.poll() is not None:
            tail = self.log_path(name).read_text(errors="replace")[-3000:]
            raise ControlPlaneError(f"{name} exited with code {proc.returncode}:\n{tail}")

    def _wait(self, name: str, predicate: Any, deadline: float, what: str) -> None:
        def ready() -> bool:
            self._check_alive(name)
            return bool(predicate())

        try:
            procs.wait_for(ready, max(deadline - time.monotonic(), 1.0), 0.1, what)
        except TimeoutError as exc:
            tail = self.log_path(name).read_text(errors="replace")[-3000:]
            raise ControlPlaneError(f"{exc}; {name} log ends with:\n{tail}") from exc

    def _start_etcd(self) -> None:
        # tmpfs when there is one: etcd's writes then cost nothing.
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else self.root
        # The owner in the name lets a later run remove it if this process is SIGKILLed.
        owner = procs.owner_tag().replace(":", "-")
        self._etcd_dir = Path(tempfile.mkdtemp(prefix=f"kubetrain-etcd-{owner}-", dir=base))
        self.etcd_port, peer = procs.free_port(), procs.free_port()
        client, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        self._spawn(
            "etcd",
            [
                self._bin("etcd"),
                "--data-dir",
                self._etcd_dir,
                "--unsafe-no-fsync",
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"default={peer_url}",
                "--log-level",
                "warn",
            ],
        )

    def _start_apiserver(self) -> None:
        assert self.pki is not None
        tokens = self.root / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER}-token,admin-token,"system:masters"\n')
        self._spawn(
            "kube-apiserver",
            [
                self._bin("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--secure-port={self.port}",
                *self._address_flags(),
                f"--cert-dir={self.root / 'apiserver-certs'}",
                f"--tls-cert-file={self.pki.serving_cert}",
                f"--tls-private-key-file={self.pki.serving_key}",
                f"--client-ca-file={self.pki.ca_cert}",
                f"--token-auth-file={tokens}",
                # Node: what real kubelets may do (their client certs are system:node:<name>).
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                # For `kubectl logs`/`exec` through a real kubelet (which checks client certs).
                f"--kubelet-client-certificate={self.pki.admin_cert}",
                f"--kubelet-client-key={self.pki.admin_key}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-cluster-ip-range=10.0.0.0/24",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={self.pki.sa_pub}",
                f"--service-account-signing-key-file={self.pki.sa_key}",
                "--allow-privileged=true",
            ],
        )

    def _address_flags(self) -> list[str]:
        if self.advertise_address:
            # Pods on real nodes reach it through the `kubernetes` Service (kube-proxy).
            return ["--bind-address=0.0.0.0", f"--advertise-address={self.advertise_address}"]
        return [
            "--bind-address=127.0.0.1",
            # With no default route the API server cannot pick an address itself.
            "--advertise-address=127.0.0.1",
            # Endpoints may not hold loopback addresses: skip the kubernetes service's.
            "--endpoint-reconciler-type=none",
        ]

    def _readyz(self) -> bool:
        try:
            req = urllib.request.Request(self.server + "/readyz")
            req.add_header("Authorization", f"Bearer {self.admin_token}")
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=5) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _start_controller_manager(self) -> None:
        assert self.pki is not None
        self._spawn(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--service-account-private-key-file={self.pki.sa_key}",
                f"--root-ca-file={self.pki.ca_cert}",
                "--use-service-account-credentials",
                # Its own port, so several control planes can share the machine.
                "--bind-address=127.0.0.1",
                f"--secure-port={procs.free_port()}",
                f"--cert-dir={self.root / 'kcm-certs'}",
            ],
        )

    def start_scheduler(self, binary: Path) -> None:
        """Start kube-scheduler (`binary`) as system:kube-scheduler: pods are then scheduled for
        real (onto real nodes)."""
        assert self.pki is not None
        cert, key = client_cert(self.pki, "kube-scheduler", "/CN=system:kube-scheduler")
        kubeconfig = write_kubeconfig(
            self.root / "kube-scheduler.kubeconfig",
            render_kubeconfig(
                self.server, self.ca_file, "system:kube-scheduler", client_cert=cert, client_key=key
            ),
        )
        self._spawn(
            "kube-scheduler",
            [
                binary,
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={procs.free_port()}",
            ],
        )

    def _exists(self, path: str) -> bool:
        try:
            self.request("GET", path)
            return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise

    def stop(self) -> None:
        """Stop everything (nodes first: they stop the pods), then remove temp dirs."""
        if self._stopped:
            return
        self._stopped = True
        for node in reversed(self.nodes):
            # The rest must stop even if a node's clean-up fails.
            with contextlib.suppress(Exception):
                node.stop()
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            if name in self._procs:
                procs.stop(self._procs[name], grace=5.0)
        procs.kill_survivors(self.run_id)
        if self._etcd_dir:
            shutil.rmtree(self._etcd_dir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def remove_files(self) -> None:
        """Delete the root directory (logs included) if this object created it."""
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def survivors(self) -> list[tuple[int, str]]:
        """Processes of this control plane still alive (none after `stop()`)."""
        return procs.survivors(self.run_id)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _remove_orphaned_etcd_dirs() -> None:
    """Remove tmpfs etcd data dirs whose owner is dead (they hold memory until removed)."""
    for directory in Path("/dev/shm").glob("kubetrain-etcd-*-*-*"):
        pid, start = directory.name.split("-")[2:4]
        if not procs.owner_alive(f"{pid}:{start}"):
            shutil.rmtree(directory, ignore_errors=True)


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so atexit hooks (and fixture finalizers) run."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
