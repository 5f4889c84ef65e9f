"""Model bundles made by the tests, laid out as the worker leaves them for a succeeded job.

The prediction tests want models of known content (seeded weights, a chosen scaling, any
feature names and labels, a bundle rewritten in place) without training one each time: a
small PyTorch MLP with the preprocessing folded in (standard scaling of the features;
softmax, or the target's scale and shift), exported to ONNX the way the worker exports
(input ``features``, output ``probabilities`` or ``prediction``, rows dynamic), with a
:class:`ModelManifest` beside it. :func:`finish_with_bundle` makes a queued job look
succeeded with that bundle. Bundles the worker itself writes are predicted from in
tests/workers/test_runner_bundle.py and the browser tests.

torch is imported here, on the tests' side only; the API never imports it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from service.spec.bundle import (
    MANIFEST,
    ONNX,
    ONNX_INPUT,
    ONNX_OUTPUT,
    WEIGHTS,
    FeatureScaling,
    InputSignature,
    ModelManifest,
    OnnxExport,
    SavedWeights,
    TargetScaling,
)

IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
IRIS_LABELS = ["setosa", "versicolor", "virginica"]
OPSET = 17


def _network(n_in: int, hidden: Sequence[int], n_out: int, seed: int) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers).eval()


def _wrapper(
    net: Any,
    task: str,
    shift: np.ndarray,
    scale: np.ndarray,
    target: TargetScaling | None,
) -> Any:
    """The network with the preprocessing around it: raw rows in, answers out."""
    import torch
    from torch import nn

    class Raw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32))
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            out = self.net((features - self.shift) / self.scale)
            if task == "classification":
                return torch.softmax(out, dim=1)
            if target is not None:
                return out * target.scale + target.shift
            return out

    return Raw().eval()


def write_bundle(
    folder: Path,
    *,
    job_id: str,
    task: Literal["classification", "regression"] = "classification",
    feature_names: Sequence[str] = IRIS_FEATURES,
    labels: Sequence[str] | None = IRIS_LABELS,
    hidden: Sequence[int] = (8,),
    saved_epoch: int = 3,
    seed: int = 0,
    shift: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    target: TargetScaling | None = None,
) -> ModelManifest:
    """Write ``model.onnx``, ``model.pt`` and ``model.json`` into ``folder``."""
    import torch

    n_in = len(feature_names)
    n_out = len(labels or ()) if task == "classification" else 1
    assert n_out >= 1
    shift_ = np.asarray(shift if shift is not None else np.zeros(n_in), dtype=np.float32)
    scale_ = np.asarray(scale if scale is not None else np.ones(n_in), dtype=np.float32)
    net = _network(n_in, hidden, n_out, seed)
    model = _wrapper(net, task, shift_, scale_, target)
    folder.mkdir(parents=True, exist_ok=True)
    output = ONNX_OUTPUT[task]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(
            model,
            (torch.zeros(2, n_in),),
            str(folder / ONNX),
            dynamo=False,
            opset_version=OPSET,
            input_names=[ONNX_INPUT],
            output_names=[output],
            dynamic_axes={ONNX_INPUT: {0: "rows"}, output: {0: "rows"}},
        )
    torch.save(net.state_dict(), folder / WEIGHTS)
    model_section = {"kind": "mlp", "hidden": list(hidden), "activation": "relu"}
    manifest = ModelManifest(
        job_id=job_id,
        job_name=f"test-{task}",
        task=task,
        model=model_section,
        spec={"model": model_section},
        input=InputSignature(n_features=n_in, feature_names=list(feature_names)),
        preprocessing=[
            FeatureScaling(method="standard", shift=shift_.tolist(), scale=scale_.tolist())
        ],
        target_scaling=target,
        class_labels=list(labels) if task == "classification" and labels else None,
        n_outputs=n_out,
        n_parameters=sum(p.numel() for p in net.parameters()),
        saved=SavedWeights(epoch=saved_epoch, reason="last_epoch", metrics={"val_loss": 0.5}),
        onnx=OnnxExport(opset=OPSET, output=output),
        versions={"descent": "test", "torch": torch.__version__},
        created_at=datetime.now(UTC).isoformat(),
    )
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2))
    return manifest


def reference(folder: Path, rows: Sequence[Sequence[float]]) -> np.ndarray:
    """What onnxruntime, called directly, makes of ``rows`` with the bundle in ``folder``."""
    import onnxruntime

    manifest = ModelManifest.read((folder / MANIFEST).read_text())
    session = onnxruntime.InferenceSession(str(folder / ONNX), providers=["CPUExecutionProvider"])
    features = np.asarray(rows, dtype=np.float32)
    return session.run([ONNX_OUTPUT[manifest.task]], {ONNX_INPUT: features})[0]


def mark_succeeded(database_url: str, job_id: str, *, bundle: bool = True) -> None:
    """Make a queued job look as a worker leaves a succeeded one (weights, and a bundle
    unless ``bundle`` is false: a job trained before bundles existed)."""
    from service.db import make_engine, make_sessionmaker, session_scope, utcnow
    from service.jobs.states import JobStatus
    from service.models import Job  # every model: the row's foreign keys resolve

    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status, job.attempt, job.epochs_completed = JobStatus.SUCCEEDED, 1, 3
            job.started_at = job.finished_at = utcnow()
            job.has_model, job.has_bundle, job.device = True, bundle, "cpu"
            job.saved_epoch = 3 if bundle else None
    finally:
        engine.dispose()


def finish_with_bundle(database_url: str, jobs_dir: Path, job_id: str, **bundle: Any) -> Path:
    """:func:`write_bundle` for a job of ``jobs_dir`` and :func:`mark_succeeded`; the
    bundle's folder."""
    folder = jobs_dir / job_id
    write_bundle(folder, job_id=job_id, **bundle)
    mark_succeeded(database_url, job_id)
    return folder
