"""The jobs API on a real SQLite database and SQL broker, with no worker running."""

from __future__ import annotations

import math
import uuid

import pytest
from job_results import auto_lr_record, range_test_record
from pydantic import ValidationError
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.exc import StatementError
from support import bearer, make_user_at

from service.jobs.models import EpochMetric, Job


def count_jobs(api) -> int:
    engine = create_engine(str(api.app.state.settings.database_url))
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(Job))
    engine.dispose()
    return n


def queued_messages(api) -> int:
    settings = api.app.state.settings
    engine = create_engine(str(settings.broker_url).removeprefix("sqla+"))
    with engine.connect() as conn:
        exists = inspect(conn).has_table("kombu_message")
        n = conn.scalar(text("SELECT count(*) FROM kombu_message")) if exists else 0
    engine.dispose()
    return n


def test_minimal_job_is_accepted_with_defaults(api):
    r = api.post("/v1/jobs", json={"dataset": {"name": "digits"}})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"].endswith(f"/v1/jobs/{job['id']}")
    assert job["status"] == "queued"
    assert job["task"] == "classification"
    assert job["spec"]["optimizer"]["name"] == "adam"
    assert job["spec"]["training"]["epochs"] == 20
    assert job["name"] == "digits-mlp-adam"
    assert job["n_parameters"] == (64 + 1) * 64 + (64 + 1) * 10
    # Committed row, then one message on the broker.
    assert count_jobs(api) == 1
    assert queued_messages(api) == 1
    assert api.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]


def test_empty_body_is_a_job_too(api):
    assert api.post("/v1/jobs", json={}).status_code == 202


@pytest.mark.parametrize("target_scaling", [None, "none", "standard"])
def test_regression_target_scaling_is_accepted(api, target_scaling):
    dataset = {"name": "diabetes"}
    if target_scaling is not None:
        dataset["target_scaling"] = target_scaling
    r = api.post("/v1/jobs", json={"dataset": dataset})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["task"] == "regression"
    assert job["spec"]["dataset"]["target_scaling"] == (target_scaling or "standard")


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"optimizer": {"name": "adamx"}}, "optimizer.name", "sgd, adagrad, rmsprop"),
        ({"optimizer": {"name": "sgd", "lr": -1}}, "optimizer.lr", "greater than 0"),
        ({"optimizer": {"name": "sgd", "lr": 0}}, "optimizer.lr", "greater than 0"),
        ({"schedule": {"name": "cosine", "t_max": 0}}, "schedule.t_max", "greater than"),
        ({"schedule": {"name": "warm"}}, "schedule.name", "one_cycle"),
        ({"model": {"kind": "rnn"}}, "model.kind", "linear, mlp, cnn"),
        ({"model": {"kind": "mlp", "activation": "swish"}}, "model.activation", "relu"),
        ({"model": {"kind": "mlp", "init": "lecun"}}, "model.init", "he_normal"),
        ({"model": {"kind": "mlp", "dropout": 1.0}}, "model.dropout", "less than 1"),
        ({"dataset": {"name": "mnist"}}, "dataset.name", "digits"),
        ({"dataset": {"name": "digits", "scaling": "robust"}}, "dataset.scaling", "minmax"),
        ({"dataset": {"name": "digits", "val_fraction": 1.5}}, "dataset.val_fraction", "less"),
        (
            {"dataset": {"name": "diabetes", "target_scaling": "robust"}},
            "dataset.target_scaling",
            "'none' or 'standard'",
        ),
        ({"training": {"batch_size": 0}}, "training.batch_size", "full"),
        ({"training": {"epochs": 100000}}, "training.epochs", "cap of 1000"),
        ({"training": {"device": "tpu"}}, "training.device", "cuda"),
        ({"training": {"batch_size": 5000}}, "training.batch_size", "larger than the training"),
        ({"optimizer": {"name": "sgd", "nesterov": True}}, "optimizer", "nesterov needs"),
        ({"optimizer": {"name": "adam", "momentum": 0.9}}, "optimizer.momentum", "unknown field"),
        ({"regularization": {"grad_clip": {}}}, "regularization.grad_clip", "exactly one"),
        ({"regularization": {"l2": -0.1}}, "regularization.l2", "greater than or equal"),
        (
            {"regularization": {"early_stopping": {"monitor": "val_r2"}}},
            "regularization.early_stopping.monitor",
            "val_r2",
        ),
        (
            {"model": {"kind": "cnn"}, "dataset": {"name": "iris"}},
            "model.input_shape",
            "image-shaped",
        ),
        (
            {"model": {"kind": "mlp", "hidden": [65536, 65536]}},
            "model",
            "cap of",
        ),
        (
            {
                "optimizer": {"name": "adagrad"},
                "schedule": {"name": "one_cycle", "cycle_momentum": True},
            },
            "schedule.cycle_momentum",
            "adagrad has no momentum",
        ),
        (
            {
                "optimizer": {"name": "sgd"},
                "schedule": {"name": "one_cycle", "cycle_momentum": True},
            },
            "schedule.cycle_momentum",
            "momentum 0",
        ),
        (
            {"schedule": {"name": "one_cycle", "three_phase": True, "pct_start": 0.6}},
            "schedule",
            "pct_start < 0.5",
        ),
        (
            {"schedule": {"name": "step", "warmup_epochs": 20}},
            "schedule.warmup_epochs",
            "leave none",
        ),
        (
            {"dataset": {"name": "uploaded", "id": "nope"}},
            "dataset.id",
            "no uploaded dataset",
        ),
    ],
)
def test_bad_specs_get_422_naming_the_field_and_write_nothing(api, body, field, needle):
    r = api.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["status"] == 422
    fields = {f["field"]: f for f in err["fields"]}
    assert field in fields, err
    assert needle in fields[field]["message"] + str(fields[field].get("allowed", "")), err
    assert field in err["message"]
    assert count_jobs(api) == 0
    assert queued_messages(api) == 0


