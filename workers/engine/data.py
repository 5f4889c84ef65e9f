"""Datasets as tensors on the training device: load, split, scale.

Every dataset the spec names has a loader in ``DATASETS`` and every scaling a fitter in
``SCALERS``, under the spec's names. The whole dataset fits in memory (the API caps
its size), so it is moved to the device once and batches are sliced from it there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split

from service.spec import DatasetShape
from service.spec.common import Task
from service.spec.datasets import (
    BlobsDataset,
    BuiltinDataset,
    CirclesDataset,
    DatasetBase,
    LinearRegressionDataset,
    MoonsDataset,
    SpiralsDataset,
    UploadedDataset,
    XorDataset,
)
from workers.engine import synthetic


class DatasetMissing(FileNotFoundError):
    """An uploaded dataset's file is not in the datasets directory (deleted, or never there)."""


@dataclass(frozen=True)
class Arrays:
    """A whole dataset as numpy arrays, before it is split and scaled."""

    features: np.ndarray  # (n, n_features)
    target: np.ndarray  # (n,) class indices, or regression targets
    task: Task
    n_classes: int | None = None
    image_shape: tuple[int, int, int] | None = None
    #: The columns' names and (classification) each class index's label; None: the
    #: source has none, and ``load_dataset`` names them ``x0``…, ``"0"``….
    feature_names: list[str] | None = None
    class_labels: list[str] | None = None


