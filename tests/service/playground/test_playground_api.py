"""POST /v1/playground over HTTP: the JSON answer, the PNG and SVG pictures with every
path labelled, 422s that name the field, 401 without a token, 503 without torch, and the
client's ``playground`` method against a real server."""

from __future__ import annotations

import io
import re
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from support import Backend, make_user, serve

from service.client import ApiError, Client
from service.main import create_app
from service.playground.plot import FIGURE_SIZE_IN
from service.playground.schemas import (
    EXAMPLE_REQUEST,
    MAX_RUNS,
    MAX_STEPS,
    PlaygroundRequest,
    check_request,
)
from service.plots.mpl import DPI

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SGD = {"name": "sgd", "lr": 0.001}


def body(function: str = "rosenbrock", **fields: Any) -> dict[str, Any]:
    fields.setdefault("runs", [{"optimizer": SGD}])
    return {"function": {"name": function}, **fields}


def svg_texts(svg: str) -> list[str]:
    unescape = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}
    texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)
    return [re.sub(r"&\w+;|&#\d+;", lambda m: unescape.get(m.group(), m.group()), t) for t in texts]


def test_the_answer_has_every_run_and_what_is_known_about_the_function(api: TestClient) -> None:
    r = api.post("/v1/playground", json=EXAMPLE_REQUEST)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    out = r.json()
    assert out["function"] == {"name": "rosenbrock"}
    assert out["title"] == "Rosenbrock" and "100·(y − x²)²" in out["formula"]
    assert out["start"] == [-1.2, 1.0] and out["steps"] == 500 and out["tolerance"] == 0.01
    assert out["minima"] == [{"x": 1.0, "y": 1.0, "value": 0.0, "kind": "global"}]
    assert out["saddle_points"] == [] and out["bound"] == 1e6
    assert out["window"] == {"x": [-2.0, 2.0], "y": [-1.0, 3.0]}
    assert [run["label"] for run in out["runs"]] == [
        run["label"] for run in EXAMPLE_REQUEST["runs"]
    ]
    for run in out["runs"]:
        path = run["trajectory"]
        assert run["status"] == "completed" and run["steps_taken"] == 500
        assert len(path["points"]) == len(path["values"]) == 501 and len(path["lr"]) == 500
        assert path["points"][0] == [-1.2, 1.0] and run["final_point"] == path["points"][-1]
        assert run["final_value"] == path["values"][-1]
    # Every default filled in, as a job's spec is.
    assert out["runs"][0]["optimizer"] == {
        "name": "sgd",
        "lr": 0.0019,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "dampening": 0.0,
        "nesterov": False,
    }
    assert out["runs"][0]["schedule"] == {"name": "constant", "warmup_epochs": 0}
    # The cosine schedule anneals over the 500 steps.
    lr = out["runs"][4]["trajectory"]["lr"]
    assert lr[0] == 0.1 and lr[-1] < 1e-5 and lr == sorted(lr, reverse=True)


def test_the_same_request_gives_the_same_bytes(api: TestClient) -> None:
    req = body("beale", steps=200, runs=[{"optimizer": {"name": "adam", "lr": 0.05}}])
    assert api.post("/v1/playground", json=req).content == (
        api.post("/v1/playground", json=req).content
    )


def test_defaults_start_at_the_functions_own_start(api: TestClient) -> None:
    r = api.post(
        "/v1/playground",
        json={
            "function": {"name": "himmelblau"},
            "runs": [{"optimizer": {"name": "adam", "lr": 0.1}}],
        },
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["start"] == [-0.3, -0.9] and out["steps"] == 500 and out["tolerance"] == 0.001
    assert len(out["minima"]) == 4 and len(out["saddle_points"]) == 4
    assert out["runs"][0]["label"] == "adam lr=0.1"
    assert out["runs"][0]["reached_minimum"] in range(4)


def test_a_turned_saddle_starts_where_its_default_start_turns_to(api: TestClient) -> None:
    sgd = [{"optimizer": {"name": "sgd", "lr": 0.01}}]
    turned = api.post(
        "/v1/playground", json={"function": {"name": "saddle", "angle": 90}, "runs": sgd}
    )
    assert turned.status_code == 200, turned.text
    out = turned.json()
    assert out["start"] == pytest.approx([-1e-3, 1.0], abs=1e-15)  # (1, 0.001) turned 90°
    assert out["title"] == "Saddle (θ = 90°)" and out["function"]["angle"] == 90
    plain = api.post("/v1/playground", json={"function": {"name": "saddle"}, "runs": sgd})
    assert plain.json()["start"] == [1.0, 0.001] and plain.json()["title"] == "Saddle"
    bad = api.post(
        "/v1/playground", json={"function": {"name": "saddle", "angle": 181}, "runs": sgd}
    )
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == (
        "function.angle"
    )


def test_png_draws_the_contour_at_its_size(api: TestClient) -> None:
    r = api.post("/v1/playground", params={"format": "png"}, json=EXAMPLE_REQUEST)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'inline; filename="playground.png"'
    assert r.content.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(r.content)) as image:
        image.load()
        assert image.size == (round(FIGURE_SIZE_IN[0] * DPI), round(FIGURE_SIZE_IN[1] * DPI))


