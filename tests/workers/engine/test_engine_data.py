"""Loading, splitting and scaling datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from service.spec import DatasetSpec, UploadedDataset
from service.spec.datasets import BUILTIN_DATASETS, SYNTHETIC_DATASETS
from workers.engine.data import DATASETS, SCALERS, DatasetMissing, load_dataset, split_indices

CPU = torch.device("cpu")
parse = TypeAdapter(DatasetSpec).validate_python


def load(tmp: Path | None = None, **fields: object):
    return load_dataset(parse(fields), datasets_dir=tmp or Path("/nonexistent"), device=CPU)


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_builtin_shapes_match_what_sklearn_loads(name: str) -> None:
    spec = parse({"name": name})
    arrays = DATASETS[name](spec, Path("."))
    known = spec.shape
    assert arrays.features.shape == (known.n_samples, known.n_features)
    assert arrays.task == known.task
    assert arrays.n_classes == known.n_classes
    if known.task == "classification":
        assert sorted(np.unique(arrays.target)) == list(range(known.n_classes))
    assert load(name=name).shape == known


SYNTHETIC_FIELDS = {
    "moons": {"noise": 0.2},
    "circles": {"factor": 0.3},
    "spirals": {"n_classes": 3, "turns": 2.0},
    "blobs": {"n_features": 7, "centers": 4},
    "xor": {"noise": 0.05},
    "linear_regression": {"n_features": 6},
}


@pytest.mark.parametrize("name", SYNTHETIC_DATASETS)
def test_synthetic_shapes_match_known_shape(name: str) -> None:
    fields = {"name": name, "n_samples": 123, "seed": 7, **SYNTHETIC_FIELDS[name]}
    spec = parse(fields)
    arrays = DATASETS[name](spec, Path("."))
    known = spec.known_shape()
    assert arrays.features.shape == (known.n_samples, known.n_features)
    assert arrays.task == known.task
    assert arrays.n_classes == known.n_classes
    if known.task == "classification":
        assert set(np.unique(arrays.target)) == set(range(known.n_classes))
    again = DATASETS[name](spec, Path("."))
    np.testing.assert_array_equal(arrays.features, again.features)
    other = DATASETS[name](parse({**fields, "seed": 8}), Path("."))
    assert not np.array_equal(arrays.features, other.features)


def test_xor_labels_are_the_sign_of_the_product_without_noise() -> None:
    arrays = DATASETS["xor"](parse({"name": "xor", "noise": 0.0, "n_samples": 500}), Path("."))
    x = arrays.features
    np.testing.assert_array_equal(arrays.target, (x[:, 0] * x[:, 1] > 0).astype(np.int64))
    assert np.abs(x).max() <= 1.0


def test_spiral_arms_are_balanced() -> None:
    spec = parse({"name": "spirals", "n_samples": 301, "n_classes": 3})
    counts = np.bincount(DATASETS["spirals"](spec, Path(".")).target)
    assert counts.tolist() == [101, 100, 100]


def test_linear_regression_noise_is_relative_to_the_signal() -> None:
    def ols_r2(noise: float) -> float:
        spec = parse({"name": "linear_regression", "noise": noise, "n_samples": 2000})
        arrays = DATASETS["linear_regression"](spec, Path("."))
        x = np.c_[arrays.features, np.ones(len(arrays.features))]
        coef, *_ = np.linalg.lstsq(x, arrays.target, rcond=None)
        resid = arrays.target - x @ coef
        return 1 - resid.var() / arrays.target.var()

    assert ols_r2(0.0) == pytest.approx(1.0, abs=1e-12)
    assert ols_r2(0.1) == pytest.approx(1 / (1 + 0.1**2), abs=0.01)
    assert ols_r2(1.0) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("name", "val_fraction"),
    [("digits", 0.2), ("iris", 0.1), ("wine", 0.33), ("breast_cancer", 0.5), ("diabetes", 0.25)],
)
def test_split_sizes_are_exact_and_stratified(name: str, val_fraction: float) -> None:
    spec = parse({"name": name, "val_fraction": val_fraction, "split_seed": 3})
    arrays = DATASETS[name](spec, Path("."))
    train_idx, val_idx = split_indices(arrays, spec)
    n = len(arrays.target)
    assert (len(train_idx), len(val_idx)) == spec.split_sizes(n)
    assert sorted(np.r_[train_idx, val_idx].tolist()) == list(range(n))
    if arrays.task == "classification":
        overall = np.bincount(arrays.target) / n
        in_val = np.bincount(arrays.target[val_idx], minlength=len(overall))
        # Stratified: each class's share of the validation split is within one sample.
        assert np.all(np.abs(in_val - overall * len(val_idx)) <= 1.0)
    again, _ = split_indices(arrays, spec)
    np.testing.assert_array_equal(train_idx, again)
    other, _ = split_indices(arrays, parse({**spec.model_dump(), "split_seed": 4}))
    assert not np.array_equal(np.sort(train_idx), np.sort(other))


def test_standard_scaling_is_fitted_on_the_training_split_only() -> None:
    data = load(name="wine", scaling="standard")
    np.testing.assert_allclose(data.x_train.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    assert data.x_val.mean(0).abs().max() > 1e-3  # the val split was not used to fit


def test_minmax_scaling_is_fitted_on_the_training_split_only() -> None:
    data = load(name="wine", scaling="minmax")
    np.testing.assert_allclose(data.x_train.min(0).values.numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(data.x_train.max(0).values.numpy(), 1.0, atol=1e-6)
    assert data.x_val.min() != 0.0 or data.x_val.max() != 1.0


def test_no_scaling_keeps_the_raw_features() -> None:
    spec = parse({"name": "iris", "scaling": "none"})
    arrays = DATASETS["iris"](spec, Path("."))
    train_idx, _ = split_indices(arrays, spec)
    data = load(name="iris", scaling="none")
    np.testing.assert_allclose(data.x_train.numpy(), arrays.features[train_idx], rtol=1e-6)


@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_constant_features_stay_finite(scaling: str) -> None:
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    scaled = SCALERS[scaling](x).transform(x)
    assert np.isfinite(scaled).all()
    np.testing.assert_array_equal(scaled[:, 1], 0.0)


def test_tensors_have_the_engine_dtypes_and_digits_its_image_shape() -> None:
    data = load(name="digits")
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.y_train.shape == (len(data.x_train),)
    assert data.image_shape == (1, 8, 8) and data.shape.image_shape == (1, 8, 8)
    assert data.x_train.device == CPU
    reg = load(name="diabetes", target_scaling="none")
    assert reg.y_train.dtype == torch.float32 and reg.y_train.shape == (len(reg.x_train), 1)
    assert reg.y_train.mean() > 100  # raw targets, in their own units
    assert (reg.target_shift, reg.target_scale) == (0.0, 1.0) and not reg.target_scaled
    assert reg.n_classes is None and reg.shape.n_outputs == 1


def test_regression_targets_are_standardised_with_the_training_split() -> None:
    raw = load(name="diabetes", target_scaling="none")
    std = load(name="diabetes")  # "standard" is the default
    assert std.y_train.dtype == torch.float32 and std.y_train.shape == raw.y_train.shape
    y_train = raw.y_train.double().numpy()
    assert std.target_shift == pytest.approx(y_train.mean(), rel=1e-6)
    assert std.target_scale == pytest.approx(y_train.std(), rel=1e-6)
    assert 140 < std.target_shift < 160 and 70 < std.target_scale < 85 and std.target_scaled
    assert abs(std.y_train.double().mean().item()) < 1e-6
    assert std.y_train.double().std(unbiased=False).item() == pytest.approx(1.0, rel=1e-5)
    # Validation uses the training split's statistics, not its own.
    back = std.y_val.double() * std.target_scale + std.target_shift
    np.testing.assert_allclose(back.numpy(), raw.y_val.double().numpy(), rtol=1e-5)
    assert std.y_val.double().mean().item() != pytest.approx(0.0, abs=1e-6)
    # Features are untouched by target scaling.
    assert torch.equal(std.x_train, raw.x_train) and torch.equal(std.x_val, raw.x_val)


def test_a_constant_regression_target_keeps_a_unit_scale(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "flat.npz",
        features=rng.normal(size=(20, 2)),
        target=np.full(20, 3.5),
        task=np.array("regression"),
        n_classes=np.array(0),
    )
    data = load(tmp_path, name="uploaded", id="flat")
    assert (data.target_shift, data.target_scale) == (3.5, 1.0)
    assert torch.equal(data.y_train, torch.zeros_like(data.y_train))


def test_target_scaling_leaves_classification_alone() -> None:
    plain = load(name="wine", target_scaling="none")
    default = load(name="wine", target_scaling="standard")
    assert default.y_train.dtype == torch.int64
    assert torch.equal(plain.y_train, default.y_train) and torch.equal(plain.y_val, default.y_val)
    assert (default.target_shift, default.target_scale) == (0.0, 1.0)


def _write_upload(path: Path, task: str, n_classes: int) -> None:
    rng = np.random.default_rng(0)
    target = (
        rng.integers(0, n_classes, 40).astype(np.int64)
        if task == "classification"
        else rng.normal(size=40).astype(np.float32)
    )
    np.savez(
        path,
        features=rng.normal(size=(40, 3)).astype(np.float32),
        target=target,
        task=np.array(task),
        n_classes=np.array(n_classes),
    )


def test_uploaded_datasets_load_from_the_datasets_dir(tmp_path: Path) -> None:
    _write_upload(tmp_path / "abc-1.npz", "classification", 3)
    _write_upload(tmp_path / "reg_2.npz", "regression", 0)
    data = load(tmp_path, name="uploaded", id="abc-1", val_fraction=0.25)
    assert data.shape.n_samples == 40 and data.n_features == 3 and data.n_classes == 3
    assert (len(data.y_train), len(data.y_val)) == (30, 10)
    reg = load(tmp_path, name="uploaded", id="reg_2")
    assert reg.task == "regression" and reg.n_classes is None
    assert reg.y_val.shape == (8, 1)


@pytest.mark.parametrize("dataset_id", ["gone", "../escape", "a/b"])
def test_a_missing_upload_raises_dataset_missing(tmp_path: Path, dataset_id: str) -> None:
    (tmp_path / "sub" / "inner").mkdir(parents=True)
    # A file one level up: a naive path join with "../escape" would find it.
    _write_upload(tmp_path / "sub" / "escape.npz", "classification", 2)
    # The spec refuses such ids; the engine must not trust that, so bypass validation.
    spec = UploadedDataset.model_construct(
        name="uploaded", id=dataset_id, val_fraction=0.2, scaling="standard", split_seed=0
    )
    with pytest.raises(DatasetMissing, match="not found"):
        load_dataset(spec, datasets_dir=tmp_path / "sub" / "inner", device=CPU)


@pytest.mark.parametrize("dataset_id", ["../escape", "a/b", "x.npz", ""])
def test_the_spec_refuses_path_like_upload_ids(dataset_id: str) -> None:
    with pytest.raises(ValidationError):
        parse({"name": "uploaded", "id": dataset_id})
