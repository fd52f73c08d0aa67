"""What each pod volume holds and where containers see it (pure).

A volume becomes a directory in the pod's sandbox filled with `volume_files`;
`container_mounts` says which sandbox path is bind-mounted at which mountPath
inside the container's own mount namespace (see launch.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .pod_env import Pod, PodRuntime, field_ref

# (audience, expirationSeconds) -> a token bound to the pod.
TokenSource = Callable[[str | None, int], str]


class VolumeError(ValueError):
    """A volume the node agent cannot provide."""


@dataclass(frozen=True)
class Mount:
    """A bind mount: `source` on the machine appears at `target` in the container."""

    source: str
    target: str
    read_only: bool = False


def _object_files(obj: Mapping[str, Any] | None, binary: bool) -> dict[str, bytes]:
    if obj is None:
        return {}
    if binary:  # a Secret: everything is base64
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    files = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return files


def _select(
    kind: str, name: str, source: Mapping[str, Any], files: dict[str, bytes], found: bool
) -> dict[str, bytes]:
    if not found:
        if source.get("optional"):
            return {}
        raise VolumeError(f"{kind} {name!r} not found")
    if not source.get("items"):
        return files
    chosen = {}
    for item in source["items"]:
        if item["key"] not in files:
            if source.get("optional"):
                continue
            raise VolumeError(f"{kind} {name!r} has no key {item['key']!r}")
        chosen[item["path"]] = files[item["key"]]
    return chosen


def _downward(pod: Pod, items: list[Mapping[str, Any]], runtime: PodRuntime) -> dict[str, bytes]:
    files = {}
    for item in items:
        if "fieldRef" not in item:
            raise VolumeError(f"downwardAPI item {item['path']!r}: only fieldRef is supported")
        files[item["path"]] = field_ref(pod, item["fieldRef"]["fieldPath"], runtime).encode()
    return files


def volume_files(
    pod: Pod,
    volume: Mapping[str, Any],
    runtime: PodRuntime,
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
    token: TokenSource,
) -> dict[str, bytes] | None:
    """Files (relative path -> content) of a volume; None for a host path (see `host_path`)."""
    if "emptyDir" in volume:
        return {}
    if "hostPath" in volume:
        return None
    if "configMap" in volume:
        src = volume["configMap"]
        cm = configmaps.get(src["name"])
        return _select("configMap", src["name"], src, _object_files(cm, False), cm is not None)
    if "secret" in volume:
        src = volume["secret"]
        secret = secrets.get(src["secretName"])
        files = _object_files(secret, True)
        return _select("secret", src["secretName"], src, files, secret is not None)
    if "downwardAPI" in volume:
        return _downward(pod, volume["downwardAPI"].get("items", []), runtime)
    if "projected" in volume:
        files = {}
        for source in volume["projected"].get("sources", []):
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                value = token(sat.get("audience"), int(sat.get("expirationSeconds", 3607)))
                files[sat["path"]] = value.encode()
            elif "configMap" in source:
                src = source["configMap"]
                cm = configmaps.get(src["name"])
                obj_files = _object_files(cm, False)
                files.update(_select("configMap", src["name"], src, obj_files, cm is not None))
            elif "secret" in source:
                src = source["secret"]
                secret = secrets.get(src["name"])
                obj_files = _object_files(secret, True)
                files.update(_select("secret", src["name"], src, obj_files, secret is not None))
            elif "downwardAPI" in source:
                files.update(_downward(pod, source["downwardAPI"].get("items", []), runtime))
            else:
                raise VolumeError(f"unsupported projected source {sorted(source)}")
        return files
    kinds = sorted(k for k in volume if k != "name")
    raise VolumeError(f"volume {volume['name']!r}: unsupported kind {kinds}")


def host_path(volume: Mapping[str, Any]) -> str | None:
    """The machine path of a hostPath volume (mounted as is), else None."""
    return volume["hostPath"]["path"] if "hostPath" in volume else None


def container_mounts(
    container: Mapping[str, Any], volume_dirs: Mapping[str, Path | str]
) -> list[Mount]:
    """The container's volumeMounts as bind mounts, parents before children."""
    mounts = []
    for vm in container.get("volumeMounts", []):
        if vm["name"] not in volume_dirs:
            raise VolumeError(f"volumeMount {vm['mountPath']!r}: no volume {vm['name']!r}")
        source = str(volume_dirs[vm["name"]])
        if vm.get("subPath"):
            source = f"{source}/{vm['subPath']}"
        mounts.append(Mount(source, vm["mountPath"], bool(vm.get("readOnly"))))
    return sorted(mounts, key=lambda m: m.target.rstrip("/").count("/"))
