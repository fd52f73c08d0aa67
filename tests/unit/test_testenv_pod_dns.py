"""Pod addresses and hosts-file entries standing in for cluster DNS (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain_testenv.pod_dns import (
    PodName,
    ip_key,
    loopback_ip,
    own_line,
    peer_line,
    pod_name,
    render_hosts,
)


def pod(name: str, hostname: str = "", subdomain: str = "", ns: str = "ml") -> dict[str, Any]:
    spec = {k: v for k, v in (("hostname", hostname), ("subdomain", subdomain)) if v}
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


@pytest.mark.parametrize(
    ("index", "ip"),
    [(0, "127.1.0.1"), (253, "127.1.0.254"), (254, "127.1.1.1"), (254 * 256 - 1, "127.1.255.254")],
)
def test_loopback_ip(index: int, ip: str) -> None:
    assert loopback_ip(index) == ip


def test_loopback_ip_runs_out() -> None:
    with pytest.raises(ValueError):
        loopback_ip(254 * 256)


@pytest.mark.parametrize(
    ("obj", "name", "key"),
    [
        (pod("p"), PodName("ml", "p", ""), ("ml", "p")),
        (pod("job-0-x7", "job-0", "peers"), PodName("ml", "job-0", "peers"), ("ml", "job-0.peers")),
        (pod("job-0-y8", "job-0", "peers"), PodName("ml", "job-0", "peers"), ("ml", "job-0.peers")),
        (pod("p", subdomain="peers"), PodName("ml", "p", "peers"), ("ml", "p.peers")),
    ],
)
def test_pod_name_and_ip_key(obj: dict[str, Any], name: PodName, key: tuple[str, str]) -> None:
    assert pod_name(obj) == name
    assert ip_key(obj) == key


@pytest.mark.parametrize(
    ("name", "line"),
    [
        (PodName("ml", "p", ""), "127.1.0.1\tp\n"),
        (PodName("ml", "w-0", "peers"), "127.1.0.1\tw-0.peers.ml.svc.cluster.local\tw-0\n"),
    ],
)
def test_own_line(name: PodName, line: str) -> None:
    assert own_line(name, "127.1.0.1") == line


@pytest.mark.parametrize(
    ("name", "reader", "line"),
    [
        (PodName("ml", "p", ""), "ml", None),
        (
            PodName("ml", "w-0", "peers"),
            "ml",
            "127.1.0.2\tw-0.peers.ml.svc.cluster.local w-0.peers.ml.svc w-0.peers.ml w-0.peers\n",
        ),
        (
            PodName("ml", "w-0", "peers"),
            "other",
            "127.1.0.2\tw-0.peers.ml.svc.cluster.local w-0.peers.ml.svc w-0.peers.ml\n",
        ),
    ],
)
def test_peer_line(name: PodName, reader: str, line: str | None) -> None:
    assert peer_line(name, "127.1.0.2", reader) == line


@pytest.mark.parametrize("base", ["127.0.0.1\tlocalhost\n", "127.0.0.1\tlocalhost", ""])
def test_render_hosts(base: str) -> None:
    text = render_hosts(base, "own\n", ["a\n", "b\n"])
    assert text.endswith("# kubetrain test node agent\nown\na\nb\n")
    assert text.startswith(base)
