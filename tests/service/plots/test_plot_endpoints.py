"""The plot routes over HTTP: images that decode, series and labels findable in the SVG,
422s naming the parameter, and nobody else's jobs (404 exactly as for a missing id)."""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from support import Backend, bearer, make_user

from service.plots.mpl import DPI
from service.plots.render import COMPARE_SIZE_IN, CURVES_WIDTH_IN, PANEL_HEIGHT_IN
from service.plots.render import TITLE_HEIGHT_IN as TITLE_IN

Record = Callable[..., None]  # the ``record`` fixture (conftest.py)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FORMATS = ["png", "svg"]
OPTIMIZERS: list[dict[str, Any]] = [
    {"name": "sgd"},
    {"name": "sgd", "momentum": 0.9},
    {"name": "sgd", "momentum": 0.9, "nesterov": True},
    {"name": "adagrad"},
    {"name": "rmsprop"},
    {"name": "adam"},
    {"name": "adamw"},
    {"name": "nadam"},
    {"name": "adamax"},
]
EXPECTED_LABELS = [
    "sgd",
    "sgd momentum=0.9",
    "sgd momentum=0.9 nesterov=on",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "nadam",
    "adamax",
]


def classification_epoch(epoch: int, scale: float = 1.0) -> dict[str, Any]:
    return {
        "train_loss": scale / epoch,
        "val_loss": 1.1 * scale / epoch,
        "train_accuracy": min(1.0, 0.5 + epoch / 40),
        "val_accuracy": min(1.0, 0.45 + epoch / 40),
        "lr": 0.01 * 0.9**epoch,
        "grad_norm": 0.3 / epoch,
        "weight_norm": 4.0 + epoch / 10,
        "epoch_seconds": 0.01,
        "samples_per_second": 9000.0,
    }


def submit(api: TestClient, **spec: Any) -> str:
    spec.setdefault("dataset", {"name": "iris"})
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def png_size(content: bytes) -> tuple[int, int]:
    assert content.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(content)) as image:
        image.load()  # decodes the whole image: a truncated file fails here
        return image.size


def svg_ids(svg: str) -> list[str]:
    return re.findall(r'<g id="(series-[^"]+)"', svg)


def svg_texts(svg: str) -> list[str]:
    unescape = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}
    texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)
    return [re.sub(r"&\w+;|&#\d+;", lambda m: unescape.get(m.group(), m.group()), t) for t in texts]


def curves_size(panels: int) -> tuple[int, int]:
    return (round(CURVES_WIDTH_IN * DPI), round((TITLE_IN + PANEL_HEIGHT_IN * panels) * DPI))


@pytest.fixture
def finished(api: TestClient, record: Record) -> str:
    job_id = submit(api, name="iris-finished", training={"epochs": 12})
    record(job_id, [classification_epoch(e) for e in range(1, 13)], best_epoch=9)
    return job_id


# -- one job ---------------------------------------------------------------------------


def test_png_of_a_finished_job_has_three_panels(api: TestClient, finished: str) -> None:
    r = api.get(f"/v1/jobs/{finished}/plot.png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "private, max-age=300"
    assert png_size(r.content) == curves_size(3)
    assert 'filename="iris-finished-' in r.headers["content-disposition"]


def test_svg_names_every_series_and_keeps_text_as_text(api: TestClient, finished: str) -> None:
    r = api.get(f"/v1/jobs/{finished}/plot.svg")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    svg = r.text
    assert svg_ids(svg) == [
        "series-train_loss",
        "series-val_loss",
        "series-train_accuracy",
        "series-val_accuracy",
        "series-lr",
    ]
    texts = svg_texts(svg)
    for label in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "epoch"):
        assert label in texts, texts
    assert "best epoch 9" in texts
    assert "iris-finished · succeeded · 12/12 epochs" in texts
    assert 'id="best-epoch-0"' in svg
    assert "DejaVuSans-" not in svg  # text is <text>, not glyph outlines


def test_a_regression_job_shows_r2(api: TestClient, record: Record) -> None:
    job_id = submit(api, dataset={"name": "diabetes"})
    epochs = [
        {"train_loss": 1 / e, "val_loss": 1.2 / e, "val_r2": 1 - 1 / e, "lr": 0.01}
        for e in range(1, 6)
    ]
    record(job_id, epochs)
    svg = api.get(f"/v1/jobs/{job_id}/plot.svg").text
    assert svg_ids(svg) == ["series-train_loss", "series-val_loss", "series-val_r2", "series-lr"]


