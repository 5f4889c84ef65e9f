"""A succeeded run's bundle: ``model.pt``, ``model.onnx`` and ``model.json``.

``train`` calls ``write_bundle`` at the end of a run that succeeded, into a folder its
caller names (the runner gives a folder of the attempt's own and moves the files into
place when it records the outcome). The manifest's shape is ``service/spec/bundle.py``;
``workers/engine/loaded.py`` reads a bundle back into a module.

``Predictor`` is the one definition of "raw rows in, answers out": the ONNX export is
traced from it, and the loaded model's ``predict`` runs it, so the two compute the very
same operations. A failed ONNX export does not fail the run: the manifest then has no
``onnx`` section and says why in ``onnx_error``.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from service.spec import JobSpec
from service.spec.bundle import (
    MANIFEST,
    ONNX,
    ONNX_INPUT,
    ONNX_OUTPUT,
    FeatureScaling,
    InputSignature,
    ModelManifest,
    OnnxExport,
    SavedWeights,
    TargetScaling,
)

if TYPE_CHECKING:
    from workers.engine.data import SplitData

log = logging.getLogger(__name__)

#: Keys the saved state dict gets when regression targets were scaled: the model predicts
#: ``(y − target_shift) / target_scale``, so ``y = output · target_scale + target_shift``.
#: Pop them before ``model.load_state_dict``.
TARGET_KEYS: tuple[str, str] = ("target_shift", "target_scale")

#: The ONNX operator set the export targets: onnxruntime 1.17 (the oldest we allow) runs it.
OPSET = 17
#: Rows of the validation split the export is checked on, at most.
CHECK_ROWS = 10_000


@dataclass(frozen=True)
class BundleTarget:
    """Where ``train`` writes a succeeded run's bundle, and whose run it is.

    ``feature_names`` / ``class_labels``, when given, replace what the dataset itself
    knows (an upload from before bundles keeps them only in its database row)."""

    dir: Path
    job_id: str
    job_name: str
    feature_names: list[str] | None = None
    class_labels: list[str] | None = None


class Predictor(nn.Module):
    """Raw rows → ``(x − shift) / scale`` → the network → class probabilities (softmax),
    or predictions in the target's units (``output · target_scale + target_shift``).

    ``from_raw`` is that whole path (and ``forward``: what the ONNX export traces);
    float32 throughout. The network is used as it is: put it in eval mode first."""

    shift: torch.Tensor
    scale: torch.Tensor
    target_shift: torch.Tensor
    target_scale: torch.Tensor

    def __init__(
        self,
        network: nn.Module,
        *,
        task: str,
        shift: np.ndarray | list[float],
        scale: np.ndarray | list[float],
        target_shift: float = 0.0,
        target_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.network = network
        self.task = task
        self.register_buffer("shift", torch.tensor(np.asarray(shift), dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(np.asarray(scale), dtype=torch.float32))
        self.register_buffer("target_shift", torch.tensor([target_shift], dtype=torch.float32))
        self.register_buffer("target_scale", torch.tensor([target_scale], dtype=torch.float32))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features as the network was trained on them."""
        return (x - self.shift) / self.scale

    def from_raw(self, x: torch.Tensor) -> torch.Tensor:
        output = self.network(self.preprocess(x))
        if self.task == "classification":
            return torch.softmax(output, dim=1)
        return output * self.target_scale + self.target_shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_raw(x)


