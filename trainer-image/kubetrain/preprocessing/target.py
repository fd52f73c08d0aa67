"""Labels: class vocabulary for classification, standardisation for regression."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from kubetrain.data.checks import check_classes, check_regression_labels
from kubetrain.errors import InvalidJob


@dataclass
class TargetState:
    """How raw labels become training targets (fitted on the training split)."""

    task: str  # "classification" | "regression"
    classes: list[str] = field(default_factory=list)
    center: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, task: str, y_train: np.ndarray, normalize: bool, what: str) -> TargetState:
        """`what` names the labels in messages ("label column 'y'", "d.npz: array 'y'")."""
        check_labels(y_train, what)
        if task == "classification":
            classes = sorted({_key(v) for v in y_train}, key=_sort_key)
            check_classes(classes, what)
            return cls(task, classes)
        check_regression_labels(y_train, what, "label")
        y = y_train.astype(np.float64)
        if normalize:
            return cls(task, center=float(y.mean()), scale=float(y.std()) or 1.0)
        return cls(task)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def transform(self, y: np.ndarray, what: str, split: str) -> np.ndarray:
        check_labels(y, what)
        if self.task == "regression":
            return ((y.astype(np.float64) - self.center) / self.scale).astype(np.float32)
        index = {c: i for i, c in enumerate(self.classes)}
        keys = [_key(v) for v in y]
        unknown = sorted({k for k in keys if k not in index})
        if unknown:
            shown = ", ".join(unknown[:5])
            raise InvalidJob(
                f"{what}: the {split} split has labels never seen in the training split ({shown});"
                " add such samples to training data or use split.stratify"
            )
        return np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Regression targets back in the label's own units."""
        return y * self.scale + self.center

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, s: dict[str, object]) -> TargetState:
        return cls(**s)  # type: ignore[arg-type]


def check_labels(y: np.ndarray, what: str) -> None:
    """No missing or infinite label (data/checks.py names their rows before this runs)."""
    if y.dtype.kind == "f":
        bad = int(np.isnan(y).sum() + np.isinf(y).sum())
    else:
        bad = sum(v is None for v in y) if y.dtype == object else 0
    if bad:
        raise InvalidJob(f"{what} has {bad} missing (NaN/empty) or infinite values;"
                         " drop or fill those rows")


def _key(v: object) -> str:
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v.item() if isinstance(v, np.generic) else v)


def _sort_key(k: str) -> tuple[int, float | str]:
    try:
        return (0, float(k))
    except ValueError:
        return (1, k)
