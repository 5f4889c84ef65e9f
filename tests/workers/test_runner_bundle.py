"""A succeeded job's bundle through the real path, on both backends: a CSV with string
class labels uploaded over the API, a job submitted on it, run in this process by
``workers.runner.run_job`` exactly as a worker would run it, then its columns and files
read back and every format of ``GET /v1/jobs/{id}/model`` downloaded."""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import sse
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from support import IN_PROCESS_WORKER, Backend, bearer, make_user

import descent
from service.config import Settings
from service.jobs.models import EpochMetric, Job
from workers import runner

LABELS = ["cat", "dog", "eel"]


def csv_rows(n: int = 90) -> tuple[bytes, np.ndarray]:
    """Three separable classes named by strings, in columns with headers of their own."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, -1.0]
    y = np.arange(n) % 3
    x[:, 0] += 4 * y
    lines = ["height,weight,shade,kind"]
    lines += [f"{a:.6f},{b:.6f},{c:.6f},{LABELS[k]}" for (a, b, c), k in zip(x, y, strict=True)]
    return ("\n".join(lines) + "\n").encode(), x.astype(np.float32)


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings().model_copy(update=IN_PROCESS_WORKER)


@pytest.fixture
def api(backend: Backend, settings: Settings) -> Iterator[TestClient]:
    from service.main import create_app

    token = make_user(backend, "bundler")
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        yield client


def run(api: TestClient, settings: Settings, sessions: sessionmaker[Session], spec: Any) -> str:
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    with sessions() as s:
        dispatch = s.scalar(select(Job.dispatch).where(Job.id == job_id))
    runner.run_job(job_id, settings=settings, dispatch=dispatch, send=lambda *a: None)
    return job_id


def test_a_succeeded_job_keeps_its_bundle_and_serves_every_format(
    api: TestClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The API builds a bundle's zip in a temporary file: here, in a folder we can watch.
    (tmp_path / "api-tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "api-tmp"))
    data, rows = csv_rows()
    r = api.post("/v1/datasets", files={"file": ("pets.csv", data, "text/csv")})
    assert r.status_code == 201, r.text
    dataset = r.json()
    assert dataset["classes"] == LABELS
    job_id = run(
        api,
        settings,
        sessions,
        {
            "dataset": {"name": "uploaded", "id": dataset["id"]},
            "model": {"kind": "mlp", "hidden": [8]},
            "regularization": {
                "early_stopping": {
                    "monitor": "train_loss",
                    "mode": "max",  # the loss falls: epoch 1 stays the best
                    "patience": 2,
                    "restore_best_weights": True,
                }
            },
            "training": {"epochs": 5, "batch_size": 16},
        },
    )
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert job["has_model"] and job["has_bundle"]
    assert job["stop_epoch"] == 3 and job["saved_epoch"] == 1
    with sessions() as s:
        recorded = dict(
            s.execute(
                select(EpochMetric.epoch, EpochMetric.values).where(EpochMetric.job_id == job_id)
            ).all()
        )
    assert job["saved_metrics"] == recorded[1] != job["final_metrics"]
    assert job["final_metrics"] == recorded[3]
    assert job["best_metrics"] == {
        "train_loss": min(v["train_loss"] for v in recorded.values()),
        "val_loss": min(v["val_loss"] for v in recorded.values()),
        "train_accuracy": max(v["train_accuracy"] for v in recorded.values()),
        "val_accuracy": max(v["val_accuracy"] for v in recorded.values()),
    }
    # The end of the job's event stream says the same.
    stream = api.get(f"/v1/jobs/{job_id}/events")  # an ended job: the stream closes
    *_, end = sse.parse(iter(stream.text.splitlines()))
    assert end.event == "end" and end.data["saved_epoch"] == 1
    assert end.data["saved_metrics"] == job["saved_metrics"]
    assert end.data["best_metrics"] == job["best_metrics"]
    # The files are in place, and nothing of the attempt's own is left behind.
    folder = settings.jobs_dir / job_id
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx", "model.pt"]

    state_dict = api.get(f"/v1/jobs/{job_id}/model")
    assert state_dict.status_code == 200
    assert state_dict.headers["content-type"] == "application/octet-stream"
    assert state_dict.content == (folder / "model.pt").read_bytes()
    assert api.get(f"/v1/jobs/{job_id}/model?format=state_dict").content == state_dict.content

    onnx = api.get(f"/v1/jobs/{job_id}/model?format=onnx")
    assert onnx.status_code == 200 and onnx.headers["content-type"] == "application/octet-stream"
    assert ".onnx" in onnx.headers["content-disposition"]

    manifest = api.get(f"/v1/jobs/{job_id}/model?format=manifest")
    assert manifest.status_code == 200 and manifest.headers["content-type"] == "application/json"
    assert manifest.json()["input"]["feature_names"] == ["height", "weight", "shade"]
    assert manifest.content == (folder / "model.json").read_bytes()

    bundle = api.get(f"/v1/jobs/{job_id}/model?format=bundle")
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as zf:
        assert sorted(zf.namelist()) == ["README.txt", "model.json", "model.onnx", "model.pt"]
        assert "descent.load_model" in zf.read("README.txt").decode()
    assert list((tmp_path / "api-tmp").glob("*.zip")) == []  # the zip went once it was sent

    # The Python client fetches the same bytes (through this in-process app's transport).
    token = api.headers["authorization"].removeprefix("Bearer ")
    with descent.Client("http://testserver", token, transport=api._transport) as client:
        with zipfile.ZipFile(io.BytesIO(client.model(job_id))) as zf:  # a bundle by default
            assert zf.read("model.json") == (folder / "model.json").read_bytes()
        assert client.model(job_id, "onnx") == onnx.content
        assert client.model(job_id, "state_dict") == state_dict.content
        with pytest.raises(ValueError, match="bundle, onnx or state_dict"):
            client.model(job_id, "pickle")

    model = descent.load_model(bundle.content)
    assert model.class_labels == LABELS
    assert model.feature_names == ["height", "weight", "shade"]
    assert model.manifest.job_id == job_id and model.manifest.saved.epoch == 1
    session = onnxruntime.InferenceSession(onnx.content)
    (proba,) = session.run(None, {"features": rows})
    assert np.max(np.abs(model.predict_proba(rows) - proba)) <= 1e-5
    assert set(model.predict(rows)) <= set(LABELS)


def test_an_older_upload_gets_its_names_from_the_dataset_row_and_older_jobs_have_no_bundle(
    api: TestClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    data, _ = csv_rows(60)
    dataset = api.post("/v1/datasets", files={"file": ("pets.csv", data, "text/csv")}).json()
    # An upload from before bundles: its file holds neither headers nor labels.
    path = settings.datasets_dir / f"{dataset['id']}.npz"
    with np.load(path) as npz:
        kept = {k: npz[k] for k in ("features", "target", "task", "n_classes")}
    with open(path, "wb") as f:
        np.savez(f, **kept)
    job_id = run(
        api,
        settings,
        sessions,
        {
            "dataset": {"name": "uploaded", "id": dataset["id"]},
            "model": {"kind": "linear"},
            "training": {"epochs": 2},
        },
    )
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["has_bundle"] and job["saved_epoch"] == 2
    model = descent.load_model(settings.jobs_dir / job_id)
    assert model.class_labels == LABELS
    assert model.feature_names == ["height", "weight", "shade"]

    # A job trained before bundles: model.pt only, has_bundle false.
    folder = settings.jobs_dir / job_id
    (folder / "model.json").unlink()
    (folder / "model.onnx").unlink()
    with sessions() as s, s.begin():
        s.execute(update(Job).where(Job.id == job_id).values(has_bundle=False))
    assert api.get(f"/v1/jobs/{job_id}/model").status_code == 200
    for fmt in ("bundle", "onnx", "manifest"):
        r = api.get(f"/v1/jobs/{job_id}/model", params={"format": fmt})
        assert r.status_code == 404, r.text
        assert "trained before bundles existed" in r.json()["error"]["message"]
        assert "format=state_dict" in r.json()["error"]["message"]
    bad = api.get(f"/v1/jobs/{job_id}/model", params={"format": "pickle"})
    assert bad.status_code == 422


#: Acceptance 1 of issue 16: each kind of model a user trains, through the real path.
ACCEPTANCE: dict[str, dict[str, Any]] = {
    "digits-mlp-standard": {
        "dataset": {"name": "digits", "scaling": "standard"},
        "model": {"kind": "mlp", "hidden": [32], "batch_norm": True, "dropout": 0.1},
        "training": {"epochs": 2},
    },
    "diabetes-regression-target-scaled": {
        "dataset": {"name": "diabetes", "target_scaling": "standard"},
        "model": {"kind": "mlp", "hidden": [16]},
        "training": {"epochs": 3},
    },
    "digits-cnn": {
        "dataset": {"name": "digits"},
        "model": {"kind": "cnn", "channels": [4], "hidden": [16]},
        "training": {"epochs": 1},
    },
}


def _raw_rows(name: str) -> np.ndarray:
    from sklearn import datasets as skd

    load = {"digits": skd.load_digits, "diabetes": skd.load_diabetes}[name]
    features, _ = load(return_X_y=True)
    return features[::7].astype(np.float32)  # raw, unscaled: as a user has them


def _close(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference, relative to the value where it exceeds 1: float32 holds a
    regression target near 150 to about 1.5e-5 absolute (docs/models.md)."""
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


