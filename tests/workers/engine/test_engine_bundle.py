"""Model bundles end to end in the engine: small real runs write model.pt, model.onnx and
model.json (workers/engine/bundle.py); ``descent.load_model`` reads them back
(workers/engine/loaded.py) and predicts on raw rows as onnxruntime runs the export."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from sklearn import datasets as skd

import descent
from service.spec import JobSpec
from service.spec.bundle import ModelManifest
from workers.engine import ListReporter, TrainResult, train
from workers.engine.bundle import BundleTarget
from workers.engine.data import DATASETS, load_dataset, split_indices
from workers.engine.regularize import EarlyStopping

NO_DIR = Path("/nonexistent")
ROOT = Path(__file__).resolve().parents[3]

#: Each model kind and task, small enough to train in well under a second.
SPECS: dict[str, dict[str, Any]] = {
    # A linear classifier with min-max scaling and string class names (sklearn's).
    "linear": {
        "dataset": {"name": "iris", "scaling": "minmax"},
        "model": {"kind": "linear"},
        "training": {"epochs": 3},
    },
    # An MLP with batch norm and dropout; early stopping that (in mode "max" on the
    # training loss, which falls) finds epoch 1 best and stops at epoch 3, restoring it.
    "mlp": {
        "dataset": {"name": "digits"},
        "model": {"kind": "mlp", "hidden": [32], "batch_norm": True, "dropout": 0.2},
        "regularization": {
            "early_stopping": {
                "monitor": "train_loss",
                "mode": "max",
                "patience": 2,
                "restore_best_weights": True,
            }
        },
        "training": {"epochs": 6},
    },
    "cnn": {
        "dataset": {"name": "digits"},
        "model": {"kind": "cnn", "channels": [4], "hidden": [16], "batch_norm": True},
        "training": {"epochs": 2},
    },
    # Regression with standardised targets: predictions come back in the target's units.
    "regression": {
        "dataset": {"name": "linear_regression", "n_samples": 300},
        "model": {"kind": "mlp", "hidden": [16]},
        "training": {"epochs": 3},
    },
}


@cache
def trained(kind: str, root: Path) -> tuple[JobSpec, TrainResult, ListReporter, Path]:
    spec = JobSpec.model_validate(SPECS[kind])
    reporter = ListReporter()
    folder = root / kind
    result = train(
        spec,
        reporter=reporter,
        datasets_dir=NO_DIR,
        bundle=BundleTarget(folder, f"job-{kind}", f"{kind} job"),
    )
    assert result.status == "succeeded", result
    return spec, result, reporter, folder


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("bundles")


def raw_val(spec: JobSpec) -> np.ndarray:
    data = load_dataset(spec.dataset, datasets_dir=NO_DIR, device=torch.device("cpu"))
    assert data.raw_val is not None
    return data.raw_val.astype(np.float32)


def onnx_run(folder: Path, rows: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    (out,) = session.run(None, {"features": rows})
    return out


def close(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference, relative to the magnitude where that exceeds 1 (float32
    cannot hold 150.0 to better than 1.5e-5), else absolute."""
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


@pytest.mark.parametrize("kind", list(SPECS))
def test_load_model_predicts_as_the_onnx_export_does(kind: str, root: Path) -> None:
    spec, result, reporter, folder = trained(kind, root)
    assert result.has_bundle
    assert {p.name for p in folder.iterdir()} == {"model.pt", "model.onnx", "model.json"}
    manifest = ModelManifest.read((folder / "model.json").read_text())
    model = descent.load_model(folder)
    assert isinstance(model, torch.nn.Module) and not model.training
    rows = raw_val(spec)
    exported = onnx_run(folder, rows)
    # The export was checked when it was written, on these very rows.
    assert manifest.onnx is not None and manifest.onnx.rows_checked == len(rows)
    assert manifest.onnx.max_abs_diff is not None
    if manifest.task == "classification":
        assert manifest.onnx.output == "probabilities"
        proba = model.predict_proba(rows)
        assert exported.shape == proba.shape == (len(rows), manifest.n_outputs)
        assert np.max(np.abs(proba - exported)) <= 1e-5
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
        labels = np.asarray(manifest.class_labels)[exported.argmax(axis=1)]
        assert model.predict(rows).tolist() == labels.tolist()
        assert manifest.onnx.max_abs_diff <= 1e-5
    else:
        assert manifest.onnx.output == "prediction" and exported.shape == (len(rows), 1)
        assert close(model.predict(rows), exported[:, 0]) <= 1e-5
        assert manifest.onnx.max_abs_diff <= 1e-5 * max(1.0, float(np.abs(exported).max()))


