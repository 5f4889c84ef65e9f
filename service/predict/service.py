"""Predictions with a succeeded job's model: which jobs can answer, and the answer.

The model is the job's bundle (``<jobs_dir>/<id>/``: ``model.json`` and ``model.onnx``,
written by the worker; :mod:`service.spec.bundle`), run with onnxruntime from the
:class:`~service.predict.cache.ModelCache`: the API never imports torch.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.config import Settings
from service.errors import Conflict, Invalid
from service.jobs import service as jobs
from service.jobs.states import JobKind, JobStatus
from service.predict.cache import LoadedModel
from service.spec import FieldError

__all__ = ["answer_csv", "answer_json", "bundle_folder", "predict"]


def bundle_folder(*, session: Session, settings: Settings, job_id: str, owner: str) -> Path:
    """Where ``owner``'s job keeps its bundle: 404 for anyone else's (or no) job, 409 for a
    job that has no model to predict with."""
    job = jobs.get(session=session, job_id=job_id, owner=owner)
    if job.kind != JobKind.TRAIN:
        raise Conflict(
            f"job {job.id} is a {job.kind} job; it trains no model to predict with: predict "
            "with a training job"
        )
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(
            f"job {job.id} is {job.status}; predictions need a training job that succeeded"
        )
    if not job.has_bundle:
        raise Conflict(
            f"job {job.id} has no model bundle (it was trained before Descent kept one): "
            f"download its weights, a PyTorch state dict, with GET /v1/jobs/{job.id}/model "
            "and predict with PyTorch, or train it again"
        )
    return settings.jobs_dir / job.id


def predict(model: LoadedModel, features: np.ndarray) -> dict[str, Any]:
    """The model's answer for checked rows, as :class:`PredictionRead` has it."""
    output = np.asarray(model.run(features)).reshape(len(features), -1)
    finite = np.isfinite(output).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)[:10].tolist()
        raise Invalid(
            f"the model's output is not finite for rows {rows} (counting from 0): their "
            "values are far outside what it was trained on",
            fields=[FieldError(f"rows.{i}", "the model's output is not finite") for i in rows],
        )
    manifest = model.manifest
    doc: dict[str, Any] = {
        "job_id": model.job_id,
        "task": manifest.task,
        "n_rows": len(features),
        "saved_epoch": manifest.saved.epoch,
        "feature_names": model.feature_names,
        "labels": None,
        "predictions": None,
        "probabilities": None,
    }
    if manifest.task == "classification":
        labels = model.labels or [str(i) for i in range(output.shape[1])]
        doc["labels"] = labels
        doc["predictions"] = np.asarray(labels, dtype=object)[output.argmax(axis=1)].tolist()
        doc["probabilities"] = output.tolist()
    else:
        doc["predictions"] = output[:, 0].tolist()
    return doc


def answer_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def answer_csv(doc: dict[str, Any]) -> str:
    """One line per row: ``prediction``, then ``probability_<label>`` per class."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    labels = doc["labels"]
    if labels is None:
        writer.writerow(["prediction"])
        writer.writerows([p] for p in doc["predictions"])
    else:
        writer.writerow(["prediction", *(f"probability_{label}" for label in labels)])
        writer.writerows(
            [p, *row] for p, row in zip(doc["predictions"], doc["probabilities"], strict=True)
        )
    return out.getvalue()