@pytest.mark.parametrize("case", [*ACCEPTANCE, "uploaded-string-labels"])
def test_every_kind_predicts_alike_in_load_model_onnxruntime_and_over_http(
    case: str, api: TestClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    if case == "uploaded-string-labels":
        data, rows = csv_rows()
        dataset = api.post("/v1/datasets", files={"file": ("pets.csv", data, "text/csv")}).json()
        spec: dict[str, Any] = {
            "dataset": {"name": "uploaded", "id": dataset["id"]},
            "model": {"kind": "linear"},
            "training": {"epochs": 2},
        }
    else:
        spec = ACCEPTANCE[case]
        rows = _raw_rows(spec["dataset"]["name"])
    job_id = run(api, settings, sessions, spec)
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["has_bundle"], job

    bundle = api.get(f"/v1/jobs/{job_id}/model", params={"format": "bundle"}).content
    model = descent.load_model(bundle)
    onnx = onnxruntime.InferenceSession(api.get(f"/v1/jobs/{job_id}/model?format=onnx").content)
    (from_onnx,) = onnx.run(None, {"features": rows})
    answer = api.post(f"/v1/jobs/{job_id}/predict", json={"rows": rows.tolist()})
    assert answer.status_code == 200, answer.text
    over_http = answer.json()
    assert over_http["n_rows"] == len(rows) and over_http["saved_epoch"] == job["saved_epoch"]

    if job["task"] == "classification":
        proba = model.predict_proba(rows)
        assert np.max(np.abs(proba - from_onnx)) <= 1e-5
        assert np.max(np.abs(np.asarray(over_http["probabilities"]) - from_onnx)) <= 1e-5
        assert over_http["labels"] == model.class_labels
        # Labels as the user knows them: the CSV's strings, the digits' "0"…"9".
        assert list(model.predict(rows)) == over_http["predictions"]
        assert set(over_http["predictions"]) <= set(model.class_labels)
        if case == "uploaded-string-labels":
            assert model.class_labels == LABELS
    else:
        values = np.asarray(model.predict(rows), dtype=np.float64).reshape(-1)
        assert _close(values, from_onnx.reshape(-1)) <= 1e-5
        assert _close(np.asarray(over_http["predictions"]), from_onnx.reshape(-1)) <= 1e-5
        # In the target's own units (diabetes progression: tens to hundreds), not scaled.
        assert 25 < float(np.mean(values)) < 350