@pytest.mark.parametrize("kind", list(SPECS))
def test_predictions_score_what_the_saved_epoch_recorded(kind: str, root: Path) -> None:
    """predict on raw rows reproduces the saved epoch's validation metrics: the fitted
    preprocessing, the weights' epoch and the target's units are all the training ones."""
    spec, result, reporter, folder = trained(kind, root)
    model = descent.load_model(folder)
    data = load_dataset(spec.dataset, datasets_dir=NO_DIR, device=torch.device("cpu"))
    saved = result.saved_metrics
    assert saved is not None
    rows = raw_val(spec)
    if model.manifest.task == "classification":
        truth = np.asarray(model.class_labels)[data.y_val.numpy()]
        accuracy = float(np.mean(model.predict(rows) == truth))
        # float32 preprocessing here, float64 in training: a tie may flip, no more.
        assert abs(accuracy - saved["val_accuracy"]) <= 1 / len(rows)
    else:
        truth = data.y_val.numpy()[:, 0] * data.target_scale + data.target_shift
        mae = float(np.mean(np.abs(model.predict(rows) - truth)))
        assert mae == pytest.approx(saved["val_mae"], rel=1e-3)
        assert data.target_scale > 10  # in the target's units, not standardised ones


def test_manifest_describes_inputs_outputs_and_preprocessing(root: Path) -> None:
    spec, result, _, folder = trained("linear", root)
    manifest = ModelManifest.read((folder / "model.json").read_text())
    iris = skd.load_iris()
    assert manifest.job_id == "job-linear" and manifest.job_name == "linear job"
    assert manifest.task == "classification" and manifest.n_outputs == 3
    assert manifest.class_labels == ["setosa", "versicolor", "virginica"]
    assert manifest.input.feature_names == list(iris.feature_names)
    assert manifest.input.n_features == 4 and manifest.input.image_shape is None
    assert manifest.model == spec.model.model_dump(mode="json")
    assert manifest.spec == spec.model_dump(mode="json")
    assert manifest.n_parameters == result.n_parameters == 4 * 3 + 3
    assert manifest.target_scaling is None
    # Min-max scaling fitted on the training split alone.
    train_idx, _ = split_indices(DATASETS["iris"](spec.dataset, NO_DIR), spec.dataset)
    x = iris.data[train_idx]
    (scaling,) = manifest.preprocessing
    assert scaling.method == "minmax"
    np.testing.assert_allclose(scaling.shift, x.min(axis=0))
    np.testing.assert_allclose(scaling.scale, x.max(axis=0) - x.min(axis=0))
    assert set(manifest.versions) >= {"descent", "torch", "onnx"}
    assert manifest.versions["torch"] == torch.__version__


def test_standard_scaling_and_image_shape_of_digits(root: Path) -> None:
    spec, _, _, folder = trained("cnn", root)
    manifest = ModelManifest.read((folder / "model.json").read_text())
    digits = skd.load_digits()
    assert manifest.input.image_shape == (1, 8, 8)
    assert manifest.input.feature_names == list(digits.feature_names)
    assert manifest.class_labels == [str(i) for i in range(10)]
    train_idx, _ = split_indices(DATASETS["digits"](spec.dataset, NO_DIR), spec.dataset)
    x = digits.data[train_idx]
    (scaling,) = manifest.preprocessing
    assert scaling.method == "standard"
    np.testing.assert_allclose(scaling.shift, x.mean(axis=0))
    std = x.std(axis=0)
    np.testing.assert_allclose(scaling.scale, np.where(std > 1e-12, std, 1.0))


def test_restored_best_weights_are_the_saved_epoch(root: Path) -> None:
    spec, result, reporter, folder = trained("mlp", root)
    manifest = ModelManifest.read((folder / "model.json").read_text())
    assert result.stop_epoch == 3 and result.epochs_completed == 3
    assert result.best_epoch == 1
    assert result.saved_epoch == manifest.saved.epoch == 1
    assert manifest.saved.reason == "best_epoch"
    epoch_1 = reporter.history[0]
    assert result.saved_metrics == epoch_1 == manifest.saved.metrics
    assert result.final_metrics == reporter.history[-1] != epoch_1
    # The weights are epoch 1's: the checkpoint of epoch 1 holds the same tensors.
    first = reporter.checkpoints[0]
    assert first is not None
    state = torch.load(folder / "model.pt", weights_only=True)
    for key, value in first.state["model"].items():
        assert torch.equal(state[key], value), key


def test_last_epoch_is_saved_without_restoring(root: Path) -> None:
    _, result, reporter, folder = trained("cnn", root)
    manifest = ModelManifest.read((folder / "model.json").read_text())
    assert manifest.saved.epoch == result.saved_epoch == result.epochs_completed == 2
    assert manifest.saved.reason == "last_epoch"
    assert manifest.saved.metrics == reporter.history[-1]


