"""The `TrainingJob` resource as a whole."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kubetrain.api.base import KubeModel
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import TrainingJobStatus

GROUP = "kubetrain.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TrainingJob"
PLURAL = "trainingjobs"
SINGULAR = "trainingjob"
SHORT_NAMES = ["tj"]


class ObjectMeta(BaseModel):
    """The parts of metadata kubetrain reads; the API server owns the rest."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("training-job", max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class TrainingJob(KubeModel):
    """A declarative training run (kubetrain.io/v1alpha1)."""

    api_version: Literal["kubetrain.io/v1alpha1"] = API_VERSION
    kind: Literal["TrainingJob"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> TrainingJob:
        """Validate an object read from the API server or a YAML file."""
        return cls.model_validate(obj)
