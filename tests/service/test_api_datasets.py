"""Uploading CSV datasets: stored under server ids, refused whole when malformed."""

from __future__ import annotations

import uuid

import numpy as np
from support import bearer, make_user


def csv_bytes(rows: int = 30, bad: str | None = None) -> bytes:
    lines = ["x1,x2,label"]
    for i in range(rows):
        lines.append(f"{i * 0.5},{(i % 7) - 3},{'yes' if i % 2 else 'no'}")
    if bad:
        lines.insert(5, bad)
    return ("\n".join(lines) + "\n").encode()


def upload(api, data: bytes, filename: str = "points.csv", **form):
    return api.post("/v1/datasets", files={"file": (filename, data, "text/csv")}, data=form)


def stored_files(api) -> list:
    d = api.app.state.settings.datasets_dir
    return sorted(d.iterdir()) if d.exists() else []


def test_upload_infers_task_and_stores_arrays_under_a_server_id(api):
    r = upload(api, csv_bytes(), filename="../../etc/passwd.csv", target="label")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["task"] == "classification"
    assert ds["classes"] == ["no", "yes"]
    assert ds["n_rows"] == 30 and ds["n_features"] == 2
    assert ds["feature_names"] == ["x1", "x2"]
    assert ds["filename"] == "../../etc/passwd.csv"  # a label, never a path
    (path,) = stored_files(api)
    assert path.name == f"{ds['id']}.npz"
    with np.load(path, allow_pickle=False) as z:
        assert z["features"].shape == (30, 2)
        assert z["features"].dtype == np.float32
        assert z["target"].tolist()[:2] == [0, 1]
        assert str(z["task"]) == "classification"
        # Kept for a trained model's manifest: its input names and class labels.
        assert z["feature_names"].tolist() == ["x1", "x2"]
        assert z["classes"].tolist() == ["no", "yes"]
    assert api.get(f"/v1/datasets/{ds['id']}").json()["id"] == ds["id"]
    assert api.get("/v1/datasets").json()["total"] == 1


def test_regression_upload_and_a_job_that_uses_it(api):
    data = "a,b,y\n" + "".join(f"{i},{i % 3},{i * 1.5 + 0.25}\n" for i in range(40))
    ds = upload(api, data.encode()).json()
    assert ds["task"] == "regression" and ds["target"] == "y"
    job = api.post("/v1/jobs", json={"dataset": {"name": "uploaded", "id": ds["id"]}})
    assert job.status_code == 202, job.text
    assert job.json()["task"] == "regression"
    assert job.json()["dataset_id"] == ds["id"]
    # In use by a queued job: refused; after cancelling, deleted with its file.
    assert api.delete(f"/v1/datasets/{ds['id']}").status_code == 409
    api.post(f"/v1/jobs/{job.json()['id']}/cancel")
    assert api.delete(f"/v1/datasets/{ds['id']}").status_code == 204
    assert stored_files(api) == []
    assert api.get(f"/v1/datasets/{ds['id']}").status_code == 404


def test_job_batch_size_is_checked_against_an_uploaded_split(api):
    ds = upload(api, csv_bytes(rows=20)).json()
    r = api.post(
        "/v1/jobs",
        json={"dataset": {"name": "uploaded", "id": ds["id"]}, "training": {"batch_size": 17}},
    )
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "training.batch_size"
    assert "16 samples" in r.json()["error"]["message"]


def test_malformed_uploads_are_422_naming_row_and_column_and_store_nothing(api):
    cases = {
        "non-numeric": (csv_bytes(bad="1.0,abc,yes"), "abc"),
        "missing cell": (csv_bytes(bad="1.0,,yes"), "x2"),
        "wrong count": (csv_bytes(bad="1.0,2.0"), "line 6"),
        "broken quote": (csv_bytes(bad='1.0,"2.0,yes'), "line"),
        "nul byte": (csv_bytes(bad="1.0,2\x00,yes"), "NUL"),
        "latin-1": (("x,y\n" + "é,1\n" * 12).encode("latin-1"), "UTF-8"),
    }
    for name, (data, needle) in cases.items():
        r = upload(api, data)
        assert r.status_code == 422, name
        err = r.json()["error"]
        assert err["code"] == "invalid_dataset", name
        assert needle in err["message"], (name, err["message"])
    missing_target = upload(api, csv_bytes(), target="price")
    assert missing_target.status_code == 422
    assert missing_target.json()["error"]["fields"][0]["field"] == "target"
    assert "'x1', 'x2', 'label'" in missing_target.json()["error"]["message"]
    assert stored_files(api) == []
    assert api.get("/v1/datasets").json()["total"] == 0


def test_a_class_with_a_single_row_is_refused_at_upload(api):
    data = csv_bytes() + b"1.0,2.0,maybe\n"
    r = upload(api, data, target="label")
    assert r.status_code == 422
    assert "class 'maybe'" in r.json()["error"]["message"]
    assert stored_files(api) == []


def test_upload_over_the_size_cap_is_413(sqlite_backend):
    from fastapi.testclient import TestClient

    from service.main import create_app

    settings = sqlite_backend.settings().model_copy(update={"max_upload_bytes": 2048})
    token = make_user(sqlite_backend, "uploader")
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        r = upload(client, csv_bytes(rows=200))
        assert r.status_code == 413
        assert "2048 bytes" in r.json()["error"]["message"]


def test_unknown_dataset_is_404_and_a_malformed_id_422(api):
    missing = str(uuid.uuid4())
    for r in (api.get(f"/v1/datasets/{missing}"), api.delete(f"/v1/datasets/{missing}")):
        assert r.status_code == 404
        assert r.json()["error"]["message"] == f"no dataset with id {missing!r}"
    for r in (api.get("/v1/datasets/nope"), api.delete("/v1/datasets/passwd.csv")):
        assert r.status_code == 422, r.text
        assert [f["field"] for f in r.json()["error"]["fields"]] == ["dataset_id"]
