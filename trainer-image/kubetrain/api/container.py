"""Typed subsets of Kubernetes' Container for spec.template: init containers and volume mounts.

Checked at spec time (locally and by the CRD schema) so that a typo or a missing field names its
path instead of failing the job at pod creation (InvalidPodTemplate stays for what only the API
server's pod validation knows, e.g. requests above limits or a volume it cannot find).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, cel_rules, enforce

# Kubernetes' own pattern for resource.Quantity.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

Str = Annotated[str, Field(max_length=4096)]
DnsLabel = Annotated[str, Field(max_length=63, pattern=DNS_LABEL_PATTERN)]
ObjectName = Annotated[str, Field(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
Quantity = int | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)]


class VolumeMount(KubeModel):
    """A mount of one of the pod's volumes, as in a container spec."""

    name: DnsLabel
    """The volume: one of spec.template.volumes, or kubetrain's kubetrain-run (the run
    directory) or dshm (/dev/shm; none with hostIPC)."""
    mount_path: str = Field(min_length=1, max_length=4096)
    read_only: bool | None = None
    recursive_read_only: Literal["Disabled", "IfPossible", "Enabled"] | None = None
    sub_path: str | None = Field(None, max_length=4096)
    sub_path_expr: str | None = Field(None, max_length=4096)
    mount_propagation: Literal["None", "HostToContainer", "Bidirectional"] | None = None


class KeyRef(KubeModel):
    """A key of a ConfigMap or Secret of the job's namespace."""

    name: ObjectName
    key: str = Field(min_length=1, max_length=253)
    optional: bool | None = None


class FieldRef(KubeModel):
    """A field of the pod (metadata.name, status.podIP, ...)."""

    field_path: str = Field(min_length=1, max_length=256)
    api_version: str | None = Field(None, max_length=64)


class ResourceFieldRef(KubeModel):
    """A request or limit of a container (limits.cpu, requests.memory, ...)."""

    resource: str = Field(min_length=1, max_length=256)
    container_name: DnsLabel | None = None
    divisor: Quantity | None = None


_one_source = Rule(
    "[has(self.fieldRef), has(self.resourceFieldRef), has(self.configMapKeyRef),"
    " has(self.secretKeyRef)].filter(x, x).size() == 1",
    "set exactly one of fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef",
)


class EnvVarSource(KubeModel):
    """Where an environment variable's value comes from (exactly one source)."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_one_source))

    field_ref: FieldRef | None = None
    resource_field_ref: ResourceFieldRef | None = None
    config_map_key_ref: KeyRef | None = None
    secret_key_ref: KeyRef | None = None

    @model_validator(mode="after")
    def _rules(self) -> EnvVarSource:
        sources = (self.field_ref, self.resource_field_ref, self.config_map_key_ref,
                   self.secret_key_ref)  # fmt: skip
        enforce([(_one_source, sum(s is not None for s in sources) == 1)])
        return self


_value_or_source = Rule(
    "!has(self.valueFrom) || !has(self.value) || self.value == ''",
    "set value or valueFrom, not both",
    "valueFrom",
)


class EnvVar(KubeModel):
    """An environment variable, as in a container spec."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_value_or_source))

    name: str = Field(min_length=1, max_length=256)
    value: str | None = Field(None, max_length=131_072)
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _rules(self) -> EnvVar:
        enforce([(_value_or_source, self.value_from is None or not self.value)])
        return self


class ObjectRef(KubeModel):
    """A ConfigMap or Secret of the job's namespace."""

    name: ObjectName
    optional: bool | None = None


_one_env_source = Rule(
    "has(self.configMapRef) != has(self.secretRef)",
    "envFrom: set exactly one of configMapRef or secretRef",
)


class EnvFromSource(KubeModel):
    """Every key of a ConfigMap or Secret as environment variables."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_one_env_source))

    prefix: str | None = Field(None, max_length=256)
    config_map_ref: ObjectRef | None = None
    secret_ref: ObjectRef | None = None

    @model_validator(mode="after")
    def _rules(self) -> EnvFromSource:
        enforce([(_one_env_source, (self.config_map_ref is None) != (self.secret_ref is None))])
        return self


class ContainerResources(KubeModel):
    """Requests and limits of a container, by resource name (cpu, memory, nvidia.com/gpu...).

    Values are quantities (8, 500m, 16Gi), checked here; the CRD schema leaves them to the API
    server's pod validation (a CEL check of every map value would exceed its cost budget), so a
    bad one fails the job with reason InvalidPodTemplate when applied with kubectl."""

    limits: dict[str, Quantity] | None = Field(None, max_length=32)
    requests: dict[str, Quantity] | None = Field(None, max_length=32)


class Capabilities(KubeModel):
    """Linux capabilities to add or drop (NET_ADMIN, SYS_PTRACE, ALL...)."""

    add: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=64)
    drop: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=64)


_localhost_needs_profile = Rule(
    "(self.type == 'Localhost') == has(self.localhostProfile)",
    "set with type Localhost, and only then",
    "localhostProfile",
)


class Profile(KubeModel):
    """A seccomp or AppArmor profile."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_localhost_needs_profile))

    type: Literal["RuntimeDefault", "Unconfined", "Localhost"]
    localhost_profile: str | None = Field(None, max_length=4096)

    @model_validator(mode="after")
    def _rules(self) -> Profile:
        has_profile = self.localhost_profile is not None
        enforce([(_localhost_needs_profile, (self.type == "Localhost") == has_profile)])
        return self