def save_weights(model: nn.Module, path: Path, data: SplitData) -> None:
    """``model``'s state dict as ``model.pt`` always was: CPU tensors, with
    ``TARGET_KEYS`` when regression targets were scaled."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if data.target_scaled:
        values = (data.target_shift, data.target_scale)
        state |= {
            k: torch.tensor([v], dtype=torch.float32)
            for k, v in zip(TARGET_KEYS, values, strict=True)
        }
    torch.save(state, path)


def write_bundle(
    target: BundleTarget,
    *,
    spec: JobSpec,
    data: SplitData,
    model: nn.Module,
    saved: SavedWeights,
    n_parameters: int,
) -> ModelManifest:
    """Write ``model.onnx`` (when the export works) and ``model.json`` beside the
    ``model.pt`` already in ``target.dir``; returns the manifest. ``model`` holds the
    saved weights; it is copied to the CPU, not changed."""
    network = copy.deepcopy(model).cpu().eval()
    shift = _floats(data.feature_shift, data.n_features, 0.0)
    scale = _floats(data.feature_scale, data.n_features, 1.0)
    predictor = Predictor(
        network,
        task=data.task,
        shift=shift,
        scale=scale,
        target_shift=data.target_shift,
        target_scale=data.target_scale,
    ).eval()
    onnx: OnnxExport | None = None
    onnx_error: str | None = None
    try:
        onnx = _export(predictor, data, target.dir / ONNX)
    except Exception as exc:  # a good run keeps its weights and manifest regardless
        log.warning("job %s: ONNX export failed: %s", target.job_id, exc, exc_info=True)
        (target.dir / ONNX).unlink(missing_ok=True)
        onnx_error = f"{type(exc).__name__}: {exc}"[:500]
    manifest = ModelManifest(
        job_id=target.job_id,
        job_name=target.job_name,
        task=data.task,
        model=spec.model.model_dump(mode="json"),
        spec=spec.model_dump(mode="json"),
        input=InputSignature(
            n_features=data.n_features,
            feature_names=_names(target.feature_names, data),
            image_shape=_image_shape(spec, data),
        ),
        preprocessing=[FeatureScaling(method=data.scaling, shift=shift, scale=scale)],
        target_scaling=(
            TargetScaling(
                method="standard" if data.target_scaled else "none",
                shift=data.target_shift,
                scale=data.target_scale,
            )
            if data.task == "regression"
            else None
        ),
        class_labels=_labels(target.class_labels, data),
        n_outputs=data.shape.n_outputs,
        n_parameters=n_parameters,
        saved=saved,
        onnx=onnx,
        onnx_error=onnx_error,
        versions=_versions(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    (target.dir / MANIFEST).write_text(manifest.model_dump_json(indent=2))
    return manifest


def _floats(values: np.ndarray | None, n: int, default: float) -> list[float]:
    return [default] * n if values is None else [float(v) for v in values]


def _names(given: list[str] | None, data: SplitData) -> list[str]:
    if given is not None and len(given) == data.n_features:
        return list(given)
    return list(data.feature_names) or [f"x{i}" for i in range(data.n_features)]


def _labels(given: list[str] | None, data: SplitData) -> list[str] | None:
    if data.task != "classification":
        return None
    if given is not None and len(given) == data.shape.n_outputs:
        return list(given)
    if data.class_labels is not None:
        return list(data.class_labels)
    return [str(i) for i in range(data.shape.n_outputs)]


def _image_shape(spec: JobSpec, data: SplitData) -> tuple[int, int, int] | None:
    resolve = getattr(spec.model, "resolve_input_shape", None)
    shape = resolve(data.shape) if resolve is not None else None
    return tuple(shape) if shape is not None else data.image_shape


def _versions() -> dict[str, str]:
    versions = {"descent": _version("descent"), "torch": torch.__version__}
    for package in ("onnx", "onnxruntime"):
        found = _version(package)
        if found != "unknown":
            versions[package] = found
    return versions


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


# -- ONNX ---------------------------------------------------------------------------------


def _export(predictor: Predictor, data: SplitData, path: Path) -> OnnxExport:
    """Trace ``predictor`` into ``path`` (a dynamic number of rows), then, where
    onnxruntime is installed, run both on the validation split's raw rows."""
    output = ONNX_OUTPUT[data.task]
    example = torch.zeros(2, data.n_features)
    with warnings.catch_warnings():
        # torch ≥ 2.9 warns that the TorchScript-based exporter is the old one. We keep
        # it on purpose: the new (dynamo) exporter needs onnxscript, which we do not
        # ship, and these plain feed-forward graphs are what the old one handles well.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export")
        torch.onnx.export(
            predictor,
            (example,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=[output],
            dynamic_axes={ONNX_INPUT: {0: "rows"}, output: {0: "rows"}},
            opset_version=OPSET,
            dynamo=False,
        )
    max_abs_diff, rows = _check(predictor, path.read_bytes(), data)
    return OnnxExport(opset=OPSET, output=output, max_abs_diff=max_abs_diff, rows_checked=rows)


def _check(predictor: Predictor, blob: bytes, data: SplitData) -> tuple[float | None, int]:
    """The largest absolute difference between onnxruntime and PyTorch over the
    validation split's raw rows (float32, as a user would send them); (None, 0) without
    onnxruntime or rows."""
    try:
        import onnxruntime
    except ImportError:
        return None, 0
    if data.raw_val is None or len(data.raw_val) == 0:
        return None, 0
    rows = data.raw_val[:CHECK_ROWS].astype(np.float32)
    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {ONNX_INPUT: rows})
    with torch.no_grad():
        want = predictor(torch.from_numpy(rows)).numpy()
    return float(np.max(np.abs(got - want))), len(rows)


def saved_weights(*, epoch: int, restored: bool, metrics: dict[str, float] | None) -> SavedWeights:
    """Which epoch's weights are kept: the best one's when early stopping restored them."""
    values: dict[str, Any] = dict(metrics or {})
    return SavedWeights(
        epoch=epoch,
        reason="best_epoch" if restored else "last_epoch",
        # JSON has no NaN or infinity: null, as the epoch's row stores them.
        metrics={k: _finite(v) for k, v in values.items()},
    )


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None
