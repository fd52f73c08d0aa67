"""A container's environment the way a kubelet computes it (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Pod = Mapping[str, Any]


class EnvError(ValueError):
    """The env refers to something missing (kubelet: CreateContainerConfigError)."""


@dataclass(frozen=True)
class PodRuntime:
    """Facts about a running pod that its env may refer to."""

    pod_ip: str
    host_ip: str
    node_name: str


_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def field_ref(pod: Pod, path: str, runtime: PodRuntime) -> str:
    """The value of a downward-API `fieldPath`."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or runtime.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": runtime.pod_ip,
        "status.podIPs": runtime.pod_ip,
        "status.hostIP": runtime.host_ip,
        "status.hostIPs": runtime.host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _LABEL_REF.match(path)
    if match:
        return str((meta.get(match[1]) or {}).get(match[2], ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise EnvError(f"unsupported fieldPath {path!r}")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names are replaced, `$$` escapes a `$`."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])

    return _VAR_REF.sub(one, text)


def _key_ref(
    kind: str, ref: Mapping[str, Any], sources: Mapping[str, Mapping[str, str]]
) -> str | None:
    data = sources.get(ref["name"])
    if data is None or ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise EnvError(f"{kind} {ref['name']!r} has no key {ref['key']!r}")
    return data[ref["key"]]


def container_env(
    pod: Pod,
    container: Mapping[str, Any],
    runtime: PodRuntime,
    base: Mapping[str, str],
    configmaps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """`base`, then `envFrom`, then `env` in order, each value `$(VAR)`-expanded.

    `configmaps` and `secrets` map names to their (decoded) data; a name that is
    absent stands for an object that does not exist.
    """
    env = dict(base)
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        kind, ref = (
            ("configMap", source["configMapRef"])
            if "configMapRef" in source
            else ("secret", source["secretRef"])
        )
        data = (configmaps if kind == "configMap" else secrets).get(ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise EnvError(f"{kind} {ref['name']!r} not found")
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env", []):
        if "valueFrom" not in var:
            env[var["name"]] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            value: str | None = field_ref(pod, source["fieldRef"]["fieldPath"], runtime)
        elif "configMapKeyRef" in source:
            value = _key_ref("configMap", source["configMapKeyRef"], configmaps)
        elif "secretKeyRef" in source:
            value = _key_ref("secret", source["secretKeyRef"], secrets)
        else:
            raise EnvError(f"unsupported valueFrom in env {var['name']!r}: {sorted(source)}")
        if value is not None:
            env[var["name"]] = value
    return env


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """`command` + `args`, `$(VAR)`-expanded (images are not run, so a command is required)."""
    argv = [*container.get("command", []), *container.get("args", [])]
    if not container.get("command"):
        raise EnvError(
            f"container {container['name']!r} has no command; the test node agent ignores images"
        )
    return [expand(a, env) for a in argv]


def referenced_objects(pod: Pod) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets the pod's env and volumes refer to."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    spec = pod.get("spec", {})
    for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                configmaps.add(source["configMapRef"]["name"])
            if "secretRef" in source:
                secrets.add(source["secretRef"]["name"])
        for var in c.get("env", []):
            source = var.get("valueFrom", {})
            if "configMapKeyRef" in source:
                configmaps.add(source["configMapKeyRef"]["name"])
            if "secretKeyRef" in source:
                secrets.add(source["secretKeyRef"]["name"])
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            configmaps.add(volume["configMap"]["name"])
        if "secret" in volume:
            secrets.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                configmaps.add(source["configMap"]["name"])
            if "secret" in source:
                secrets.add(source["secret"]["name"])
    return configmaps, secrets
