"""Tabular features: missing values, outlier clipping, scaling and categorical encoding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from kubetrain.api.preprocessing import Preprocessing
from kubetrain.errors import InvalidJob

MISSING = "<missing>"


@dataclass
class FeatureState:
    """Per-column statistics of the training split, applied to every split alike."""

    numeric: list[str]
    categorical: dict[str, list[str]]
    encoding: str = "onehot"
    fill: dict[str, float] = field(default_factory=dict)
    clip: dict[str, tuple[float, float]] = field(default_factory=dict)
    shift: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)

    @property
    def width(self) -> int:
        if self.encoding == "index":
            return len(self.numeric) + len(self.categorical)
        return len(self.numeric) + sum(len(c) for c in self.categorical.values())

    @classmethod
    def fit(cls, columns: dict[str, np.ndarray], train: np.ndarray, prep: Preprocessing,
            categorical: list[str]) -> FeatureState:
        """Statistics from the rows `train` only."""
        cats = {c for c in columns if c in categorical or columns[c].dtype == object}
        state = cls([c for c in columns if c not in cats], {}, prep.categorical)
        miss, out = prep.cleaning.missing, prep.cleaning.outliers
        for name in columns:
            col = columns[name][train]
            if name in cats:
                values = [MISSING if v is None else str(v) for v in col]
                state.categorical[name] = sorted(set(values))
                continue
            col = col.astype(np.float64)
            present = col[~np.isnan(col)]
            if len(present) == 0:
                raise InvalidJob(f"column {name!r} has no values in the training split")
            state.fill[name] = _fill_value(present, miss.strategy, miss.fill_value)
            col = np.where(np.isnan(col), state.fill[name], col)
            if out.method == "zscore":
                t = out.threshold or 3.0
                state.clip[name] = (col.mean() - t * col.std(), col.mean() + t * col.std())
            elif out.method == "iqr":
                t = out.threshold or 1.5
                q1, q3 = np.percentile(col, [25, 75])
                state.clip[name] = (q1 - t * (q3 - q1), q3 + t * (q3 - q1))
            if name in state.clip:
                col = np.clip(col, *state.clip[name])
            if prep.normalize == "zscore":
                state.shift[name], state.scale[name] = col.mean(), col.std() or 1.0
            elif prep.normalize == "minmax":
                state.shift[name], state.scale[name] = col.min(), (col.max() - col.min()) or 1.0
        return state

    def transform(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Rows → float32 feature matrix."""
        n = len(next(iter(columns.values())))
        out = np.empty((n, self.width), dtype=np.float32)
        j = 0
        for name in self.numeric:
            col = columns[name].astype(np.float64)
            col = np.where(np.isnan(col), self.fill.get(name, 0.0), col)
            if name in self.clip:
                col = np.clip(col, *self.clip[name])
            out[:, j] = (col - self.shift.get(name, 0.0)) / self.scale.get(name, 1.0)
            j += 1
        for name, cats in self.categorical.items():
            index = {c: i for i, c in enumerate(cats)}
            codes = np.array([index.get(MISSING if v is None else str(v), -1)
                              for v in columns[name]])
            if self.encoding == "index":
                out[:, j] = codes  # an unseen category is -1
                j += 1
            else:
                block = np.zeros((n, len(cats)), dtype=np.float32)
                seen = codes >= 0
                block[np.flatnonzero(seen), codes[seen]] = 1.0  # an unseen category is all zeros
                out[:, j:j + len(cats)] = block
                j += len(cats)
        return out

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, s: dict[str, object]) -> FeatureState:
        st = cls(**s)  # type: ignore[arg-type]
        st.clip = {k: tuple(v) for k, v in st.clip.items()}  # type: ignore[misc]
        return st


def _fill_value(present: np.ndarray, strategy: str, constant: float | None) -> float:
    if strategy == "median":
        return float(np.median(present))
    if strategy == "mode":
        values, counts = np.unique(present, return_counts=True)
        return float(values[counts.argmax()])
    if strategy == "constant":
        return float(constant or 0.0)
    return float(present.mean())  # mean, and drop (rows were dropped; nothing left to fill)


def rows_to_keep(columns: dict[str, np.ndarray], prep: Preprocessing) -> np.ndarray:
    """Rows surviving duplicate removal and (strategy drop) missing-value removal."""
    n = len(next(iter(columns.values())))
    keep = np.ones(n, dtype=bool)
    if prep.cleaning.missing.strategy == "drop":
        for col in columns.values():
            keep &= ~(np.isnan(col) if col.dtype.kind == "f" else np.equal(col, None))
    if prep.cleaning.drop_duplicates:
        seen: set[tuple[object, ...]] = set()
        for i, row in enumerate(zip(*columns.values(), strict=True)):
            key = tuple(row)
            if key in seen:
                keep[i] = False
            seen.add(key)
    return np.flatnonzero(keep)
