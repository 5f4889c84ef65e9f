"""The sweeps API on a real database (SQLite, and PostgreSQL), with no worker running:
what POST stores and refuses, owner scoping, listing, cancelling, and what the API
reports about trials written as the workers' drivers write them (tests/sweep_rows.py)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats
from sqlalchemy import select
from support import Backend, bearer, make_user
from sweep_rows import J, add_trial, float_record

from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.main import create_app
from service.sweeps.service import holm

BASE = {"dataset": {"name": "iris"}, "training": {"epochs": 3}}


class Api:
    def __init__(self, client: TestClient, backend: Backend) -> None:
        self.client = client
        self.backend = backend
        self.sessions = client.app.state.sessionmaker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def sweep(self, **body: Any) -> dict[str, Any]:
        body = {"base": BASE, **body}
        r = self.client.post("/v1/sweeps", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def comparison(self, **body: Any) -> dict[str, Any]:
        body = {"base": BASE, **body}
        r = self.client.post("/v1/comparisons", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def trial(self, sweep_id: str, number: int, params: dict[str, Any], jobs: list[J], **kw):  # noqa: ANN003, ANN201
        with self.sessions() as s:
            return add_trial(s, sweep_id, number, params, jobs, **kw)


@pytest.fixture
def api(backend: Backend) -> Iterator[Api]:
    token = make_user(backend, "tester")
    with TestClient(create_app(backend.settings()), headers=bearer(token)) as client:
        yield Api(client, backend)


def error_fields(r) -> list[str]:  # noqa: ANN001
    return [f["field"] for f in r.json()["error"]["fields"]]


# -- create -----------------------------------------------------------------------------


def test_create_stores_the_resolved_spec(api: Api) -> None:
    r = api.post(
        "/v1/sweeps",
        json={
            "base": {"dataset": {"name": "digits"}, "training": {"epochs": 4}},
            "space": {
                "optimizer.lr": {"loguniform": [1e-4, 0.1]},
                "optimizer.name": {"choice": ["sgd", "adam"]},
            },
            "sampler": {"name": "random"},
            "objective": {"metric": "val_accuracy"},
        },
    )
    assert r.status_code == 201, r.text
    sweep = r.json()
    assert r.headers["location"].endswith(f"/v1/sweeps/{sweep['id']}")
    assert sweep["kind"] == "sweep" and sweep["status"] == "running"
    assert sweep["name"] == "random over optimizer.lr, optimizer.name"
    assert sweep["task"] == "classification"
    spec = sweep["spec"]
    assert isinstance(spec["sampler"]["seed"], int)
    assert spec["max_trials"] == sweep["max_trials"] == 20
    assert spec["pruner"]["measure"] == "epoch"
    assert spec["objective"] == {"metric": "val_accuracy", "direction": "max", "measure": "best"}
    assert sweep["objective"] == spec["objective"]
    assert spec["seeds"] == [0]
    assert spec["base"] == {"dataset": {"name": "digits"}, "training": {"epochs": 4}}
    assert sweep["trials_created"] == 0 and sweep["best"] is None
    assert sweep["counts"] == dict.fromkeys(
        ["queued", "running", "complete", "pruned", "failed", "cancelled"], 0
    )
    assert sweep["epochs_spent"] == 0
    assert sweep["links"]["trials"].endswith(f"/v1/sweeps/{sweep['id']}/trials")
    assert "comparison" not in sweep["links"] and "importance" in sweep["links"]
    assert api.get(r.headers["location"]).json()["spec"] == spec


def test_a_grid_sweep_defaults_to_its_whole_grid_and_seeds_per_repeat(api: Api) -> None:
    sweep = api.sweep(
        space={
            "optimizer.lr": {"grid": [0.001, 0.01, 0.1]},
            "training.batch_size": {"choice": [16, 32]},
        },
        sampler={"name": "grid", "seed": 3},
        repeats=3,
        name="my grid",
    )
    assert sweep["name"] == "my grid"
    assert sweep["max_trials"] == 6
    assert sweep["spec"]["sampler"]["seed"] == 3
    assert sweep["spec"]["seeds"] == [0, 1, 2]
    assert sweep["repeats"] == 3 and "comparison" in sweep["links"]


def test_a_preset_is_stored_written_out(api: Api) -> None:
    sweep = api.sweep(space={"optimizer": {"preset": "optimizer_family", "names": ["sgd", "adam"]}})
    choice = sweep["spec"]["space"]["optimizer.name"]["choice"]
    assert [c["value"] for c in choice] == ["sgd", "adam"]
    assert "optimizer.momentum" in choice[0]["space"]


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"space": {"optimizer.foo": {"uniform": [0, 1]}}}, "space.optimizer.foo", "no"),
        ({"space": {"foo.bar": {"uniform": [0, 1]}}}, "space.foo.bar", "unknown field"),
        (
            {"space": {"optimizer.lr": {"uniform": [0.1, 0.01]}}},
            "space.optimizer.lr",
            "empty or inverted",
        ),
        ({"space": {"optimizer.lr": {"uniform": [0.1, 0.1]}}}, "space.optimizer.lr", "inverted"),
        ({"space": {"optimizer.name": {"choice": []}}}, "space.optimizer.name.choice", "at least"),
        (
            {"space": {"optimizer.lr": {"uniform": [-1, 0.1]}}},
            "space.optimizer.lr",
            "makes an invalid job",
        ),
        (
            {"space": {"optimizer.lr": {"uniform": [0.01, 0.1]}}, "sampler": {"name": "grid"}},
            "sampler.name",
            "finite",
        ),
        (
            {
                "space": {"optimizer.lr": {"grid": [0.01, 0.1]}},
                "sampler": {"name": "grid"},
                "max_trials": 3,
            },
            "max_trials",
            "only 2 points",
        ),
        (
            {"space": {"optimizer.lr": {"grid": [0.01]}}, "objective": {"metric": "val_r2"}},
            "objective.metric",
            "val_r2",
        ),
        ({"space": {}}, "space", "at least 1"),
        ({"space": {"optimizer.lr": {"grid": [0.01]}}, "bogus": 1}, "bogus", ""),
        # An end past what a float holds exactly (found by the fuzzer: it was a 500).
        (
            {"space": {"model.hidden.0": {"int": [10792, 16200984816539458863104]}}},
            "space.model.hidden.0.int.1",
            "less than or equal to 9007199254740992",
        ),
    ],
)
def test_bad_sweeps_get_422_naming_the_path(api: Api, body, field, needle) -> None:  # noqa: ANN001
    r = api.post("/v1/sweeps", json={"base": BASE, **body})
    assert r.status_code == 422, r.text
    assert field in error_fields(r), r.text
    assert needle in r.json()["error"]["message"], r.text
    assert api.get("/v1/sweeps").json()["total"] == 0


AUTO_LR = {"optimizer.lr": {"loguniform": ["auto", "auto"]}}


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        (
            {"space": {"optimizer.momentum": {"uniform": [0.5, "auto"]}}},
            "space.optimizer.momentum",
            "for learning rates",
        ),
        (
            {"space": AUTO_LR | {"optimizer.name": {"choice": ["sgd", "adam"]}}},
            "space.optimizer.lr",
            "varies the optimizer",
        ),
        (
            {
                "space": {
                    "optimizer.name": {
                        "choice": [
                            {"value": "sgd", "space": AUTO_LR},
                            "adam",
                        ]
                    }
                }
            },
            "space.optimizer.lr",
            "top of the space",
        ),
        (
            {"space": {"optimizer.lr": {"grid": [0.1]}}, "range_test": {"steps": 50}},
            "range_test",
            '"auto" end',
        ),
        (
            {"space": AUTO_LR, "range_test": {"suggestion": "valley"}},
            "range_test.suggestion",
            "leave suggestion out",
        ),
        (
            {"space": {"optimizer.lr": {"loguniform": ["auto", -1]}}},
            "space.optimizer.lr",
            "above 0",
        ),
        (
            {"space": {"optimizer.lr": {"uniform": [20, "auto"]}}},
            "space.optimizer.lr",
            "beyond the rates the range test sweeps (1e-07 to 10)",
        ),
        (
            {"space": {"optimizer.lr": {"uniform": ["auto", 0.1]}}, "sampler": {"name": "grid"}},
            "sampler.name",
            "finite",
        ),
        (
            {"space": {"optimizer.lr": {"loguniform": ["auto", "oops"]}}},
            "space.optimizer.lr.loguniform.1",
            "",
        ),
    ],
)
def test_misplaced_auto_ends_get_422(api: Api, body, field, needle) -> None:  # noqa: ANN001
    r = api.post("/v1/sweeps", json={"base": BASE, **body})
    assert r.status_code == 422, r.text
    assert field in error_fields(r), r.text
    assert needle in r.json()["error"]["message"], r.text
    assert api.get("/v1/sweeps").json()["total"] == 0
    assert api.get("/v1/jobs").json()["total"] == 0


def test_auto_ends_create_the_sweeps_range_test(api: Api) -> None:
    sweep = api.sweep(
        space=AUTO_LR | {"optimizer.weight_decay": {"uniform": [0.0, 1e-3]}},
        range_test={"steps": 50, "lr_max": 1.0},
        name="auto lr",
    )
    auto = sweep["auto_bounds"]
    assert auto["paths"] == ["optimizer.lr"] and auto["bounds"] is None
    assert sweep["spec"]["space"]["optimizer.lr"] == {"loguniform": ["auto", "auto"]}
    assert sweep["spec"]["range_test"]["steps"] == 50
    assert sweep["trials_created"] == 0
    assert sweep["links"]["range_test"].endswith(f"/v1/jobs/{auto['job_id']}")
    job = api.get(f"/v1/jobs/{auto['job_id']}").json()
    assert job["kind"] == "lr_range_test" and job["status"] == "queued"
    assert job["name"] == "auto lr · range test"
    assert job["spec"]["range_test"]["steps"] == 50 and job["spec"]["range_test"]["lr_max"] == 1
    assert job["spec"]["dataset"]["name"] == "iris"
    assert job["spec"]["training"]["epochs"] == BASE["training"]["epochs"]
    # Reading it again, and listing it, say the same.
    assert api.get(f"/v1/sweeps/{sweep['id']}").json()["auto_bounds"] == auto
    listed = api.get("/v1/jobs", params={"kind": "lr_range_test"}).json()
    assert [j["id"] for j in listed["items"]] == [auto["job_id"]]


def test_an_auto_rate_in_the_base_does_not_reach_the_range_test(api: Api) -> None:
    sweep = api.sweep(
        base={
            "dataset": {"name": "iris"},
            "optimizer": {"name": "sgd", "lr": "auto"},
            "schedule": {"name": "one_cycle", "max_lr": "auto"},
        },
        space={"schedule.max_lr": {"loguniform": ["auto", "auto"]}},
    )
    job = api.get(f"/v1/jobs/{sweep['auto_bounds']['job_id']}").json()
    assert job["spec"]["optimizer"]["lr"] == 1e-7
    assert job["spec"]["schedule"]["max_lr"] == 1e-7


def test_pruning_with_repeats_is_refused(api: Api) -> None:
    r = api.post(
        "/v1/sweeps",
        json={
            "base": BASE,
            "space": {"optimizer.lr": {"grid": [0.01, 0.1]}},
            "pruner": {"name": "asha"},
            "repeats": 2,
        },
    )
    assert r.status_code == 422, r.text
    assert "pruner" in r.json()["error"]["message"] and "repeats" in r.json()["error"]["message"]


def test_a_comparison_is_stored_with_labels_and_seeds(api: Api) -> None:
    r = api.post(
        "/v1/comparisons",
        json={
            "base": BASE,
            "configurations": [
                {"set": {"optimizer.name": "sgd", "optimizer.momentum": 0.9}},
                {"label": "adam!", "set": {"optimizer.name": "adam"}},
            ],
            "repeats": 3,
            "seeds": [5, 6, 9],
        },
    )
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["kind"] == "comparison" and c["max_trials"] == 2
    assert c["name"] == "compare sgd momentum=0.9 vs adam!"
    assert [x["label"] for x in c["spec"]["configurations"]] == ["sgd momentum=0.9", "adam!"]
    assert c["spec"]["seeds"] == [5, 6, 9]
    assert "comparison" in c["links"] and "importance" not in c["links"]
    assert api.get("/v1/sweeps", params={"kind": "comparison"}).json()["total"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"configurations": [{"set": {"optimizer.foo": 1}}, {"set": {}}]}, "configurations.0.set"),
        ({"configurations": [{"set": {}}]}, "configurations"),
        (
            {"configurations": [{"set": {"optimizer.lr": 0.1}}, {"set": {"optimizer.lr": 0.1}}]},
            "configurations",
        ),
        (
            {"configurations": [{"set": {"training.seed": 1}}, {"set": {}}]},
            "configurations",
        ),
        ({"configurations": [{"set": {}}, {"set": {"optimizer.lr": 1}}], "repeats": 1}, "repeats"),
        (
            {
                "configurations": [{"set": {}}, {"set": {"optimizer.lr": 1}}],
                "objective": {"metric": "nope"},
            },
            "objective.metric",
        ),
    ],
)
def test_bad_comparisons_get_422(api: Api, body, field) -> None:  # noqa: ANN001
    r = api.post("/v1/comparisons", json={"base": BASE, **body})
    assert r.status_code == 422, r.text
    assert field in error_fields(r), r.text


# -- read, list, owner scoping, cancel -----------------------------------------------------


def test_another_users_sweep_is_404_like_a_missing_one(api: Api) -> None:
    sweep = api.sweep(space={"optimizer.lr": {"grid": [0.01]}})
    other = bearer(make_user(api.backend, "other"))
    missing = str(uuid.uuid4())
    for suffix in ("", "/trials", "/importance", "/comparison"):
        r = api.get(f"/v1/sweeps/{sweep['id']}{suffix}", headers=other)
        ref = api.get(f"/v1/sweeps/{missing}{suffix}", headers=other)
        assert r.status_code == ref.status_code == 404, r.text
        assert r.text == ref.text.replace(missing, sweep["id"])
    r = api.post(f"/v1/sweeps/{sweep['id']}/cancel", headers=other)
    assert r.status_code == 404
    assert api.get("/v1/sweeps", headers=other).json() == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    assert api.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "running"


def test_a_sweep_id_that_is_not_a_uuid_is_422(api: Api) -> None:
    r = api.get("/v1/sweeps/not-a-uuid")
    assert r.status_code == 422 and error_fields(r) == ["sweep_id"]


def test_list_filters_and_paginates(api: Api) -> None:
    a = api.sweep(space={"optimizer.lr": {"grid": [0.01]}}, name="a")
    b = api.comparison(configurations=[{"set": {}}, {"set": {"optimizer.lr": 0.1}}], name="b")
    c = api.sweep(space={"optimizer.lr": {"grid": [0.01]}}, name="c")
    assert api.post(f"/v1/sweeps/{c['id']}/cancel").status_code == 200
    page = api.get("/v1/sweeps").json()
    assert page["total"] == 3 and [s["name"] for s in page["items"]] == ["c", "b", "a"]
    running = api.get("/v1/sweeps", params={"status": "running"}).json()
    assert {s["id"] for s in running["items"]} == {a["id"], b["id"]}
    assert api.get("/v1/sweeps", params={"status": "cancelled"}).json()["items"][0]["id"] == c["id"]
    sweeps = api.get("/v1/sweeps", params={"kind": "sweep", "limit": 1, "offset": 1}).json()
    assert sweeps["total"] == 2 and [s["id"] for s in sweeps["items"]] == [a["id"]]
    for params, field in [({"status": "done"}, "status"), ({"kind": "search"}, "kind")]:
        r = api.get("/v1/sweeps", params=params)
        assert r.status_code == 422 and error_fields(r) == [field], r.text
        assert r.json()["error"]["fields"][0]["allowed"]


def test_cancel_stops_queued_and_running_trials_and_then_conflicts(api: Api) -> None:
    sweep = api.sweep(space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, max_trials=5)
    queued = api.trial(sweep["id"], 0, {"optimizer.lr": 0.02}, [J(JobStatus.QUEUED, None, 0)])
    running = api.trial(sweep["id"], 1, {"optimizer.lr": 0.03}, [J(JobStatus.RUNNING, 0.5, 1)])
    done = api.trial(sweep["id"], 2, {"optimizer.lr": 0.04}, [J(JobStatus.SUCCEEDED, 0.4, 3)])
    r = api.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "cancelled" and out["cancel_requested"] is True
    assert out["status_reason"] == "cancelled by request" and out["finished_at"]
    assert out["counts"]["cancelled"] == 1 and out["counts"]["running"] == 1
    with api.sessions() as s:
        jobs = {j.id: j for j in s.scalars(select(Job).where(Job.sweep_id == sweep["id"]))}
    assert jobs[queued[0]].status == JobStatus.CANCELLED
    assert jobs[running[0]].status == JobStatus.RUNNING and jobs[running[0]].cancel_requested
    assert jobs[done[0]].status == JobStatus.SUCCEEDED and not jobs[done[0]].cancel_requested
    again = api.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert again.status_code == 409 and "already ended as cancelled" in again.text


# -- the summary and the leaderboard ------------------------------------------------------


def leaderboard_sweep(api: Api) -> dict[str, Any]:
    sweep = api.sweep(space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, max_trials=10)
    sid = sweep["id"]
    trials = [
        (0, J(JobStatus.SUCCEEDED, 0.5, 3)),
        (1, J(JobStatus.SUCCEEDED, 0.3, 3)),
        (2, J(JobStatus.PRUNED, 0.9, 1)),
        (3, J(JobStatus.RUNNING, 0.4, 2)),
        (4, J(JobStatus.QUEUED, None, 0)),
        (5, J(JobStatus.FAILED, None, 1)),
        (6, J(JobStatus.CANCELLED, 0.7, 2)),
        (7, J(JobStatus.SUCCEEDED, 0.2, 3)),
    ]
    ids = {}
    for number, job in trials:
        ids[number] = api.trial(sid, number, {"optimizer.lr": 0.01 + number / 100}, [job])
    return {"id": sid, "ids": ids}


def test_summary_counts_trials_by_state_and_names_the_best(api: Api) -> None:
    made = leaderboard_sweep(api)
    s = api.get(f"/v1/sweeps/{made['id']}").json()
    assert s["counts"] == {
        "queued": 1,
        "running": 1,
        "complete": 3,
        "pruned": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert s["trials_created"] == 8
    assert s["epochs_spent"] == 3 + 3 + 1 + 2 + 0 + 1 + 2 + 3
    assert s["best"] == {
        "number": 7,
        "label": None,
        "params": {"optimizer.lr": 0.08},
        "value": 0.2,
        "job_ids": made["ids"][7],
    }


def test_leaderboard_sorts_best_first_and_unfinished_last(api: Api) -> None:
    made = leaderboard_sweep(api)
    url = f"/v1/sweeps/{made['id']}/trials"
    page = api.get(url).json()
    assert page["total"] == 8
    assert [t["number"] for t in page["items"]] == [7, 1, 0, 2, 5, 6, 3, 4]
    by_number = {t["number"]: t for t in page["items"]}
    assert by_number[7]["state"] == "complete" and by_number[7]["value"] == 0.2
    assert by_number[2]["state"] == "pruned" and by_number[2]["value"] == 0.9
    assert by_number[3]["state"] == "running" and by_number[3]["value"] == 0.4
    assert by_number[4]["state"] == "queued" and by_number[4]["value"] is None
    assert by_number[5]["state"] == "failed" and by_number[6]["state"] == "cancelled"
    assert by_number[6]["value"] is None
    job = by_number[0]["jobs"][0]
    assert job == {
        "id": made["ids"][0][0],
        "status": "succeeded",
        "repeat": 0,
        "seed": 0,
        "objective": 0.5,
        "epochs_completed": 3,
    }
    assert by_number[0]["epochs"] == 3 and by_number[0]["params"] == {"optimizer.lr": 0.01}

    def order(**params: Any) -> list[int]:
        r = api.get(url, params=params)
        assert r.status_code == 200, r.text
        return [t["number"] for t in r.json()["items"]]

    assert order(sort="value") == [7, 1, 3, 0, 2, 4, 5, 6]
    assert order(sort="-value") == [2, 0, 3, 1, 7, 4, 5, 6]
    assert order(sort="number") == list(range(8))
    assert order(sort="-number") == list(range(7, -1, -1))
    assert order(sort="epochs") == [4, 2, 5, 3, 6, 0, 1, 7]
    assert order(sort="-epochs") == [0, 1, 7, 3, 6, 2, 5, 4]
    assert order(state="complete") == [7, 1, 0]
    assert order(state="running,queued", sort="number") == [3, 4]
    assert order(state="pruned, failed", sort="-number") == [5, 2]
    assert order(limit=2, offset=1) == [1, 0]
    filtered = api.get(url, params={"state": "complete", "limit": 1}).json()
    assert filtered["total"] == 3 and len(filtered["items"]) == 1
    for params, field in [({"state": "done"}, "state"), ({"sort": "objective"}, "sort")]:
        r = api.get(url, params=params)
        assert r.status_code == 422 and error_fields(r) == [field], r.text
        assert r.json()["error"]["fields"][0]["allowed"]


def test_leaderboard_of_a_maximized_objective_puts_the_highest_first(api: Api) -> None:
    sweep = api.sweep(
        space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, objective={"metric": "val_accuracy"}
    )
    for number, value in enumerate([0.8, 0.95, 0.9]):
        api.trial(sweep["id"], number, {"optimizer.lr": 0.05}, [J(JobStatus.SUCCEEDED, value)])
    page = api.get(f"/v1/sweeps/{sweep['id']}/trials").json()
    assert [t["number"] for t in page["items"]] == [1, 2, 0]
    assert api.get(f"/v1/sweeps/{sweep['id']}").json()["best"]["value"] == 0.95


# -- importance -------------------------------------------------------------------------


BOUNDS = {"optimizer.lr": (1e-4, 0.1, True), "model.dropout": (0.0, 0.5, False)}


def test_importance_finds_the_parameter_that_matters(api: Api) -> None:
    sweep = api.sweep(
        space={
            "optimizer.lr": {"loguniform": [1e-4, 0.1]},
            "model.dropout": {"uniform": [0.0, 0.5]},
        },
        max_trials=30,
    )
    sid = sweep["id"]
    r = api.get(f"/v1/sweeps/{sid}/importance")
    assert r.status_code == 409 and "at least 2 complete trials" in r.text
    rng = np.random.default_rng(0)
    for number in range(16):
        lr = float(10 ** rng.uniform(-4, -1))
        dropout = float(rng.uniform(0, 0.5))
        loss = -math.log10(lr) + 0.01 * dropout
        params = {"optimizer.lr": lr, "model.dropout": dropout}
        api.trial(
            sid,
            number,
            params,
            [J(JobStatus.SUCCEEDED, loss)],
            record=float_record(params, BOUNDS),
        )
    # A running trial does not count.
    params = {"optimizer.lr": 0.01, "model.dropout": 0.1}
    api.trial(sid, 16, params, [J(JobStatus.RUNNING, 0.1, 1)], record=float_record(params, BOUNDS))
    r = api.get(f"/v1/sweeps/{sid}/importance")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["metric"] == "val_loss" and out["direction"] == "min"
    assert out["trials_used"] == 16
    names = [p["name"] for p in out["params"]]
    assert names == ["optimizer.lr", "model.dropout"]
    assert out["params"][0]["importance"] > 0.8
    assert math.isclose(sum(p["importance"] for p in out["params"]), 1.0, abs_tol=1e-6)
    assert api.get(f"/v1/sweeps/{sid}/importance").json() == out  # the same answer again


def test_importance_of_a_comparison_is_409(api: Api) -> None:
    c = api.comparison(configurations=[{"set": {}}, {"set": {"optimizer.lr": 0.1}}])
    r = api.get(f"/v1/sweeps/{c['id']}/importance")
    assert r.status_code == 409 and "comparison" in r.json()["error"]["message"]


# -- comparison statistics -------------------------------------------------------------


def test_comparison_statistics_match_scipy(api: Api) -> None:
    seeds = [11, 12, 13, 14, 15]
    c = api.comparison(
        configurations=[
            {"label": "sgd", "set": {"optimizer.name": "sgd"}},
            {"label": "momentum", "set": {"optimizer.name": "sgd", "optimizer.momentum": 0.9}},
            {"label": "adam", "set": {"optimizer.name": "adam"}},
        ],
        objective={"metric": "val_accuracy"},
        repeats=5,
        seeds=seeds,
    )
    sid = c["id"]
    values = {
        0: [0.80, 0.82, 0.79, 0.81, 0.83],
        1: [0.90, 0.91, 0.89, None, 0.92],  # seed 14 failed
        2: [0.95, 0.94, 0.96, 0.95, 0.97],
    }
    for number, conf in enumerate(c["spec"]["configurations"]):
        jobs = [
            J(JobStatus.SUCCEEDED, v) if v is not None else J(JobStatus.FAILED, None, 1)
            for v in values[number]
        ]
        api.trial(sid, number, conf["set"], jobs, record={"label": conf["label"]})
    r = api.get(f"/v1/sweeps/{sid}/comparison")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["metric"] == "val_accuracy" and out["direction"] == "max"
    assert out["seeds"] == seeds
    confs = {x["number"]: x for x in out["configurations"]}
    for number, vals in values.items():
        got = confs[number]
        done = [v for v in vals if v is not None]
        assert got["n"] == len(done)
        assert got["values"] == {str(s): v for s, v in zip(seeds, vals, strict=True) if v}
        assert got["mean"] == pytest.approx(np.mean(done))
        assert got["std"] == pytest.approx(np.std(done, ddof=1))
        lo, hi = stats.t.interval(0.95, len(done) - 1, loc=np.mean(done), scale=stats.sem(done))
        assert got["ci95"] == pytest.approx([lo, hi])
    assert confs[0]["label"] == "sgd" and confs[1]["state"] == "failed"
    assert out["best"] == 2
    tests = {t["other"]: t for t in out["tests"]}
    assert set(tests) == {0, 1}
    # Best against sgd: all five seeds pair.
    a, b = values[2], values[0]
    t0 = tests[0]
    assert t0["other_label"] == "sgd" and t0["n_pairs"] == 5
    assert t0["mean_difference"] == pytest.approx(np.mean(np.subtract(a, b)))
    ref = stats.ttest_rel(a, b)
    assert t0["t"] == pytest.approx(ref.statistic) and t0["p_value"] == pytest.approx(ref.pvalue)
    assert t0["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    # Against momentum: seed 14 failed there, so four pairs.
    keep = [i for i, v in enumerate(values[1]) if v is not None]
    a1 = [values[2][i] for i in keep]
    b1 = [values[1][i] for i in keep]
    t1 = tests[1]
    assert t1["n_pairs"] == 4
    ref1 = stats.ttest_rel(a1, b1)
    assert t1["p_value"] == pytest.approx(ref1.pvalue)
    # Holm: the smaller p times 2, the larger times 1 (never below the first).
    ps = sorted([(ref.pvalue, 0), (ref1.pvalue, 1)])
    first = min(1.0, 2 * ps[0][0])
    assert tests[ps[0][1]]["holm_p"] == pytest.approx(first)
    assert tests[ps[1][1]]["holm_p"] == pytest.approx(max(first, ps[1][0]))


def test_comparison_with_identical_results_has_no_p_values(api: Api) -> None:
    c = api.comparison(configurations=[{"set": {}}, {"set": {"optimizer.lr": 0.01}}], repeats=3)
    for number, conf in enumerate(c["spec"]["configurations"]):
        api.trial(c["id"], number, conf["set"], [J(JobStatus.SUCCEEDED, 0.5)] * 3)
    out = api.get(f"/v1/sweeps/{c['id']}/comparison").json()
    assert out["best"] == 0
    (test,) = out["tests"]
    assert test["n_pairs"] == 3 and test["mean_difference"] == 0
    assert test["p_value"] is None and test["wilcoxon_p"] is None and test["holm_p"] is None
    assert out["configurations"][0]["std"] == 0 and out["configurations"][0]["ci95"] == [0.5, 0.5]


def test_comparison_needs_repeats(api: Api) -> None:
    sweep = api.sweep(space={"optimizer.lr": {"grid": [0.01, 0.1]}}, sampler={"name": "grid"})
    r = api.get(f"/v1/sweeps/{sweep['id']}/comparison")
    assert r.status_code == 409 and "repeats" in r.json()["error"]["message"]
    grid = api.sweep(
        space={"optimizer.lr": {"grid": [0.01, 0.1]}}, sampler={"name": "grid"}, repeats=3
    )
    empty = api.get(f"/v1/sweeps/{grid['id']}/comparison").json()
    assert empty["configurations"] == [] and empty["best"] is None and empty["tests"] == []
    api.trial(grid["id"], 0, {"optimizer.lr": 0.01}, [J(JobStatus.SUCCEEDED, 0.3)] * 3)
    one = api.get(f"/v1/sweeps/{grid['id']}/comparison").json()
    assert one["configurations"][0]["label"] == "lr=0.01" and one["best"] == 0


def test_holm_adjustment() -> None:
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])
    assert holm([]) == []
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([0.5, 0.01]) == pytest.approx([0.5, 0.02])
