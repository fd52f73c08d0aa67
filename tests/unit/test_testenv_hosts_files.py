"""Hosts files grow as pods appear and keep stable addresses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubetrain_testenv.hosts_files import HostsFiles


def pod(name: str, hostname: str, ns: str = "ml") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hostname": hostname, "subdomain": "peers"},
    }


def test_later_pods_are_appended_to_earlier_pods_files(tmp_path: Path) -> None:
    hosts = HostsFiles("127.0.0.1\tlocalhost\n")
    first, second, other_ns = tmp_path / "a", tmp_path / "b", tmp_path / "c"

    hosts.open(pod("w0", "w-0"), first)
    hosts.open(pod("w1", "w-1"), second)
    hosts.open(pod("x", "x-0", ns="other"), other_ns)

    assert first.read_text().splitlines() == [
        "127.0.0.1\tlocalhost",
        "# kubetrain test node agent",
        "127.1.0.1\tw-0.peers.ml.svc.cluster.local\tw-0",
        "127.1.0.1\tw-0.peers.ml.svc.cluster.local w-0.peers.ml.svc w-0.peers.ml w-0.peers",
        "127.1.0.2\tw-1.peers.ml.svc.cluster.local w-1.peers.ml.svc w-1.peers.ml w-1.peers",
        "127.1.0.3\tx-0.peers.other.svc.cluster.local x-0.peers.other.svc x-0.peers.other",
    ]
    assert "w-0.peers.ml.svc.cluster.local w-0.peers.ml.svc w-0.peers.ml\n" in other_ns.read_text()


def test_a_replacement_pod_keeps_the_address_and_adds_no_entry(tmp_path: Path) -> None:
    hosts = HostsFiles("")
    watcher = tmp_path / "watcher"
    hosts.open(pod("w", "watch"), watcher)
    hosts.open(pod("job-0-a", "job-0"), tmp_path / "a")
    hosts.close(tmp_path / "a")
    before = watcher.read_text()

    hosts.open(pod("job-0-b", "job-0"), tmp_path / "b")

    assert hosts.address(pod("job-0-b", "job-0")) == hosts.address(pod("job-0-a", "job-0"))
    assert watcher.read_text() == before