def test_unknown_name_lists_allowed_values(api):
    err = api.post("/v1/jobs", json={"optimizer": {"name": "adamx"}}).json()["error"]
    (f,) = err["fields"]
    assert f["allowed"] == ["sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adamax"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(api, value):
    body = '{"optimizer": {"name": "sgd", "lr": VALUE}}'.replace("VALUE", value)
    r = api.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["fields"][0]["field"] == "optimizer.lr"
    assert "finite" in r.json()["error"]["fields"][0]["message"]
    assert count_jobs(api) == 0


def test_malformed_json_is_a_clear_422(api):
    r = api.post("/v1/jobs", content="{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_spec"
    assert count_jobs(api) == 0


def test_list_filter_sort_and_paginate(api):
    ids = [
        api.post("/v1/jobs", json={"name": f"job-{i}", "dataset": {"name": "iris"}}).json()["id"]
        for i in range(5)
    ]
    api.post(f"/v1/jobs/{ids[0]}/cancel")
    page = api.get("/v1/jobs", params={"limit": 2}).json()
    assert page["total"] == 5 and page["limit"] == 2
    assert [j["id"] for j in page["items"]] == ids[::-1][:2]  # newest first
    page2 = api.get("/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert [j["id"] for j in page2["items"]] == ids[::-1][2:4]
    by_name = api.get("/v1/jobs", params={"sort": "name"}).json()["items"]
    assert [j["name"] for j in by_name] == [f"job-{i}" for i in range(5)]
    cancelled = api.get("/v1/jobs", params={"status": "cancelled"}).json()
    assert cancelled["total"] == 1 and cancelled["items"][0]["id"] == ids[0]
    assert api.get("/v1/jobs", params={"status": "queued,cancelled"}).json()["total"] == 5


def test_list_filters_by_any_part_of_the_name_ignoring_case(api):
    for name in ["Digits-Adam", "digits-sgd", "iris_adam", "iris%adam", "moons"]:
        assert api.post("/v1/jobs", json={"name": name}).status_code == 202

    def names(part: str) -> list[str]:
        page = api.get("/v1/jobs", params={"name": part, "sort": "name"}).json()
        assert page["total"] == len(page["items"])
        return [j["name"] for j in page["items"]]

    assert names("DIGITS") == ["Digits-Adam", "digits-sgd"]
    assert names("adam") == ["Digits-Adam", "iris%adam", "iris_adam"]
    # LIKE's wildcards are plain characters here.
    assert names("_") == ["iris_adam"] and names("%") == ["iris%adam"]
    assert names("nothing") == []
    too_long = api.get("/v1/jobs", params={"name": "x" * 201})
    assert too_long.status_code == 422 and too_long.json()["error"]["fields"][0]["field"] == "name"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "spec"}, "sort"),
        ({"sort": "-id; drop"}, "sort"),
        ({"status": "done"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_list_rejects_parameters_outside_the_allow_list(api, params, field):
    r = api.get("/v1/jobs", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == field


def test_cancel_queued_job_ends_it_and_a_second_cancel_conflicts(api):
    job = api.post("/v1/jobs", json={}).json()
    r = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202
    assert r.json()["status"] == "cancelled"
    assert r.json()["finished_at"] is not None
    again = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert "already ended as cancelled" in again.json()["error"]["message"]


JOB_ROUTES = [
    ("get", "/v1/jobs/{}"),
    ("post", "/v1/jobs/{}/cancel"),
    ("get", "/v1/jobs/{}/metrics"),
    ("get", "/v1/jobs/{}/model"),
]


def test_unknown_job_is_404_everywhere(api):
    missing = str(uuid.uuid4())
    for method, path in JOB_ROUTES:
        r = getattr(api, method)(path.format(missing))
        assert r.status_code == 404, path
        assert r.json()["error"] == {
            "status": 404,
            "code": "not_found",
            "message": f"no job with id {missing!r}",
        }


@pytest.mark.parametrize("bad", ["nope", "1", "3F0C2A9E-5B1D-4C7E-9A4F-0D2B6C8E1F37", "a" * 36])
def test_a_job_id_that_is_not_a_uuid_is_422_naming_the_parameter(api, bad):
    for method, path in JOB_ROUTES:
        r = getattr(api, method)(path.format(bad))
        assert r.status_code == 422, (path, r.text)
        err = r.json()["error"]
        assert err["code"] == "invalid_request"
        assert [f["field"] for f in err["fields"]] == ["job_id"]


def test_job_ids_are_documented_as_uuids(api):
    doc = api.get("/openapi.json").json()
    (param,) = doc["paths"]["/v1/jobs/{job_id}"]["get"]["parameters"]
    assert param["name"] == "job_id" and param["schema"]["pattern"].startswith("^[0-9a-f]{8}-")
    assert {"401", "404", "422"} <= set(doc["paths"]["/v1/jobs/{job_id}"]["get"]["responses"])


def test_metrics_of_a_queued_job_are_empty_and_names_are_checked(api):
    job = api.post("/v1/jobs", json={}).json()
    r = api.get(f"/v1/jobs/{job['id']}/metrics")
    assert r.status_code == 200
    assert r.json()["epochs"] == []
    bad = api.get(f"/v1/jobs/{job['id']}/metrics", params={"names": "val_r2"})
    assert bad.status_code == 422
    assert "val_accuracy" in bad.json()["error"]["fields"][0]["allowed"]
    csv = api.get(f"/v1/jobs/{job['id']}/metrics", params={"format": "csv", "names": "val_loss"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text == "epoch,val_loss\n"


def test_model_of_an_unfinished_job_is_409(api):
    job = api.post("/v1/jobs", json={}).json()
    r = api.get(f"/v1/jobs/{job['id']}/model")
    assert r.status_code == 409
    assert "queued" in r.json()["error"]["message"]


def test_healthz_reports_database_and_broker(api):
    r = api.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_database_down_gives_503_not_500(sqlite_backend, tmp_path):
    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.main import create_app

    # A database URL that cannot be opened: a directory where the file should be.
    (tmp_path / "db-is-a-dir").mkdir()
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db-is-a-dir'}",
        queue=sqlite_backend.env["DESCENT_QUEUE"],
    )
    # A well-formed token: checking it needs the database, so the answer is 503, not 401.
    token = "dsc_" + "x" * 43
    with TestClient(
        create_app(settings), headers=bearer(token), raise_server_exceptions=False
    ) as client:
        r = client.get("/v1/jobs")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "database_unavailable"
        h = client.get("/healthz")
        assert h.status_code == 503 and h.json()["database"] == "unreachable"
        assert h.json()["error"]["message"] == "unreachable: database"


def test_broker_down_gives_503_and_leaves_no_job(tmp_path):
    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.main import create_app
    from service.migrate import upgrade

    # Nothing listens on this port: the broker is down, the database is fine.
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6399/0")
    upgrade(str(settings.database_url))
    token = make_user_at(str(settings.database_url), "tester")
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        r = client.post("/v1/jobs", json={})
        assert r.status_code == 503
        assert "broker is unavailable" in r.json()["error"]["message"]
        assert client.get("/v1/jobs").json()["total"] == 0
        h = client.get("/healthz")
        assert h.status_code == 503
        assert (h.json()["database"], h.json()["broker"]) == ("ok", "unreachable")


def test_openapi_documents_the_job_spec_and_errors(api):
    doc = api.get("/openapi.json").json()
    post = doc["paths"]["/v1/jobs"]["post"]
    assert "Submit a training job" in post["description"] + post.get("summary", "")
    body = post["requestBody"]["content"]["application/json"]
    assert "full" in body["examples"] and "minimal" in body["examples"]
    assert "422" in post["responses"]
    assert not math.isnan(0.0)


def test_metric_names_follow_the_engines_order():
    from service.spec import metric_names

    assert metric_names("classification")[:5] == (
        "epoch",
        "train_loss",
        "val_loss",
        "train_accuracy",
        "val_accuracy",
    )
    assert metric_names("regression")[-2:] == ("epoch_seconds", "samples_per_second")


def test_results_are_served_typed_by_kind(api):
    """``jobs.result`` holds one of the records of service/spec/results.py; ``…/result``
    serves it by its ``kind`` (a range test's with its curve, read from its rows)."""
    test = api.post("/v1/jobs", json={"kind": "lr_range_test", "dataset": {"name": "iris"}})
    auto = api.post("/v1/jobs", json={"optimizer": {"name": "adam", "lr": "auto"}})
    test_id, auto_id = test.json()["id"], auto.json()["id"]
    assert api.get(f"/v1/jobs/{test_id}/result").status_code == 409  # queued: none yet
    record, choice = range_test_record(step=2, lr=0.01, steps=10), auto_lr_record(0.02)
    with api.app.state.sessionmaker() as s:
        s.get(Job, test_id).result = record
        s.get(Job, auto_id).result = choice
        for step, lr in enumerate((1e-4, 1e-2, 1.0), start=1):
            smoothed = None if step == 3 else 0.9  # not finite: stored as null
            values = {"lr": lr, "loss": 1.0, "smoothed_loss": smoothed}
            s.add(EpochMetric(job_id=test_id, epoch=step, values=values))
        s.commit()

    found = api.get(f"/v1/jobs/{test_id}/result").json()
    assert (found["kind"], found["result"]["kind"]) == ("lr_range_test", "lr_range_test")
    assert found["result"]["curve"] == {
        "step": [1, 2, 3],
        "lr": [1e-4, 1e-2, 1.0],
        "loss": [1.0, 1.0, 1.0],
        "smoothed_loss": [0.9, 0.9, None],
    }
    served = {k: v for k, v in found["result"].items() if k != "curve"}
    assert served == record.model_dump(mode="json")
    assert api.get(f"/v1/jobs/{test_id}").json()["auto_lr"] is None

    assert api.get(f"/v1/jobs/{auto_id}/result").json()["result"] == choice.model_dump(mode="json")
    assert api.get(f"/v1/jobs/{auto_id}").json()["auto_lr"] == {
        "fields": ["optimizer.lr"],
        "value": 0.02,
        "rule": "valley",
        "suggested_lr": 0.02,
        "why": choice.auto_lr.why,
    }

    # The OpenAPI document shows the union and its tags.
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    union = schemas["ResultRead"]["properties"]["result"]
    assert union["discriminator"]["propertyName"] == "kind"
    assert set(union["discriminator"]["mapping"]) == {"lr_range_test", "landscape", "auto_lr"}

    # A document of no known shape is refused as it is written, and nothing is stored.
    with api.app.state.sessionmaker() as s:
        s.get(Job, auto_id).result = {"auto_lr": {"value": 0.02}}
        with pytest.raises(StatementError) as info:
            s.commit()
        assert isinstance(info.value.orig, ValidationError)
    assert api.get(f"/v1/jobs/{auto_id}").json()["auto_lr"]["value"] == 0.02