@dataclass(frozen=True)
class SplitData:
    """Train and validation splits, already scaled and on the training device.

    ``x_*`` are float32 (n, n_features); ``y_*`` are int64 (n,) class indices for
    classification and float32 (n, 1) for regression. Regression targets are stored as
    ``(y − target_shift) / target_scale``: standardised with the training split's mean
    and std under ``target_scaling`` "standard", in their own units (shift 0, scale 1)
    under "none". Predictions map back with ``output · target_scale + target_shift``.

    What a saved model needs to take raw rows comes along: the fitted feature scaling
    (``scaling``, ``feature_shift``, ``feature_scale``: ``x = (raw − shift) / scale``), the
    columns' names, the classes' labels in class-index order, and the validation split's
    raw rows (float64, on the CPU), on which an export is checked.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    task: Task
    n_classes: int | None
    n_features: int
    image_shape: tuple[int, int, int] | None
    shape: DatasetShape
    target_shift: float = 0.0
    target_scale: float = 1.0
    scaling: str = "none"
    feature_shift: np.ndarray | None = None  # (n_features,) float64; None: no scaling
    feature_scale: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    class_labels: tuple[str, ...] | None = None
    raw_val: np.ndarray | None = None  # (n_val, n_features) float64

    @property
    def target_scaled(self) -> bool:
        return self.target_shift != 0.0 or self.target_scale != 1.0


Loader = Callable[[Any, Path], Arrays]


def _sklearn_bundled(load: Callable[..., Any]) -> Loader:
    def loader(spec: BuiltinDataset, datasets_dir: Path) -> Arrays:
        bunch = load()
        features, target = bunch.data, bunch.target
        names = [str(n) for n in bunch.feature_names]
        known = spec.shape
        if known.task == "regression":
            return Arrays(features, target, "regression", feature_names=names)
        return Arrays(
            features,
            target,
            "classification",
            int(target.max()) + 1,
            known.image_shape,
            feature_names=names,
            class_labels=[str(n) for n in bunch.target_names],  # digits: "0" … "9"
        )

    return loader


def _moons(spec: MoonsDataset, datasets_dir: Path) -> Arrays:
    x, y = skd.make_moons(spec.n_samples, noise=spec.noise, random_state=spec.seed)
    return Arrays(x, y, "classification", 2)


def _circles(spec: CirclesDataset, datasets_dir: Path) -> Arrays:
    x, y = skd.make_circles(
        spec.n_samples, noise=spec.noise, factor=spec.factor, random_state=spec.seed
    )
    return Arrays(x, y, "classification", 2)


def _blobs(spec: BlobsDataset, datasets_dir: Path) -> Arrays:
    x, y = skd.make_blobs(
        spec.n_samples,
        spec.n_features,
        centers=spec.centers,
        cluster_std=spec.noise,
        random_state=spec.seed,
    )
    return Arrays(x, y, "classification", spec.centers)


def _spirals(spec: SpiralsDataset, datasets_dir: Path) -> Arrays:
    x, y = synthetic.spirals(
        spec.n_samples,
        n_classes=spec.n_classes,
        turns=spec.turns,
        noise=spec.noise,
        seed=spec.seed,
    )
    return Arrays(x, y, "classification", spec.n_classes)


def _xor(spec: XorDataset, datasets_dir: Path) -> Arrays:
    x, y = synthetic.xor(spec.n_samples, noise=spec.noise, seed=spec.seed)
    return Arrays(x, y, "classification", 2)


def _linear_regression(spec: LinearRegressionDataset, datasets_dir: Path) -> Arrays:
    x, y = synthetic.linear_regression(
        spec.n_samples, n_features=spec.n_features, noise=spec.noise, seed=spec.seed
    )
    return Arrays(x, y, "regression")


# Ids come from the API (uuid4), but the spec only bounds their length: refuse anything
# that could walk out of the datasets directory.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")


def _uploaded(spec: UploadedDataset, datasets_dir: Path) -> Arrays:
    path = datasets_dir / f"{spec.id}.npz"
    if not _SAFE_ID.fullmatch(spec.id) or not path.is_file():
        raise DatasetMissing(
            f"uploaded dataset {spec.id!r} not found (looked for {path}); "
            "it may have been deleted: list yours with GET /v1/datasets"
        )
    with np.load(path, allow_pickle=False) as npz:
        features, target = npz["features"], npz["target"]
        task, n_classes = str(npz["task"]), int(npz["n_classes"])
        # Uploads since model bundles keep their headers and class labels; older ones
        # do not (the runner passes them from the dataset's row instead).
        names = [str(n) for n in npz["feature_names"]] if "feature_names" in npz else None
        labels = [str(c) for c in npz["classes"]] if "classes" in npz else None
    if task not in ("classification", "regression"):
        raise ValueError(f"uploaded dataset {spec.id!r} has an unknown task {task!r}")
    if features.ndim != 2 or target.shape != (features.shape[0],):
        raise ValueError(
            f"uploaded dataset {spec.id!r} is malformed: features {features.shape}, "
            f"target {target.shape}"
        )
    if names is not None and len(names) != features.shape[1]:
        names = None  # not this file's columns: fall back to x0, x1, …
    if task == "regression":
        return Arrays(features, target, "regression", feature_names=names)
    if labels is not None and len(labels) != n_classes:
        labels = None
    if n_classes < 1 or target.min() < 0 or target.max() >= n_classes:
        raise ValueError(
            f"uploaded dataset {spec.id!r} is malformed: class indices must lie in [0, {n_classes})"
        )
    return Arrays(
        features, target, "classification", n_classes, feature_names=names, class_labels=labels
    )


DATASETS: dict[str, Loader] = {
    "digits": _sklearn_bundled(skd.load_digits),
    "iris": _sklearn_bundled(skd.load_iris),
    "wine": _sklearn_bundled(skd.load_wine),
    "breast_cancer": _sklearn_bundled(skd.load_breast_cancer),
    "diabetes": _sklearn_bundled(skd.load_diabetes),
    "moons": _moons,
    "circles": _circles,
    "spirals": _spirals,
    "blobs": _blobs,
    "xor": _xor,
    "linear_regression": _linear_regression,
    "uploaded": _uploaded,
}


@dataclass(frozen=True)
class Scaler:
    """x ↦ (x − shift) / scale, per feature, with statistics of the training split."""

    shift: np.ndarray
    scale: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.shift) / self.scale


def _nonzero(spread: np.ndarray) -> np.ndarray:
    # A constant feature carries no information; dividing by 1 keeps it finite (at 0).
    return np.where(spread > 1e-12, spread, 1.0)


def _no_scaling(x: np.ndarray) -> Scaler:
    return Scaler(np.zeros(x.shape[1]), np.ones(x.shape[1]))


def _standard(x: np.ndarray) -> Scaler:
    return Scaler(x.mean(axis=0), _nonzero(x.std(axis=0)))


def _minmax(x: np.ndarray) -> Scaler:
    low = x.min(axis=0)
    return Scaler(low, _nonzero(x.max(axis=0) - low))


SCALERS: dict[str, Callable[[np.ndarray], Scaler]] = {
    "none": _no_scaling,
    "standard": _standard,
    "minmax": _minmax,
}


def split_indices(arrays: Arrays, spec: DatasetBase) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices with exactly ``spec.split_sizes(n)`` rows, stratified by
    class for classification so that small classes appear on both sides."""
    n = len(arrays.target)
    _, n_val = spec.split_sizes(n)
    stratify = arrays.target if arrays.task == "classification" else None
    try:
        train_idx, val_idx = train_test_split(
            np.arange(n), test_size=n_val, random_state=spec.split_seed, stratify=stratify
        )
    except ValueError as exc:
        raise ValueError(
            f"cannot split {n} samples with val_fraction {spec.val_fraction}: {exc}"
        ) from exc
    return train_idx, val_idx


