"""A bundle read back into a module: what ``descent.load_model`` returns.

A bundle is a job's ``model.json`` and ``model.pt`` (``model.onnx`` is not needed here):
the zip ``GET /v1/jobs/{id}/model?format=bundle`` answers, its bytes, or the job's folder
in the artifact store. The network is rebuilt from the manifest's model spec with the
same builder training used, so its layers and parameter names are the training ones.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import TypeAdapter
from torch import nn

from service.spec import DatasetShape, ModelSpec
from service.spec.bundle import MANIFEST, ModelManifest
from workers.engine.bundle import TARGET_KEYS, Predictor
from workers.engine.models import build_model

Source = str | os.PathLike[str] | bytes | bytearray
Rows = np.ndarray | torch.Tensor | Sequence[Sequence[float]] | Sequence[Mapping[str, float]]


class LoadedModel(Predictor):
    """A trained job's network, with the preprocessing it was trained with.

    - ``forward(x)`` takes *preprocessed* features and returns the network's raw outputs
      (logits, or standardised targets), exactly as the training network did;
    - ``preprocess(rows)`` turns raw rows into those features;
    - ``predict(rows)`` takes raw rows and returns the class labels (classification) or
      the predictions in the target's own units (regression), one per row;
    - ``predict_proba(rows)``: each class's probability, in ``class_labels`` order.

    Rows are a 2-D array, tensor or list of lists in ``feature_names`` order (one 1-D
    row is taken as one row), or a list of ``{feature name: value}`` mappings. The
    module is returned in eval mode on the CPU; ``predict`` always runs in eval mode.
    """

    def __init__(self, network: nn.Module, manifest: ModelManifest) -> None:
        if len(manifest.preprocessing) != 1:
            raise ValueError(
                f"model.json lists {len(manifest.preprocessing)} preprocessing steps; this "
                "version of Descent applies exactly one (feature_scaling): upgrade descent"
            )
        (scaling,) = manifest.preprocessing
        target = manifest.target_scaling
        super().__init__(
            network,
            task=manifest.task,
            shift=scaling.shift,
            scale=scaling.scale,
            target_shift=target.shift if target is not None else 0.0,
            target_scale=target.scale if target is not None else 1.0,
        )
        self.manifest = manifest

    @property
    def class_labels(self) -> list[str] | None:
        return self.manifest.class_labels

    @property
    def feature_names(self) -> list[str]:
        return self.manifest.input.feature_names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def preprocess(self, x: Rows) -> torch.Tensor:
        return super().preprocess(self._tensor(x))

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """(rows, classes) float32 probabilities of a classifier."""
        if self.task != "classification":
            raise TypeError("predict_proba is for classifiers; this model is a regression")
        return self._run(rows)

    def predict(self, rows: Rows) -> np.ndarray:
        """Per row: its most probable class's label (an array of str), or the prediction
        in the target's units (float32)."""
        out = self._run(rows)
        if self.task == "classification":
            assert self.class_labels is not None
            return np.asarray(self.class_labels)[out.argmax(axis=1)]
        return out[:, 0]

    def _run(self, rows: Rows) -> np.ndarray:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.from_raw(self._tensor(rows)).cpu().numpy()
        finally:
            self.train(was_training)

    def _tensor(self, rows: Rows) -> torch.Tensor:
        if isinstance(rows, Sequence) and rows and isinstance(rows[0], Mapping):
            rows = [self._by_name(i, row) for i, row in enumerate(rows)]  # type: ignore[arg-type]
        if not isinstance(rows, torch.Tensor):
            rows = torch.from_numpy(np.array(rows, dtype=np.float32))
        x = rows.to(dtype=torch.float32, device=self.shift.device)
        if x.dim() == 1:
            x = x.unsqueeze(0)
        n = self.manifest.input.n_features
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(
                f"rows have shape {tuple(x.shape)}; this model takes (rows, {n}) raw features "
                f"in the order of .feature_names"
            )
        return x

    def _by_name(self, i: int, row: Mapping[str, float]) -> list[float]:
        names = self.feature_names
        if missing := [n for n in names if n not in row]:
            raise ValueError(f"row {i}: missing feature(s) {missing[:5]}")
        if extra := [k for k in row if k not in set(names)]:
            raise ValueError(f"row {i}: unknown feature(s) {extra[:5]}; known: {names[:10]}")
        return [float(row[n]) for n in names]


def load_model(source: Source) -> LoadedModel:
    """The model of a bundle: a zip's path or bytes, or a job folder holding
    ``model.json`` and ``model.pt``."""
    manifest_text, weights = _read(source)
    manifest = ModelManifest.read(manifest_text)
    state: dict[str, Any] = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    for key in TARGET_KEYS:  # the manifest's target_scaling says the same
        state.pop(key, None)
    spec = TypeAdapter(ModelSpec).validate_python(manifest.model)
    shape = DatasetShape(
        n_samples=0,
        n_features=manifest.input.n_features,
        task=manifest.task,
        n_classes=manifest.n_outputs if manifest.task == "classification" else None,
        image_shape=manifest.input.image_shape,
    )
    network = build_model(spec, shape)
    network.load_state_dict(state)
    return LoadedModel(network, manifest).eval()


def _read(source: Source) -> tuple[bytes, bytes]:
    """(model.json, model.pt) bytes of a bundle."""
    if isinstance(source, bytes | bytearray):
        return _read_zip(zipfile.ZipFile(io.BytesIO(bytes(source))))
    path = Path(source)
    if path.is_dir():
        manifest = (path / MANIFEST).read_bytes()
        weights = ModelManifest.read(manifest).weights
        return manifest, (path / weights).read_bytes()
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is neither a bundle zip nor a folder holding {MANIFEST}")
    with zipfile.ZipFile(path) as zf:
        return _read_zip(zf)


def _read_zip(zf: zipfile.ZipFile) -> tuple[bytes, bytes]:
    # At the top of the zip as the API writes it, or in one folder if it was re-zipped.
    found = sorted(
        (n for n in zf.namelist() if n == MANIFEST or n.endswith("/" + MANIFEST)), key=len
    )
    if not found:
        raise ValueError(f"the zip holds no {MANIFEST}: not a Descent model bundle")
    manifest = zf.read(found[0])
    folder = found[0][: -len(MANIFEST)]
    return manifest, zf.read(folder + ModelManifest.read(manifest).weights)