@pytest.mark.parametrize("function", ["rosenbrock", "rastrigin", "saddle", "himmelblau"])
def test_svg_labels_every_path_and_marks_the_known_points(api: TestClient, function: str) -> None:
    runs = [
        {"label": "plain", "optimizer": {"name": "sgd", "lr": 0.001}},
        {"optimizer": {"name": "sgd", "lr": 0.001, "momentum": 0.9}},
        {"optimizer": {"name": "adam", "lr": 0.05}, "schedule": {"name": "cosine"}},
        {"label": "too fast", "optimizer": {"name": "sgd", "lr": 10.0}},
    ]
    r = api.post("/v1/playground?format=svg", json=body(function, steps=100, runs=runs))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    svg = r.text
    # One path per run (drawn last to first: the first run on top), and its values.
    assert re.findall(r'<g id="(series-\d+)"', svg) == [f"series-{i}" for i in (3, 2, 1, 0)]
    assert sorted(re.findall(r'<g id="(values-\d+)"', svg)) == [f"values-{i}" for i in range(4)]
    texts = svg_texts(svg)
    legend = [t for t in texts if t.startswith(("plain:", "sgd lr=", "adam lr=", "too fast:"))]
    assert [t.split(":")[0] for t in legend] == [
        "plain",
        "sgd lr=0.001 momentum=0.9",
        "adam lr=0.05 + cosine",
        "too fast",
    ]
    assert any(t.startswith("too fast: diverged at step") for t in texts)
    assert '<g id="start"' in svg and any(t.startswith("start (") for t in texts)
    assert ('<g id="minima"' in svg) == (function != "saddle")
    assert ('<g id="local-minima"' in svg) == (function == "rastrigin")
    assert ('<g id="saddle-points"' in svg) == (function in ("saddle", "himmelblau"))


def test_a_label_is_text_not_tex(api: TestClient) -> None:
    runs = [{"label": "$x^2$ & <b>", "optimizer": SGD}]
    r = api.post("/v1/playground?format=svg", json=body(steps=5, runs=runs))
    assert r.status_code == 200, r.text
    assert any(t.startswith("$x^2$ & <b>:") for t in svg_texts(r.text))


# -- bad input ------------------------------------------------------------------------

NAMES = ["rosenbrock", "beale", "himmelblau", "rastrigin", "saddle", "monkey_saddle", "quadratic"]


def run_with(**fields: Any) -> dict[str, Any]:
    return body(steps=100, runs=[{"optimizer": SGD, **fields}])


