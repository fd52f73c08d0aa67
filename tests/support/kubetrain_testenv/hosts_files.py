"""Pod addresses and the per-pod hosts files that stand in for cluster DNS.

Every running pod's /etc/hosts is bind-mounted from a file here. Files only
grow (append-only, so a process reading one never sees a half-rewritten file)
and addresses are stable per DNS identity (see pod_dns), so an appended entry
never contradicts an earlier one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .pod_dns import PodName, ip_key, loopback_ip, own_line, peer_line, pod_name, render_hosts


class HostsFiles:
    """Allocates pod IPs and keeps every live pod's hosts file current (thread-safe)."""

    def __init__(self, base: str) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._ips: dict[tuple[str, str], str] = {}
        self._entries: dict[tuple[str, str], tuple[PodName, str]] = {}
        self._files: dict[Path, str] = {}  # hosts file -> its reader's namespace

    def address(self, pod: Mapping[str, Any]) -> str:
        """The pod's IP (the same for the same DNS identity)."""
        with self._lock:
            key = ip_key(pod)
            if key not in self._ips:
                self._ips[key] = loopback_ip(len(self._ips))
            return self._ips[key]

    def open(self, pod: Mapping[str, Any], path: Path) -> None:
        """Write the pod's hosts file, publish its name to the others, keep it updated."""
        name, ip = pod_name(pod), self.address(pod)
        with self._lock:
            new = name.subdomain and self._entries.get(name.identity) != (name, ip)
            if new:
                self._entries[name.identity] = (name, ip)
            peers = [peer_line(n, i, name.namespace) for n, i in self._entries.values()]
            path.write_text(render_hosts(self._base, own_line(name, ip), [p for p in peers if p]))
            if new:
                for other, namespace in self._files.items():
                    line = peer_line(name, ip, namespace)
                    if line:
                        with open(other, "a") as f:
                            f.write(line)
            self._files[path] = name.namespace

    def close(self, path: Path) -> None:
        """Stop updating a pod's hosts file (its pod has stopped)."""
        with self._lock:
            self._files.pop(path, None)
