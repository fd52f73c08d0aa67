"""Preprocessing: statistics from the training split only, saved state, seeded augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from trainer_jobs import make_job

from kubetrain.api.preprocessing import Augment, Preprocessing
from kubetrain.data.build import build_data
from kubetrain.data.splits import split_indices
from kubetrain.preprocessing.image import augment_batch
from kubetrain.preprocessing.state import ArrayState, TabularState, state_from_dict
from kubetrain.preprocessing.tabular import FeatureState


def test_statistics_come_from_the_training_split_only(tmp_path: Path) -> None:
    # Held-out rows have huge values: any leak into the fitted mean/std would show.
    n = 200
    spec = make_job({"dataset": {"type": "tabular",
                                 "tabular": {"path": str(tmp_path / "d.csv"),
                                             "columns": {"label": "y"}},
                                 "split": {"val": 0.25, "test": 0.25, "seed": 4}},
                     "training": {"loss": "mse"}}).spec
    parts = split_indices(n, spec.dataset.split)
    x = np.random.default_rng(0).normal(size=n)
    held = np.concatenate([parts.val, parts.test])
    x[held] += 1000.0
    y = x * 2
    (tmp_path / "d.csv").write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in zip(x, y,
                                                                                 strict=True)))
    data = build_data(spec)
    assert isinstance(data.state, TabularState)
    fs = data.state.features
    assert abs(fs.shift["x"] - x[parts.train].mean()) < 1e-9
    assert abs(fs.scale["x"] - x[parts.train].std()) < 1e-9
    assert abs(data.state.target.center - y[parts.train].mean()) < 1e-9
    assert data.train.x.abs().max() < 10 and data.val.x.min() > 100  # val scaled by train stats


def test_missing_outliers_and_categories_fitted_on_train() -> None:
    cols = {"a": np.array([1.0, np.nan, 3.0, 100.0, 5.0]),
            "c": np.array(["r", "g", None, "r", "b"], dtype=object)}
    prep = Preprocessing.model_validate({"cleaning": {"missing": {"strategy": "median"},
                                                      "outliers": {"method": "iqr"}},
                                         "normalize": "none"})
    train = np.array([0, 1, 2, 3])
    fs = FeatureState.fit(cols, train, prep, ["c"])
    assert fs.fill["a"] == 3.0  # median of 1, 3, 100
    assert fs.categorical["c"] == ["<missing>", "g", "r"]  # 'b' is only in held-out data
    out = fs.transform(cols)
    assert out[1, 0] == 3.0 and out[3, 0] < 100  # filled and clipped
    assert out[4, 1:].tolist() == [0, 0, 0]  # an unseen category encodes as all zeros
    again = FeatureState.from_dict(fs.to_dict())
    assert np.array_equal(again.transform(cols), out)


def test_augmentation_is_seeded_and_changes_images() -> None:
    x = torch.randn(4, 1, 8, 8)
    spec = Augment(horizontal_flip=0.5, crop_padding=1, rotation_degrees=10, gaussian_noise=0.1)
    a = augment_batch(x, spec, torch.Generator().manual_seed(1))
    b = augment_batch(x, spec, torch.Generator().manual_seed(1))
    c = augment_batch(x, spec, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == x.shape
    flip = augment_batch(x, Augment(horizontal_flip=1.0), torch.Generator())
    assert torch.equal(flip, x.flip(3))


def test_image_normalization_uses_training_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (60, 3, 4, 4)).astype(np.uint8)
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(60) % 3)
    spec = make_job({"dataset": {"type": "arrays", "arrays": {"path": str(tmp_path / "img.npz")},
                                 "split": {"val": 0.2, "seed": 1}},
                     "model": {"type": "cnn", "cnn": {"channels": [4]}}}).spec
    data = build_data(spec)
    parts = split_indices(60, spec.dataset.split)
    want = x[parts.train].mean(axis=(0, 2, 3))
    assert isinstance(data.state, ArrayState) and data.state.image is not None
    assert np.allclose(data.state.image.mean, want)
    assert state_from_dict(data.state.to_dict()) == data.state  # the saved JSON round-trips
    assert data.shapes.input_shape == (3, 4, 4)
    assert abs(float(data.train.x.mean())) < 1e-4
