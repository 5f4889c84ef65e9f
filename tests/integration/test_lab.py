"""The optimization lab end to end, with real worker processes on both storage/broker
pairs: an LR range test job, a training job whose one-cycle peak is "auto", landscape
jobs of a finished job, and a range test that survives its worker being killed.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Iterator

import pytest
from faults import FAST_RECOVERY_ENV
from stack import TERMINAL, Stack, busy_pool
from support import Backend, make_user

pytestmark = pytest.mark.integration

MODEL = {"kind": "mlp", "hidden": [64]}
RANGE_TEST = {
    "kind": "lr_range_test",
    "dataset": {"name": "digits"},
    "model": MODEL,
    "optimizer": {"name": "sgd", "momentum": 0.9},
    "training": {"batch_size": 64},
    "range_test": {"lr_min": 1e-5, "lr_max": 10, "steps": 100},
}
RULES = {"steepest", "min_div_10", "valley"}


@pytest.fixture(scope="module")
def stack(module_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    module_backend.env.update(FAST_RECOVERY_ENV)
    s = Stack(module_backend, tmp_path_factory.mktemp(f"{module_backend.name}-stack"))
    s.start_worker()
    yield s
    s.close()


def _get(stack: Stack, path: str, status: int = 200) -> dict:
    r = stack.client.get(path)
    assert r.status_code == status, r.text
    return r.json()


def _done(stack: Stack, job_id: str, timeout: float = 180) -> dict:
    job = stack.wait_terminal(job_id, timeout)
    assert job.status == "succeeded", (job.status, job.status_reason, stack.logs())
    return _get(stack, f"/v1/jobs/{job_id}")


def test_a_range_test_records_its_curve_and_suggests_three_rates(stack: Stack) -> None:
    job_id = stack.submit(RANGE_TEST)
    job = _done(stack, job_id)
    assert job["kind"] == "lr_range_test" and job["epochs"] == 100
    rows = _get(stack, f"/v1/jobs/{job_id}/metrics")["epochs"]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    assert job["epochs_completed"] == len(rows) >= 20
    lrs = [r["lr"] for r in rows]
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-5)
    # lr_max 10 with momentum 0.9 diverges well before the last step.
    found = _get(stack, f"/v1/jobs/{job_id}/result")["result"]
    assert found["stopped"]["why"] == "diverged", found["stopped"]
    assert len(found["curve"]["lr"]) == len(rows)
    suggestions = {s["rule"]: s for s in found["suggestions"]}
    assert set(suggestions) == RULES
    for s in suggestions.values():
        assert 1e-5 < s["lr"] < 10 and s["explanation"]
    best = found["best"]
    assert suggestions["min_div_10"]["lr"] == pytest.approx(best["lr"] / 10)
    # The chart marks each suggestion; learning curves are not what this job has.
    r = stack.client.get(f"/v1/jobs/{job_id}/plots/range_test.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    for rule in RULES:
        assert f'id="suggestion-{rule}"' in r.text
    assert stack.client.get(f"/v1/jobs/{job_id}/plot.png").status_code == 409
    assert stack.client.get(f"/v1/jobs/{job_id}/plots/contour.png").status_code == 409
    listed = _get(stack, "/v1/jobs?kind=lr_range_test")["items"]
    assert job_id in [j["id"] for j in listed]


def test_one_cycle_with_an_auto_peak_records_its_choice_and_reaches_95_percent(
    stack: Stack,
) -> None:
    spec = {
        "dataset": {"name": "digits"},
        "model": MODEL,
        "optimizer": {"name": "sgd", "momentum": 0.9},
        "schedule": {"name": "one_cycle", "max_lr": "auto"},
        "training": {"epochs": 10, "batch_size": 64},
    }
    job_id = stack.submit(spec)
    job = _done(stack, job_id)
    auto = job["auto_lr"]
    assert auto["fields"] == ["schedule.max_lr"] and auto["rule"] == "min_div_10"
    assert 0 < auto["value"] < 10 and str(auto["value"]) in auto["why"]
    assert job["spec"]["schedule"]["max_lr"] == "auto"  # the spec stays as sent
    assert job["best_value"] is not None
    rows = _get(stack, f"/v1/jobs/{job_id}/metrics")["epochs"]
    assert len(rows) == 10  # the range test's steps are not the job's epochs
    assert max(r["val_accuracy"] for r in rows) >= 0.95, rows
    # The 1cycle peak is the chosen value.
    assert max(r["lr"] for r in rows) <= auto["value"] * (1 + 1e-9)
    found = _get(stack, f"/v1/jobs/{job_id}/result")["result"]["auto_lr"]
    assert {s["rule"] for s in found["suggestions"]} == RULES
    r = stack.client.get(f"/v1/jobs/{job_id}/plots/range_test.png")
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")


def test_landscapes_of_a_finished_job(stack: Stack) -> None:
    trained = stack.submit(
        {
            "dataset": {"name": "digits"},
            "model": MODEL,
            "optimizer": {"name": "adam", "lr": 0.003},
            "training": {"epochs": 5, "batch_size": 64, "save_trajectory": True},
        }
    )
    source = _done(stack, trained)
    final_val_loss = source["final_metrics"]["val_loss"]

    r = stack.client.post(
        "/v1/jobs",
        json={"kind": "landscape", "landscape": {"job_id": trained, "resolution": 11}},
    )
    assert r.status_code == 202, r.text
    land = _done(stack, r.json()["id"])
    assert land["source_job_id"] == trained and land["epochs"] == 11
    assert land["spec"]["model"] == source["spec"]["model"]
    found = _get(stack, f"/v1/jobs/{land['id']}/result")["result"]
    grid = found["surface"]["loss"]
    assert len(grid) == 11 and all(len(row) == 11 for row in grid)
    assert math.isclose(grid[5][5], final_val_loss, abs_tol=1e-4), (grid[5][5], final_val_loss)
    assert math.isclose(found["centre"]["loss"], final_val_loss, abs_tol=1e-4)
    line = found["interpolation"]
    at_one = line["loss"][line["alpha"].index(1.0)]
    assert math.isclose(at_one, final_val_loss, abs_tol=1e-4)
    for view, magic in (("contour", b"\x89PNG"), ("surface", b"\x89PNG")):
        r = stack.client.get(f"/v1/jobs/{land['id']}/plots/{view}.png")
        assert r.status_code == 200 and r.content.startswith(magic), view

    r = stack.client.post(
        "/v1/jobs",
        json={
            "kind": "landscape",
            "landscape": {"job_id": trained, "resolution": 9, "directions": "pca"},
        },
    )
    assert r.status_code == 202, r.text
    found = _get(stack, f"/v1/jobs/{_done(stack, r.json()['id'])['id']}/result")["result"]
    path = found["trajectory"]
    assert path["epochs"] == [0, 1, 2, 3, 4, 5]
    assert path["x"][-1] == pytest.approx(0, abs=1e-9) and path["y"][-1] == pytest.approx(
        0, abs=1e-9
    )
    assert 0 < sum(found["explained_variance"]) <= 1 + 1e-9


def test_a_landscape_needs_a_finished_job_of_your_own(stack: Stack) -> None:
    cancelled = stack.submit({"dataset": {"name": "digits"}, "training": {"epochs": 200}})
    assert stack.client.post(f"/v1/jobs/{cancelled}/cancel").status_code == 202
    assert stack.wait_terminal(cancelled).status == "cancelled"
    no_trajectory = stack.submit({"dataset": {"name": "iris"}, "training": {"epochs": 2}})
    _done(stack, no_trajectory)

    def refused(settings: dict, field: str, **extra: object) -> str:
        r = stack.client.post(
            "/v1/jobs", json={"kind": "landscape", "landscape": settings, **extra}
        )
        assert r.status_code == 422, r.text
        fields = [f["field"] for f in r.json()["error"]["fields"]]
        assert field in fields, r.text
        return r.json()["error"]["message"]

    assert "cancelled" in refused({"job_id": cancelled}, "landscape.job_id")
    assert "save_trajectory" in refused(
        {"job_id": no_trajectory, "directions": "pca"}, "landscape.directions"
    )
    refused({"job_id": "00000000-0000-4000-8000-000000000000"}, "landscape.job_id")
    refused({"job_id": no_trajectory}, "model", model={"kind": "mlp"})
    refused({"job_id": no_trajectory, "resolution": 10}, "landscape.resolution")
    r = stack.client.post("/v1/jobs", json={"kind": "landscape"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "landscape"
    # Another user's job is no job at all.
    other = make_user(stack.backend, "someone-else")
    r = stack.client.post(
        "/v1/jobs",
        json={"kind": "landscape", "landscape": {"job_id": no_trajectory}},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert r.status_code == 422 and "no job with id" in r.text, r.text


# The recovery is the training jobs' own (leases, redelivery, the first record stands),
# killed on both pairs in test_crash_safety.py; here, that a lab job goes through it.
@pytest.mark.parametrize("module_backend", ["sqlite"], indirect=True)
def test_a_range_test_carries_on_after_its_pool_process_is_killed(stack: Stack) -> None:
    slow = {
        **RANGE_TEST,
        "model": {"kind": "mlp", "hidden": [256, 256]},
        "training": {"batch_size": 4},
        "range_test": {"lr_min": 1e-6, "lr_max": 1e-2, "steps": 1500},
    }
    job_id = stack.submit(slow)
    job = stack.wait(job_id, lambda j: j.status == "running" and j.epochs_completed >= 100)
    os.kill(busy_pool(stack.workers[0]), signal.SIGKILL)  # Celery redelivers the message
    job = stack.wait_terminal(job_id, timeout=300)
    assert job.status == "succeeded", (job.status_reason, stack.logs())
    assert job.attempt >= 2
    rows = _get(stack, f"/v1/jobs/{job_id}/metrics")["epochs"]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))  # each once
    assert len(rows) == job.epochs_completed
    assert job.status in TERMINAL