class SELinuxOptions(KubeModel):
    """The SELinux context of the container."""

    user: str | None = Field(None, max_length=256)
    role: str | None = Field(None, max_length=256)
    type: str | None = Field(None, max_length=256)
    level: str | None = Field(None, max_length=256)


# kubetrain sets allowPrivilegeEscalation false and runAsNonRoot true where the container does
# not say otherwise (kubetrain_operator.render.CONTAINER_SECURITY): these rules say when a
# container's own keys need the opposite, instead of a pod the API server or kubelet refuses.
_ESCALATES = "has(self.allowPrivilegeEscalation) && self.allowPrivilegeEscalation"
_privileged_escalates = Rule(
    f"!has(self.privileged) || !self.privileged || ({_ESCALATES})",
    "needs allowPrivilegeEscalation: true (kubetrain's default is false)",
    "privileged",
)
_sys_admin_escalates = Rule(
    "!has(self.capabilities) || !has(self.capabilities.add) ||"
    " !self.capabilities.add.exists(c, c == 'SYS_ADMIN' || c == 'CAP_SYS_ADMIN')"
    f" || ({_ESCALATES})",
    "SYS_ADMIN needs allowPrivilegeEscalation: true (kubetrain's default is false)",
    "capabilities.add",
)
_root_is_root = Rule(
    "!has(self.runAsUser) || self.runAsUser != 0 || (has(self.runAsNonRoot) && !self.runAsNonRoot)",
    "0 (root) needs runAsNonRoot: false (kubetrain's default is true)",
    "runAsUser",
)


class SecurityContext(KubeModel):
    """The container's security settings, over kubetrain's defaults for the keys it sets."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(_privileged_escalates, _sys_admin_escalates, _root_is_root)
    )

    allow_privilege_escalation: bool | None = None
    capabilities: Capabilities | None = None
    privileged: bool | None = None
    proc_mount: Literal["Default", "Unmasked"] | None = None
    read_only_root_filesystem: bool | None = None
    run_as_group: int | None = Field(None, ge=0, le=2_147_483_647)
    run_as_non_root: bool | None = None
    run_as_user: int | None = Field(None, ge=0, le=2_147_483_647)
    se_linux_options: SELinuxOptions | None = None
    seccomp_profile: Profile | None = None
    app_armor_profile: Profile | None = None

    @model_validator(mode="after")
    def _rules(self) -> SecurityContext:
        escalates = self.allow_privilege_escalation is True
        added = set(self.capabilities.add or []) if self.capabilities else set()
        enforce([
            (_privileged_escalates, not self.privileged or escalates),
            (_sys_admin_escalates, not {"SYS_ADMIN", "CAP_SYS_ADMIN"} & added or escalates),
            (_root_is_root, self.run_as_user != 0 or self.run_as_non_root is False),
        ])  # fmt: skip
        return self


class ContainerPort(KubeModel):
    """A port a sidecar listens on."""

    container_port: int = Field(ge=1, le=65_535)
    name: str | None = Field(None, max_length=15, pattern=DNS_LABEL_PATTERN)
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None


_SIDECAR_ONLY = ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle")
_sidecar_only = Rule(
    "has(self.restartPolicy) || !(" + " || ".join(f"has(self.{f})" for f in _SIDECAR_ONLY) + ")",
    "livenessProbe, readinessProbe, startupProbe and lifecycle: only for a sidecar"
    " (restartPolicy: Always)",
    "restartPolicy",
)


class InitContainer(KubeModel):
    """A container run before the trainer (a sidecar with restartPolicy Always runs beside it),
    as in a pod spec."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_sidecar_only))

    name: DnsLabel
    """Unique among the init containers, and not trainer (the trainer container's name)."""
    image: str = Field(min_length=1, max_length=1024)
    command: list[Str] | None = Field(None, max_length=256)
    args: list[Str] | None = Field(None, max_length=1024)
    working_dir: str | None = Field(None, max_length=4096)
    env: list[EnvVar] | None = Field(None, max_length=256)
    env_from: list[EnvFromSource] | None = Field(None, max_length=32)
    volume_mounts: list[VolumeMount] | None = Field(None, max_length=64)
    resources: ContainerResources | None = None
    security_context: SecurityContext | None = None
    """Keys it sets replace kubetrain's defaults (non-root, no privilege escalation, all
    capabilities dropped); the others still apply."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    restart_policy: Literal["Always"] | None = None
    """Always: a sidecar, started before the trainer and kept running beside it."""
    ports: list[ContainerPort] | None = Field(None, max_length=64)
    liveness_probe: dict[str, Any] | None = None
    """As in a container spec (sidecars only), like readinessProbe, startupProbe and
    lifecycle; the API server checks their contents when the pod is created."""
    readiness_probe: dict[str, Any] | None = None
    startup_probe: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _rules(self) -> InitContainer:
        extras = (self.liveness_probe, self.readiness_probe, self.startup_probe, self.lifecycle)
        sidecar_only_set = any(x is not None for x in extras)
        enforce([(_sidecar_only, self.restart_policy is not None or not sidecar_only_set)])
        return self
