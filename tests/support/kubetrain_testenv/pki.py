"""Certificates and keys for a throwaway control plane, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

# The names and addresses a pod or a test may use to reach the API server.
APISERVER_SANS = (
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
    "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1"
)


@dataclass(frozen=True)
class Pki:
    """Paths of the files `make_pki` writes."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ec_key(path: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path)


def _signed_cert(pki: Pki, name: str, subject: str, extensions: str) -> None:
    key, csr, cert = pki.dir / f"{name}.key", pki.dir / f"{name}.csr", pki.dir / f"{name}.crt"
    ext = pki.dir / f"{name}.ext"
    ext.write_text(extensions)
    _ec_key(key)
    _openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        pki.ca_cert,
        "-CAkey",
        pki.ca_key,
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        ext,
        "-out",
        cert,
    )


def client_cert(pki: Pki, name: str, subject: str) -> tuple[Path, Path]:
    """Sign a client certificate for `subject` (e.g. "/O=system:nodes/CN=system:node:n1");
    return (cert, key)."""
    _signed_cert(pki, name, subject, "extendedKeyUsage=clientAuth\n")
    return pki.dir / f"{name}.crt", pki.dir / f"{name}.key"


def make_pki(directory: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """Write a CA, the API server's serving cert (also valid for `extra_ips`), an admin client
    cert and SA keys."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    _ec_key(pki.ca_key)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        pki.ca_key,
        "-subj",
        "/CN=kubetrain-testenv-ca",
        "-days",
        "30",
        "-out",
        pki.ca_cert,
    )
    _signed_cert(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName={APISERVER_SANS}{''.join(f',IP:{ip}' for ip in extra_ips)}\n"
        "extendedKeyUsage=serverAuth\n",
    )
    # system:masters bypasses RBAC: the admin identity of tests and the controller manager.
    _signed_cert(
        pki, "admin", "/O=system:masters/CN=kubetrain-admin", "extendedKeyUsage=clientAuth\n"
    )
    # RSA: service-account tokens are RS256 by default everywhere.
    _openssl("genrsa", "-out", pki.sa_key, "2048")
    _openssl("rsa", "-in", pki.sa_key, "-pubout", "-out", pki.sa_pub)
    return pki