def test_metrics_picks_series_and_groups_them_into_panels(api: TestClient, finished: str) -> None:
    query = "metrics=val_accuracy,val_loss,grad_norm,train_loss"
    svg = api.get(f"/v1/jobs/{finished}/plot.svg?{query}").text
    # Panels in order of first mention; the losses share one.
    assert svg_ids(svg) == [
        "series-val_accuracy",
        "series-val_loss",
        "series-train_loss",
        "series-grad_norm",
    ]
    r = api.get(f"/v1/jobs/{finished}/plot.png", params={"metrics": "val_loss , grad_norm"})
    assert r.status_code == 200, r.text
    assert png_size(r.content) == curves_size(2)


def test_log_draws_a_log_axis(api: TestClient, finished: str) -> None:
    base = f"/v1/jobs/{finished}/plot.svg?metrics=val_loss,lr"
    linear = api.get(f"{base}&log=false")
    assert linear.status_code == 200
    for log in ("val_loss", "lr", "all", "true", "val_loss,lr"):
        r = api.get(f"{base}&log={log}")
        assert r.status_code == 200, r.text
        assert r.content != linear.content, log
    assert api.get(f"{base}&log=all").content == api.get(f"{base}&log=val_loss,lr").content


@pytest.mark.parametrize(
    ("query", "field", "allowed"),
    [
        ("metrics=val_r2", "metrics", "val_accuracy"),
        ("metrics=val_loss,nonsense", "metrics", "val_loss"),
        ("metrics=epoch", "metrics", "lr"),
        ("log=nonsense", "log", "all"),
        ("log=grad_norm", "log", "val_loss"),  # a metric, but not one drawn
        ("metrics=val_loss&log=lr", "log", "val_loss"),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_metrics_or_log_is_a_422_naming_the_parameter(
    api: TestClient, finished: str, fmt: str, query: str, field: str, allowed: str
) -> None:
    r = api.get(f"/v1/jobs/{finished}/plot.{fmt}?{query}")
    assert r.status_code == 422, r.text
    (error,) = r.json()["error"]["fields"]
    assert error["field"] == field
    assert allowed in error["allowed"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_job_without_epochs_still_gets_an_image(api: TestClient, fmt: str) -> None:
    job_id = submit(api)
    r = api.get(f"/v1/jobs/{job_id}/plot.{fmt}")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"  # queued: curves are coming
    if fmt == "png":
        assert png_size(r.content) == curves_size(3)
    else:
        assert "no epochs recorded yet" in svg_texts(r.text)
        assert "0/20 epochs" in r.text


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_diverged_job_with_non_finite_values_draws(
    api: TestClient, record: Record, fmt: str
) -> None:
    job_id = submit(api)
    epochs = [classification_epoch(e) for e in range(1, 5)]
    epochs += [
        {**classification_epoch(5), "train_loss": math.inf, "val_loss": math.nan, "lr": 1e308},
        {"train_loss": None, "val_loss": -math.inf, "val_accuracy": "n/a", "lr": 10**400},
        {},
    ]
    record(job_id, epochs, status="diverged", best_epoch=4)
    for log in ("", "&log=all", "&log=false"):
        r = api.get(f"/v1/jobs/{job_id}/plot.{fmt}?{log}")
        assert r.status_code == 200, r.text
        if fmt == "png":
            assert png_size(r.content) == curves_size(3)
        else:
            assert "series-val_loss" in svg_ids(r.text)


def test_a_running_job_is_not_cached(api: TestClient, record: Record) -> None:
    job_id = submit(api, training={"epochs": 50})
    record(job_id, [classification_epoch(e) for e in range(1, 4)], status="running")
    r = api.get(f"/v1/jobs/{job_id}/plot.svg")
    assert r.headers["cache-control"] == "no-store"
    assert "running · 3/50 epochs" in r.text


# -- several jobs ----------------------------------------------------------------------


@pytest.fixture
def nine(api: TestClient, record: Record) -> list[str]:
    """Nine jobs on iris that differ by optimizer only."""
    ids = []
    for i, optimizer in enumerate(OPTIMIZERS):
        job_id = submit(api, optimizer=optimizer, training={"epochs": 8})
        record(job_id, [classification_epoch(e, scale=1 + i / 4) for e in range(1, 9)])
        ids.append(job_id)
    return ids


def test_compare_nine_optimizers_labels_each_by_what_differs(
    api: TestClient, nine: list[str]
) -> None:
    r = api.get("/v1/plots/compare.svg", params={"jobs": ",".join(nine)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.headers["cache-control"] == "private, max-age=300"
    assert svg_ids(r.text) == [f"series-{job_id}" for job_id in nine]
    texts = svg_texts(r.text)
    for label in EXPECTED_LABELS:
        assert label in texts, (label, texts)
    assert len(set(EXPECTED_LABELS)) == len(EXPECTED_LABELS)
    assert "val_loss of 9 jobs" in texts


def test_compare_png_and_options(api: TestClient, nine: list[str]) -> None:
    jobs = ",".join(nine[:3])
    r = api.get(f"/v1/plots/compare.png?jobs={jobs}&metric=val_accuracy&log=true")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    width, height = COMPARE_SIZE_IN
    assert png_size(r.content) == (round(width * DPI), round(height * DPI))
    linear = api.get(f"/v1/plots/compare.svg?jobs={jobs}&metric=val_accuracy")
    logged = api.get(f"/v1/plots/compare.svg?jobs={jobs}&metric=val_accuracy&log=true")
    assert linear.status_code == logged.status_code == 200
    assert linear.content != logged.content
    assert "val_accuracy" in svg_texts(linear.text)


def test_compare_counts_a_repeated_id_once(api: TestClient, nine: list[str]) -> None:
    a, b = nine[0], nine[5]
    r = api.get(f"/v1/plots/compare.svg?jobs={a}, {b},{a}")
    assert r.status_code == 200, r.text
    assert svg_ids(r.text) == [f"series-{a}", f"series-{b}"]
    assert {"sgd", "adam"} <= set(svg_texts(r.text))


def test_compare_one_job_or_identical_specs_falls_back_to_name_and_id(
    api: TestClient, record: Record
) -> None:
    a = submit(api, name="twin")
    b = submit(api, name="twin")
    for job_id in (a, b):
        record(job_id, [classification_epoch(e) for e in range(1, 4)])
    texts = svg_texts(api.get(f"/v1/plots/compare.svg?jobs={a}").text)
    assert f"twin {a[:8]}" in texts
    texts = svg_texts(api.get(f"/v1/plots/compare.svg?jobs={a},{b}").text)
    assert f"twin {a[:8]}" in texts and f"twin {b[:8]}" in texts


def test_compare_jobs_without_epochs(api: TestClient) -> None:
    a, b = submit(api), submit(api, optimizer={"name": "sgd"})
    r = api.get(f"/v1/plots/compare.svg?jobs={a},{b}")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert {"no epochs recorded yet", "adam", "sgd"} <= set(svg_texts(r.text))


@pytest.mark.parametrize(
    ("jobs", "extra"),
    [
        ("", ""),
        (None, ""),  # left out
        ("not-a-uuid", ""),
        ("{a},", ""),
        ("{a},,{a}", ""),
        ("{A}", ""),  # ids are lowercase
        (",".join(str(uuid.uuid4()) for _ in range(21)), ""),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_compare_bad_jobs_is_a_422_naming_jobs(
    api: TestClient, nine: list[str], fmt: str, jobs: str | None, extra: str
) -> None:
    params = {} if jobs is None else {"jobs": jobs.format(a=nine[0], A=nine[0].upper())}
    r = api.get(f"/v1/plots/compare.{fmt}", params=params)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["error"]["fields"]] == ["jobs"]


def test_compare_twenty_jobs_is_the_most(api: TestClient, nine: list[str]) -> None:
    jobs = ",".join((nine * 3)[:20])  # twenty ids, nine jobs
    assert api.get(f"/v1/plots/compare.png?jobs={jobs}").status_code == 200


@pytest.mark.parametrize("metric", ["val_r2", "nonsense", "epoch"])
def test_compare_a_metric_no_job_records_is_a_422_naming_metric(
    api: TestClient, nine: list[str], metric: str
) -> None:
    r = api.get(f"/v1/plots/compare.svg?jobs={nine[0]}&metric={metric}")
    assert r.status_code == 422, r.text
    (error,) = r.json()["error"]["fields"]
    assert error["field"] == "metric" and "val_loss" in error["allowed"]


def test_compare_mixed_tasks_draws_what_each_records(
    api: TestClient, record: Record, nine: list[str]
) -> None:
    reg = submit(api, dataset={"name": "diabetes"})
    record(reg, [{"val_loss": 1 / e, "val_r2": 1 - 1 / e} for e in range(1, 4)])
    r = api.get(f"/v1/plots/compare.svg?jobs={nine[0]},{reg}&metric=val_r2")
    assert r.status_code == 200, r.text
    assert svg_ids(r.text) == [f"series-{nine[0]}", f"series-{reg}"]
    # The nine ran 8 epochs, the other the default 20.
    assert {"iris sgd epochs=8", "diabetes adam epochs=20"} <= set(svg_texts(r.text))


# -- whose jobs ------------------------------------------------------------------------


@pytest.fixture
def stranger(api: TestClient, sqlite_backend: Backend, record: Record) -> dict[str, str]:
    """Another user's finished job."""
    headers = bearer(make_user(sqlite_backend, "stranger"))
    r = api.post("/v1/jobs", json={"dataset": {"name": "iris"}, "name": "secret"}, headers=headers)
    assert r.status_code == 202, r.text
    record(r.json()["id"], [classification_epoch(e) for e in range(1, 4)])
    return {"job_id": r.json()["id"], **headers}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("query", ["", "?metrics=val_loss&log=all", "?metrics=val_r2"])
def test_another_users_job_answers_as_a_missing_one(
    api: TestClient, stranger: dict[str, str], fmt: str, query: str
) -> None:
    theirs, missing = stranger["job_id"], str(uuid.uuid4())
    r = api.get(f"/v1/jobs/{theirs}/plot.{fmt}{query}")
    ref = api.get(f"/v1/jobs/{missing}/plot.{fmt}{query}")
    assert r.status_code == ref.status_code == 404
    assert r.text == ref.text.replace(missing, theirs)
    assert r.text == api.get(f"/v1/jobs/{theirs}").text  # as GET /v1/jobs/{id} answers
    assert "secret" not in r.text
    # The owner sees it.
    mine = api.get(
        f"/v1/jobs/{theirs}/plot.{fmt}", headers={"Authorization": stranger["Authorization"]}
    )
    assert mine.status_code == 200


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("metric", ["val_loss", "val_r2"])
def test_compare_with_another_users_job_answers_as_a_missing_one(
    api: TestClient, stranger: dict[str, str], nine: list[str], fmt: str, metric: str
) -> None:
    theirs, missing = stranger["job_id"], str(uuid.uuid4())
    path = f"/v1/plots/compare.{fmt}?metric={metric}&jobs={nine[0]},"
    r, ref = api.get(path + theirs), api.get(path + missing)
    assert r.status_code == ref.status_code == 404
    assert r.text == ref.text.replace(missing, theirs)
    assert r.text == api.get(f"/v1/jobs/{theirs}").text
    assert "secret" not in r.text


def test_without_a_token_plots_are_401(api: TestClient, finished: str) -> None:
    for path in (f"/v1/jobs/{finished}/plot.png", f"/v1/plots/compare.svg?jobs={finished}"):
        r = api.get(path, headers={"Authorization": ""})
        assert r.status_code == 401, r.text


def test_openapi_documents_images_and_404(api: TestClient) -> None:
    paths = api.app.openapi()["paths"]
    for path, media in [
        ("/v1/jobs/{job_id}/plot.png", "image/png"),
        ("/v1/jobs/{job_id}/plot.svg", "image/svg+xml"),
        ("/v1/plots/compare.png", "image/png"),
        ("/v1/plots/compare.svg", "image/svg+xml"),
    ]:
        op = paths[path]["get"]
        assert list(op["responses"]["200"]["content"]) == [media], path
        assert {"401", "404", "422"} <= set(op["responses"]), path
        assert op["description"], path


def test_the_api_imports_no_matplotlib_until_a_plot_is_drawn(tmp_path: Path) -> None:
    code = (
        "import sys, service.main, service.plots.router; service.main.create_app(); "
        "print('matplotlib' in sys.modules)"
    )
    # In tmp_path: the app's default data directory, ./.descent, is made where it starts.
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "False", out.stdout + out.stderr
