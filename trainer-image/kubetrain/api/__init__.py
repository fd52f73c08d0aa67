"""The TrainingJob API: pydantic models that are the one source of truth for the CRD, the
local loader and the trainer. Importable without torch."""

from kubetrain.api.job import API_VERSION, GROUP, KIND, PLURAL, VERSION, TrainingJob
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import TrainingJobStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
]
