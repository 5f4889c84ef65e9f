"""POST /v1/jobs/{id}/predict on both backends: each input form, the CSV answer, every
refusal naming its row and column, the caps, the jobs that cannot answer, the cache.

The jobs are submitted through the API (no worker runs) and made to look succeeded with a
bundle of the tests' own (tests/bundles.py); the expected answers are onnxruntime's,
called directly on the same file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from bundles import IRIS_FEATURES, IRIS_LABELS, finish_with_bundle, mark_succeeded, reference
from fastapi.testclient import TestClient
from support import Backend, bearer, make_user

from service.main import create_app
from service.spec.bundle import TargetScaling

MAX_ROWS = 20
MAX_BYTES = 64 * 1024
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
#: Iris-like features, scaled as the training split would have them.
SHIFT, SCALE = [5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.8, 0.8]
DIABETES = [f"x{i}" for i in range(5)]


@dataclass
class World:
    client: TestClient
    alice: dict[str, str]
    bob: dict[str, str]
    ids: dict[str, str]
    folders: dict[str, Path]

    def predict(self, job: str, who: dict[str, str] | None = None, **kw):  # noqa: ANN003, ANN201
        headers = {**(who or self.alice), **kw.pop("headers", {})}
        return self.client.post(f"/v1/jobs/{self.ids[job]}/predict", headers=headers, **kw)


def submit(client: TestClient, headers: dict[str, str], spec: dict) -> str:
    r = client.post("/v1/jobs", json=spec, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def world(module_backend: Backend) -> Iterator[World]:
    settings = module_backend.settings().model_copy(
        update={"predict_max_rows": MAX_ROWS, "predict_max_bytes": MAX_BYTES}
    )
    url = str(settings.database_url)
    alice = bearer(make_user(module_backend, "alice"))
    bob = bearer(make_user(module_backend, "bob"))
    with TestClient(create_app(settings)) as client:
        iris = {"dataset": {"name": "iris"}}
        ids = {
            "iris": submit(client, alice, iris),
            "diabetes": submit(client, alice, {"dataset": {"name": "diabetes"}}),
            "queued": submit(client, alice, iris),
            "old": submit(client, alice, iris),
            "lab": submit(client, alice, {"kind": "lr_range_test", **iris}),
            "gone": submit(client, alice, iris),
            "broken": submit(client, alice, iris),
        }
        jobs_dir = settings.jobs_dir
        folders = {
            "iris": finish_with_bundle(url, jobs_dir, ids["iris"], shift=SHIFT, scale=SCALE),
            "diabetes": finish_with_bundle(
                url,
                jobs_dir,
                ids["diabetes"],
                task="regression",
                feature_names=DIABETES,
                labels=None,
                target=TargetScaling(method="standard", shift=150.0, scale=75.0),
            ),
        }
        mark_succeeded(url, ids["old"], bundle=False)  # trained before bundles
        mark_succeeded(url, ids["lab"], bundle=False)
        shutil.rmtree(finish_with_bundle(url, jobs_dir, ids["gone"]))
        broken = finish_with_bundle(url, jobs_dir, ids["broken"])
        (broken / "model.json").write_text('{"format_version": 1, "job_id": 3}')
        yield World(client, alice, bob, ids, folders)


def iris_expected(world: World, rows: list[list[float]]) -> np.ndarray:
    return reference(world.folders["iris"], rows)


# -- the three input forms, and the answer -------------------------------------------


def test_rows_in_feature_order(world: World) -> None:
    r = world.predict("iris", json={"rows": ROWS})
    assert r.status_code == 200, r.text
    doc = r.json()
    expected = iris_expected(world, ROWS)
    assert doc["job_id"] == world.ids["iris"] and doc["task"] == "classification"
    assert doc["n_rows"] == 3 and doc["saved_epoch"] == 3
    assert doc["feature_names"] == IRIS_FEATURES and doc["labels"] == IRIS_LABELS
    np.testing.assert_allclose(doc["probabilities"], expected, atol=1e-6)
    assert doc["predictions"] == [IRIS_LABELS[i] for i in expected.argmax(axis=1)]
    assert len(set(doc["predictions"])) > 1  # the rows are told apart, not all one class


def test_rows_by_name_in_any_order_answer_the_same(world: World) -> None:
    named = [dict(reversed(list(zip(IRIS_FEATURES, row, strict=True)))) for row in ROWS]
    by_name = world.predict("iris", json={"rows": named})
    by_list = world.predict("iris", json={"rows": ROWS})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json() == by_list.json()
    mixed = world.predict("iris", json={"rows": [named[0], ROWS[1], named[2]]})
    assert mixed.json() == by_list.json()


def csv_text(names: list[str], rows: list[list[float]]) -> str:
    lines = [",".join(f'"{n}"' for n in names)]
    lines += [",".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def test_a_csv_body_and_a_csv_file_with_columns_in_any_order(world: World) -> None:
    order = [2, 0, 3, 1]
    text = csv_text([IRIS_FEATURES[k] for k in order], [[row[k] for k in order] for row in ROWS])
    by_list = world.predict("iris", json={"rows": ROWS}).json()
    body = world.predict("iris", content=text, headers={"Content-Type": "text/csv"})
    assert body.status_code == 200, body.text
    assert body.json() == by_list
    upload = world.predict("iris", files={"file": ("rows.csv", text, "text/csv")})
    assert upload.status_code == 200, upload.text
    assert upload.json() == by_list


def test_the_answer_as_csv(world: World) -> None:
    doc = world.predict("iris", json={"rows": ROWS}).json()
    for kw in ({"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}):
        r = world.predict("iris", json={"rows": ROWS}, **kw)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        lines = r.text.splitlines()
        assert lines[0] == "prediction," + ",".join(f"probability_{x}" for x in IRIS_LABELS)
        assert len(lines) == 1 + len(ROWS)
        for line, label, probs in zip(
            lines[1:], doc["predictions"], doc["probabilities"], strict=True
        ):
            cells = line.split(",")
            assert cells[0] == label
            np.testing.assert_allclose([float(c) for c in cells[1:]], probs, rtol=1e-12)


def test_regression_answers_in_the_targets_units(world: World) -> None:
    rows = [[0.1, -0.2, 0.3, 0.0, 1.5], [2.0, 1.0, -1.0, 0.5, 0.0]]
    r = world.predict("diabetes", json={"rows": rows})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["task"] == "regression" and doc["labels"] is None and doc["probabilities"] is None
    expected = reference(world.folders["diabetes"], rows)[:, 0]
    np.testing.assert_allclose(doc["predictions"], expected, rtol=1e-6)
    assert all(abs(p - 150.0) < 300 for p in doc["predictions"])  # shifted into target units
    csv = world.predict("diabetes", json={"rows": rows}, params={"format": "csv"}).text
    assert csv.splitlines()[0] == "prediction" and len(csv.splitlines()) == 3


def test_extra_columns_are_refused_or_ignored_as_asked(world: World) -> None:
    text = csv_text([*IRIS_FEATURES, "species"], [[*row, 0] for row in ROWS])
    headers = {"Content-Type": "text/csv"}
    refused = world.predict("iris", content=text, headers=headers)
    assert refused.status_code == 422
    assert "unknown columns 'species'" in refused.json()["error"]["message"]
    ignored = world.predict(
        "iris", content=text, headers=headers, params={"extra_columns": "ignore"}
    )
    assert ignored.status_code == 200, ignored.text
    assert ignored.json() == world.predict("iris", json={"rows": ROWS}).json()
    named = [{**dict(zip(IRIS_FEATURES, row, strict=True)), "id": 7} for row in ROWS]
    assert world.predict("iris", json={"rows": named}).status_code == 422
    r = world.predict("iris", json={"rows": named}, params={"extra_columns": "ignore"})
    assert r.status_code == 200, r.text


# -- refusals: each names its row and column ------------------------------------------

GOOD = ROWS[0]
NAMED = dict(zip(IRIS_FEATURES, GOOD, strict=True))
JSON_CASES = [
    # (body, needles the message must hold, a field)
    ({"rows": [GOOD, GOOD[:3]]}, ["rows[1] has 3 values", "takes 4 features"], "rows.1"),
    ({"rows": [GOOD, [*GOOD, 1.0]]}, ["rows[1] has 5 values"], "rows.1"),
    (
        {"rows": [GOOD, [5.0, "3.1", 1.0, 0.2]]},
        ["rows[1], column 1 ('sepal width (cm)')", "'3.1'", "not a number"],
        "rows.1.1",
    ),
    (
        {"rows": [[5.0, 3.1, True, 0.2]]},
        ["rows[0], column 2 ('petal length (cm)')", "true is not a number"],
        "rows.0.2",
    ),
    (
        {"rows": [GOOD, GOOD, [5.0, 3.1, 1.0, None]]},
        ["rows[2], column 3 ('petal width (cm)')", "null"],
        "rows.2.3",
    ),
    (
        {"rows": [[1e39, 3.1, 1.0, 0.2]]},
        ["rows[0], column 0 ('sepal length (cm)')", "out of range for a 32-bit float"],
        "rows.0.0",
    ),
    (
        {"rows": [{**NAMED, "petal width (cm)": "wide"}]},
        ["rows[0], column 'petal width (cm)'", "'wide'"],
        "rows.0.petal width (cm)",
    ),
    (
        {"rows": [{k: v for k, v in NAMED.items() if k != "sepal width (cm)"}]},
        ["rows[0] lacks the features 'sepal width (cm)'"],
        "rows.0",
    ),
    (
        {"rows": [{**NAMED, "colour": 1}]},
        ["rows[0] has unknown features 'colour'", "extra_columns=ignore"],
        "rows.0.colour",
    ),
    ({"rows": [GOOD, "5,3,1,0"]}, ["rows[1] must be a list of 4 numbers"], "rows.1"),
    ({"rows": []}, ["rows is empty"], "rows"),
    ({}, ["rows is required"], "rows"),
    ({"rows": [GOOD], "model": "x"}, ["unknown field 'model'"], "model"),
    ({"rows": {"a": 1}}, ["rows must be a list"], "rows"),
    ([GOOD], ["must be a JSON object"], "body"),
]


@pytest.mark.parametrize(("body", "needles", "field"), JSON_CASES)
def test_bad_json_rows_are_422s_naming_row_and_column(
    world: World, body: object, needles: list[str], field: str
) -> None:
    r = world.predict("iris", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    for needle in needles:
        assert needle in error["message"], error
    assert field in [f["field"] for f in error["fields"]], error


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_though_pythons_json_reads_them(
    world: World, literal: str
) -> None:
    body = '{"rows": [[5.1, 3.5, 1.4, 0.2], [5.1, ' + literal + ", 1.4, 0.2]]}"
    r = world.predict("iris", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "rows[1], column 1 ('sepal width (cm)')" in message and "finite" in message


def test_several_problems_are_reported_at_once(world: World) -> None:
    r = world.predict("iris", json={"rows": [[1, 2, 3], GOOD, [1, "x", 3, 4]]})
    fields = [f["field"] for f in r.json()["error"]["fields"]]
    assert fields == ["rows.0", "rows.2.1"]


HEADER = ",".join(IRIS_FEATURES)
CSV_CASES = [
    (f"{HEADER}\n5.1,3.5,1.4,0.2\n5.1,nan,1.4,0.2\n", ["line 3, column 'sepal width (cm)'"]),
    (f"{HEADER}\n5.1,3.5,1.4,\n", ["line 2, column 'petal width (cm)'", "is empty"]),
    (f"{HEADER}\n5.1,3.5,1.4,inf\n", ["line 2, column 'petal width (cm)'", "finite"]),
    (f"{HEADER}\n\n5.1,3.5,1_4,0.2\n", ["line 3, column 'petal length (cm)'", "not a number"]),
    (f"{HEADER}\n5.1,3.5,1.4\n", ["line 2 has 3 cells but the header has 4"]),
    (f"{HEADER},colour\n5.1,3.5,1.4,0.2,red\n", ["line 1: unknown columns 'colour'"]),
    ("sepal length (cm),petal width (cm)\n1,2\n", ["lacks the features 'sepal width (cm)'"]),
    (f"{HEADER},sepal width (cm)\n1,2,3,4,5\n", ["'sepal width (cm)' appears twice"]),
    (f"{HEADER}\n", ["no rows to predict"]),
    ("", ["empty"]),
    (f"{HEADER}\n5.1,3.5,1.4,1e39\n", ["line 2, column 'petal width (cm)'", "32-bit"]),
    (f'{HEADER}\n5.1,3.5,1.4,"0.2\n', ["quote"]),
]


@pytest.mark.parametrize(("text", "needles"), CSV_CASES)
def test_bad_csv_rows_are_422s_naming_line_and_column(
    world: World, text: str, needles: list[str]
) -> None:
    for kw in (
        {"content": text, "headers": {"Content-Type": "text/csv"}},
        {"files": {"file": ("rows.csv", text, "text/csv")}},
    ):
        r = world.predict("iris", **kw)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        for needle in needles:
            assert needle in error["message"], error
        assert error["fields"][0]["field"] == ("file" if "files" in kw else "body")


def test_a_form_without_the_file_field_and_other_media_types_are_refused(world: World) -> None:
    r = world.predict("iris", data={"rows": "1,2,3,4"}, files={"other": ("x.csv", "a\n1\n")})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "file"
    r = world.predict("iris", content="1,2,3,4", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.text
    assert "text/csv" in r.json()["error"]["message"]


# -- caps -------------------------------------------------------------------------------


def test_more_rows_than_the_cap_is_a_422_naming_the_setting(world: World) -> None:
    assert world.predict("iris", json={"rows": [GOOD] * MAX_ROWS}).status_code == 200
    r = world.predict("iris", json={"rows": [GOOD] * (MAX_ROWS + 1)})
    assert r.status_code == 422
    assert "DESCENT_PREDICT_MAX_ROWS" in r.json()["error"]["message"]
    text = HEADER + "\n" + "5.1,3.5,1.4,0.2\n" * (MAX_ROWS + 1)
    r = world.predict("iris", content=text, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert f"line {MAX_ROWS + 2}" in message and "DESCENT_PREDICT_MAX_ROWS" in message


def test_a_body_over_the_byte_cap_is_a_413_naming_the_setting(world: World) -> None:
    big = json.dumps({"rows": [GOOD] * (MAX_BYTES // 10)})
    assert len(big) > MAX_BYTES
    r = world.predict("iris", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert "DESCENT_PREDICT_MAX_BYTES" in r.json()["error"]["message"]


# -- jobs that cannot answer ----------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "status", "needle"),
    [
        ("queued", 409, "is queued; predictions need a training job that succeeded"),
        ("lab", 409, "is a lr_range_test job"),
        ("old", 409, "GET /v1/jobs/{id}/model"),
        ("gone", 404, "missing from the artifact store"),
        ("broken", 409, "model.json"),
    ],
)
def test_jobs_without_a_model_to_serve_say_why(
    world: World, job: str, status: int, needle: str
) -> None:
    r = world.predict(job, json={"rows": ROWS})
    assert r.status_code == status, r.text
    assert needle.replace("{id}", world.ids[job]) in r.json()["error"]["message"]


def test_another_users_job_answers_as_a_missing_one(world: World) -> None:
    mine = world.predict("iris", who=world.bob, json={"rows": ROWS})
    missing = world.client.post(
        "/v1/jobs/00000000-0000-4000-8000-000000000000/predict",
        json={"rows": ROWS},
        headers=world.bob,
    )
    assert mine.status_code == missing.status_code == 404
    assert mine.text == missing.text.replace(
        "00000000-0000-4000-8000-000000000000", world.ids["iris"]
    )


# -- the cache ------------------------------------------------------------------------


def test_a_model_is_loaded_once_and_then_served_from_the_cache(world: World) -> None:
    cache = world.client.app.state.model_cache
    world.predict("diabetes", json={"rows": [[0.0] * 5]})
    before = cache.stats()
    for _ in range(3):
        assert world.predict("diabetes", json={"rows": [[0.0] * 5]}).status_code == 200
    after = cache.stats()
    assert after.loads == before.loads  # no reload
    assert after.hits == before.hits + 3