def test_regression_manifest_has_the_target_scaling(root: Path) -> None:
    spec, _, _, folder = trained("regression", root)
    manifest = ModelManifest.read((folder / "model.json").read_text())
    data = load_dataset(spec.dataset, datasets_dir=NO_DIR, device=torch.device("cpu"))
    assert manifest.class_labels is None and manifest.n_outputs == 1
    assert manifest.input.feature_names == ["x0", "x1", "x2", "x3", "x4"][: data.n_features]
    assert manifest.target_scaling is not None
    assert manifest.target_scaling.method == "standard"
    assert manifest.target_scaling.shift == data.target_shift != 0.0
    assert manifest.target_scaling.scale == data.target_scale
    # model.pt is as before bundles: the state dict with the target's shift and scale.
    state = torch.load(folder / "model.pt", weights_only=True)
    assert float(state["target_shift"]) == pytest.approx(data.target_shift)


def test_load_model_takes_a_zip_its_bytes_and_rows_by_name(root: Path, tmp_path: Path) -> None:
    spec, _, _, folder = trained("linear", root)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ("model.json", "model.pt"):
            zf.write(folder / name, f"bundle/{name}")  # re-zipped into a folder
    (tmp_path / "m.zip").write_bytes(buf.getvalue())
    rows = raw_val(spec)[:5]
    want = descent.load_model(folder).predict_proba(rows)
    for source in (buf.getvalue(), tmp_path / "m.zip", str(tmp_path / "m.zip")):
        np.testing.assert_array_equal(descent.load_model(source).predict_proba(rows), want)
    model = descent.load_model(folder)
    named = [dict(zip(model.feature_names, map(float, row), strict=True)) for row in rows]
    np.testing.assert_array_equal(model.predict_proba(named), want)
    # forward takes preprocessed features, as the training network did.
    logits = model(model.preprocess(rows))
    np.testing.assert_allclose(torch.softmax(logits, 1).detach().numpy(), want, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(rows, 4\)"):
        model.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="missing feature"):
        model.predict([{"petal width (cm)": 1.0}])
    with pytest.raises(TypeError, match="regression"):
        descent.load_model(trained("regression", root)[3]).predict_proba(rows)
    with pytest.raises(ValueError, match="no model.json"):
        descent.load_model(b"PK\x05\x06" + b"\0" * 18)  # an empty zip


def test_a_fresh_python_with_only_descent_loads_the_bundle(root: Path, tmp_path: Path) -> None:
    spec, _, _, folder = trained("cnn", root)
    rows = raw_val(spec)
    np.save(tmp_path / "rows.npy", rows)
    script = (
        "import sys, numpy as np, descent\n"
        "assert 'torch' not in sys.modules and 'workers' not in sys.modules\n"
        "model = descent.load_model(sys.argv[1])\n"
        "np.save(sys.argv[3], model.predict_proba(np.load(sys.argv[2])))\n"
    )
    out = tmp_path / "proba.npy"
    subprocess.run(
        [sys.executable, "-c", script, str(folder), str(tmp_path / "rows.npy"), str(out)],
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert np.max(np.abs(np.load(out) - onnx_run(folder, rows))) <= 1e-5


def test_a_failed_onnx_export_keeps_the_weights_and_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("an operator ONNX lacks")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    spec = JobSpec.model_validate(SPECS["linear"])
    result = train(
        spec,
        reporter=ListReporter(),
        datasets_dir=NO_DIR,
        bundle=BundleTarget(tmp_path, "j", "j"),
    )
    assert result.status == "succeeded" and result.has_bundle
    assert {p.name for p in tmp_path.iterdir()} == {"model.pt", "model.json"}
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert manifest["onnx"] is None
    assert manifest["onnx_error"] == "RuntimeError: an operator ONNX lacks"
    assert descent.load_model(tmp_path).predict(raw_val(spec)).shape == (30,)


def test_early_stopping_state_from_before_best_metrics_still_loads() -> None:
    tracker = EarlyStopping("val_loss")
    tracker.load_state_dict(
        {"best_value": 0.5, "best_epoch": 2, "bad_epochs": 1, "best_state": None}
    )
    assert tracker.best_epoch == 2 and tracker.best_metrics is None
    tracker.update(3, 0.4, torch.nn.Linear(1, 1), {"val_loss": 0.4, "epoch": 3.0})
    assert tracker.state_dict()["best_metrics"] == {"val_loss": 0.4, "epoch": 3.0}