def load_dataset(spec: DatasetBase, *, datasets_dir: Path, device: torch.device) -> SplitData:
    """Load the dataset ``spec`` names, split it, scale it (features, and regression
    targets under ``target_scaling``) and move it to ``device``."""
    arrays = DATASETS[spec.name](spec, datasets_dir)  # type: ignore[attr-defined]
    train_idx, val_idx = split_indices(arrays, spec)
    features = arrays.features.astype(np.float64)
    scaler = SCALERS[spec.scaling](features[train_idx])

    def x(idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(scaler.transform(features[idx]).astype(np.float32)).to(device)

    shift, scale = 0.0, 1.0
    if arrays.task == "regression" and spec.target_scaling == "standard":
        target_train = arrays.target[train_idx].astype(np.float64)
        shift = float(target_train.mean())
        scale = float(_nonzero(target_train.std(keepdims=True))[0])

    def y(idx: np.ndarray) -> torch.Tensor:
        if arrays.task == "classification":
            return torch.from_numpy(arrays.target[idx].astype(np.int64)).to(device)
        target = arrays.target[idx]
        if (shift, scale) != (0.0, 1.0):
            target = (target.astype(np.float64) - shift) / scale
        return torch.from_numpy(target.astype(np.float32).reshape(-1, 1)).to(device)

    n_samples, n_features = features.shape
    shape = DatasetShape(n_samples, n_features, arrays.task, arrays.n_classes, arrays.image_shape)
    labels = arrays.class_labels
    if arrays.task == "classification" and labels is None:
        labels = [str(i) for i in range(arrays.n_classes or 0)]
    return SplitData(
        x_train=x(train_idx),
        y_train=y(train_idx),
        x_val=x(val_idx),
        y_val=y(val_idx),
        task=arrays.task,
        n_classes=arrays.n_classes,
        n_features=n_features,
        image_shape=arrays.image_shape,
        shape=shape,
        target_shift=shift,
        target_scale=scale,
        scaling=spec.scaling,
        feature_shift=scaler.shift,
        feature_scale=scaler.scale,
        feature_names=tuple(arrays.feature_names or (f"x{i}" for i in range(n_features))),
        class_labels=tuple(labels) if labels is not None else None,
        raw_val=features[val_idx],
    )
