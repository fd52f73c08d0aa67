"""Write the small data files the examples read (seeded; the same bytes on every machine).

    python examples/data/make_examples.py [OUT_DIR]     (default: examples/data)

regression.csv      y = sin(2·x1) + x2²/2 + x3·x4/2 + noise, with missing values and outliers
classification.csv  3 imbalanced classes from 3 numeric columns and a categorical 'color'
shapes.npz          16×16 uint8 grey images of squares, circles and crosses (x: N,1,16,16; y: N)
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def regression(path: Path, n: int = 3000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 4))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 / 2 + x[:, 2] * x[:, 3] / 2
    y += 0.05 * rng.standard_normal(n)
    x[rng.random((n, 4)) < 0.02] = np.nan  # missing values, filled by preprocessing
    x[rng.choice(n, 10, replace=False), 0] = 50.0  # outliers, clipped by preprocessing
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x1", "x2", "x3", "x4", "y"])
        for row, target in zip(x, y, strict=True):
            w.writerow(["" if np.isnan(v) else f"{v:.5f}" for v in row] + [f"{target:.5f}"])


def classification(path: Path, n: int = 3000, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    label = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    centers = np.array([[0, 0, 0], [2, 1, -1], [-1, 2, 2]], dtype=float)
    x = centers[label] + 0.7 * rng.standard_normal((n, 3))
    colors = np.array(["red", "green", "blue"])
    color = np.where(rng.random(n) < 0.7, colors[label], colors[rng.integers(0, 3, n)])
    rows = [[f"{a:.4f}", f"{b:.4f}" if rng.random() > 0.02 else "", f"{c:.4f}", col,
             ["cat", "dog", "bird"][lab]] for (a, b, c), col, lab in zip(x, color, label,
                                                                          strict=True)]
    rows += rows[:50]  # exact duplicates, removed by cleaning.dropDuplicates
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["f1", "f2", "f3", "color", "label"])
        w.writerows(rows)


def shapes(path: Path, n: int = 1500, size: int = 16, seed: int = 2) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    x = np.zeros((n, 1, size, size), dtype=np.uint8)
    y = rng.integers(0, 3, n)
    for i in range(n):
        r = rng.integers(3, 6)
        cy, cx = rng.integers(r, size - r, 2)
        if y[i] == 0:
            img = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        elif y[i] == 1:
            img = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            img = ((abs(yy - cy) <= 1) & (abs(xx - cx) <= r)) | (
                (abs(xx - cx) <= 1) & (abs(yy - cy) <= r))
        noisy = 40 + 160 * img + 30 * rng.standard_normal((size, size))
        x[i, 0] = noisy.clip(0, 255).astype(np.uint8)
    np.savez_compressed(path, x=x, y=y.astype(np.int64))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    regression(out / "regression.csv")
    classification(out / "classification.csv")
    shapes(out / "shapes.npz")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