@pytest.mark.parametrize(
    ("request_body", "field", "allowed"),
    [
        ({"function": {"name": "booth"}, "runs": [{"optimizer": SGD}]}, "function.name", NAMES),
        ({"runs": [{"optimizer": SGD}]}, "function", None),
        (
            body("quadratic") | {"function": {"name": "quadratic", "condition_number": 0.5}},
            "function.condition_number",
            None,
        ),
        (body(steps=0), "steps", None),
        (body(steps=MAX_STEPS + 1), "steps", None),
        (body(steps=5000, runs=[{"optimizer": SGD}] * 5), "steps", None),
        (body(runs=[]), "runs", None),
        (body(runs=[{"optimizer": SGD}] * (MAX_RUNS + 1)), "runs", None),
        (body(start=[1.0]), "start.1", None),
        (body(start=[2e6, 0.0]), "start.0", None),
        (body(start=[0.0, True]), "start.1", None),
        (body(tolerance=0), "tolerance", None),
        (body(steps="500"), "steps", None),
        (body(stepz=5), "stepz", None),
        (
            body(runs=[{"optimizer": {"name": "adamx"}}]),
            "runs.0.optimizer.name",
            ["sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adamax"],
        ),
        (body(runs=[{"optimizer": {"name": "sgd", "lr": -1}}]), "runs.0.optimizer.lr", None),
        (body(runs=[{"optimizer": {"name": "adam", "lr": "auto"}}]), "runs.0.optimizer.lr", None),
        (body(runs=[{"optimizer": SGD, "label": "a\x00b"}]), "runs.0.label", None),
        (
            run_with(schedule={"name": "one_cycle", "max_lr": "auto"}),
            "runs.0.schedule.max_lr",
            None,
        ),
        (
            run_with(schedule={"name": "step", "warmup_epochs": 100}),
            "runs.0.schedule.warmup_epochs",
            None,
        ),
        (
            run_with(schedule={"name": "multistep", "milestones": [50, 100]}),
            "runs.0.schedule.milestones",
            None,
        ),
        (run_with(schedule={"name": "cosine", "t_max": 101}), "runs.0.schedule.t_max", None),
        (
            run_with(schedule={"name": "one_cycle", "cycle_momentum": True}),
            "runs.0.schedule.cycle_momentum",
            [False],
        ),
        (
            run_with(schedule={"name": "reduce_on_plateau", "monitor": "val_accuracy"}),
            "runs.0.schedule.monitor",
            ["val_loss", "train_loss"],
        ),
        (run_with(schedule={"name": "linear"}), "runs.0.schedule.name", None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_is_a_422_naming_the_field(
    api: TestClient, request_body: dict[str, Any], field: str, allowed: list[Any] | None
) -> None:
    r = api.post("/v1/playground", json=request_body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_spec"
    fields = {f["field"]: f for f in err["fields"]}
    assert field in fields, err
    assert err["message"].startswith(f"{field}: ") or f"; {field}: " in err["message"]
    if allowed is not None:
        assert fields[field]["allowed"] == allowed


def test_the_caps_say_what_they_are(api: TestClient) -> None:
    r = api.post("/v1/playground", json=body(steps=5000, runs=[{"optimizer": SGD}] * 5))
    assert r.json()["error"]["message"] == (
        "steps: 5,000 steps × 5 runs = 25,000 steps, above this server's cap of 20,000 per "
        "request; use fewer steps or runs"
    )


def test_an_unknown_format_is_a_422(api: TestClient) -> None:
    r = api.post("/v1/playground", params={"format": "gif"}, json=body())
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert err["fields"] == [
        {
            "field": "format",
            "message": "Input should be 'json', 'png' or 'svg'",
            "allowed": ["json", "png", "svg"],
        }
    ]


def test_a_non_finite_number_is_refused(api: TestClient) -> None:
    raw = (
        '{"function": {"name": "saddle"}, "start": [1e400, 0], '
        '"runs": [{"optimizer": {"name": "sgd"}}]}'
    )
    r = api.post("/v1/playground", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["fields"][0]["field"] == "start.0"


# -- who may ask, and what if torch is missing ----------------------------------------


@pytest.mark.parametrize("token", [None, "dsc_not-a-token"])
def test_without_a_valid_token_the_answer_is_401(api: TestClient, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}" if token else ""}
    r = api.post("/v1/playground", json=EXAMPLE_REQUEST, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_without_torch_the_answer_is_a_503_saying_so(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("torch", "workers.engine.optim", "workers.engine.schedules"):
        monkeypatch.setitem(sys.modules, name, None)
    r = api.post("/v1/playground", json=body())
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "playground_unavailable"
    assert "PyTorch" in err["message"] and "install torch" in err["message"]
    # Bad input is still told apart from a missing engine.
    assert api.post("/v1/playground", json=body(steps=0)).status_code == 422


def test_the_openapi_examples_are_valid_requests(api: TestClient) -> None:
    op = api.get("/openapi.json").json()["paths"]["/v1/playground"]["post"]
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) >= {"rosenbrock", "saddle", "minimal"}
    for example in examples.values():
        assert check_request(PlaygroundRequest.model_validate(example["value"])) == []
    assert set(op["responses"]["200"]["content"]) == {
        "application/json",
        "image/png",
        "image/svg+xml",
    }
    assert {"401", "422", "503"} <= set(op["responses"])


# -- the client, against a real server --------------------------------------------------


@pytest.mark.server
def test_the_client_gets_json_and_images_from_a_real_server(sqlite_backend: Backend) -> None:
    token = make_user(sqlite_backend, "player")
    with serve(create_app(sqlite_backend.settings())) as url, Client(url, token) as descent:
        out = descent.playground(body("quadratic", steps=50))
        assert out.runs[0].steps_taken == 50
        assert descent.playground(body(steps=5), fmt="png").startswith(PNG_MAGIC)
        assert descent.playground(body(steps=5), fmt="svg").lstrip().startswith(b"<?xml")
        with pytest.raises(ApiError) as caught:
            descent.playground(body(steps=0))
        assert caught.value.status == 422 and caught.value.fields[0]["field"] == "steps"
    with serve(create_app(sqlite_backend.settings())) as url, Client(url) as anonymous:
        with pytest.raises(ApiError) as caught:
            anonymous.playground(body())
        assert caught.value.status == 401
