"""The results docs/playground.md reproduces, from the requests in examples/playground/
posted as they are: every example is a valid request, and what the documentation says
about each holds. The runs are deterministic, so these are honest tests; the documented
step counts are checked to 1 % (another CPU may round a last bit differently)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import ROOT

EXAMPLES = sorted((ROOT / "examples" / "playground").glob("*.json"))
Result = dict[str, Any]

#: The steps at which each run came within tolerance of the minimum, as documented
#: (None: it never did).
DOCUMENTED: dict[str, dict[str, int | None]] = {
    "rosenbrock-ravine": {
        "gradient descent, lr 0.0019": 5934,
        "momentum 0.9, lr 0.0019": 591,
        "adam, lr 0.1": 972,
    },
    "rosenbrock-gd-rates": {"sgd lr=0.001": None, "sgd lr=0.0019": 5934, "sgd lr=0.0025": None},
    "rosenbrock-adam-rates": {"adam lr=0.001": None, "adam lr=0.01": 3790, "adam lr=0.1": 972},
    "himmelblau-basins": {
        "sgd lr=0.01": 23,
        "sgd lr=0.01 momentum=0.9": 121,
        "adam lr=0.1": 154,
        "rmsprop lr=0.01": 356,
        "adagrad lr=0.5": 30,
    },
}
#: Saddle example: (steps within 0.1 of the saddle point, first step with f < −1).
SADDLE = {
    "sgd lr=0.01": (468, 698),
    "sgd lr=0.01 momentum=0.9": (87, 140),
    "adam lr=0.01": (0, 81),
    "nadam lr=0.01": (0, 73),
    "rmsprop lr=0.01": (0, 19),
}


#: The same, with the saddle turned 45° and the start turned with it.
ROTATED = {
    "sgd lr=0.01": (468, 698),
    "sgd lr=0.01 momentum=0.9": (87, 140),
    "adam lr=0.01": (321, 466),
    "nadam lr=0.01": (290, 447),
    "rmsprop lr=0.01": (120, 176),
}


def runs(result: Result) -> dict[str, Result]:
    return {run["label"]: run for run in result["runs"]}


def near_saddle(run: Result, radius: float = 0.1) -> int:
    return sum(1 for x, y in run["trajectory"]["points"] if math.hypot(x, y) < radius)


def left_saddle(run: Result, below: float = -1.0) -> int | None:
    return next((k for k, v in enumerate(run["trajectory"]["values"]) if v < below), None)


def close_to(got: int | None, documented: int | None) -> bool:
    if got is None or documented is None:
        return got is documented
    return abs(got - documented) <= max(1, documented // 100)


def rosenbrock_ravine(result: Result) -> None:
    """(a) Momentum and Adam cross the ravine in far fewer steps than gradient descent,
    which runs at the largest rate stable at the minimum (2/λ_max ≈ 0.0020)."""
    gd, momentum, adam = runs(result).values()
    assert all(r["status"] == "completed" for r in (gd, momentum, adam))
    assert gd["reached_step"] is not None
    assert momentum["reached_step"] * 5 < gd["reached_step"]
    assert adam["reached_step"] * 3 < gd["reached_step"]
    assert gd["optimizer"]["lr"] < 2 / 1001.6 < 0.0025  # Hessian at (1, 1): λ_max ≈ 1001.6


def rosenbrock_gd_rates(result: Result) -> None:
    """No rate does better for gradient descent: slower never gets there in 6000 steps,
    faster (above 2/λ_max) bounces across the ravine's floor for ever."""
    slow, best, fast = runs(result).values()
    assert slow["reached_step"] is None and fast["reached_step"] is None
    assert best["reached_step"] is not None
    assert fast["status"] == "completed" and fast["final_value"] > 100 * best["final_value"]


def rosenbrock_adam_rates(result: Result) -> None:
    """Adam's rate matters: at its default 0.001 it does not cross in 6000 steps."""
    default, ten, hundred = runs(result).values()
    assert default["reached_step"] is None
    assert hundred["reached_step"] < ten["reached_step"] < 5934


def saddle_escape(result: Result) -> None:
    """(b) Started a hair off the saddle's stable manifold (y = 1e-6), gradient descent
    slides down to the saddle point and sits there for hundreds of steps; momentum leaves
    after tens, and the Adam family, whose steps do not shrink with the gradient, never
    comes near it."""
    assert result["saddle_points"] == [{"x": 0.0, "y": 0.0, "value": 0.0, "kind": "saddle"}]
    by_label = runs(result)
    gd = by_label.pop("sgd lr=0.01")
    assert near_saddle(gd) > 400 and left_saddle(gd) > 600
    assert min(math.hypot(x, y) for x, y in gd["trajectory"]["points"]) < 0.01
    for label, run in by_label.items():
        assert near_saddle(run) * 4 < near_saddle(gd), label
        assert left_saddle(run) * 4 < left_saddle(gd), label
    for name in ("adam lr=0.01", "nadam lr=0.01", "rmsprop lr=0.01"):
        assert near_saddle(by_label[name]) == 0
    # Momentum slides off the unbounded surface fast enough to leave |y| <= 1e6.
    assert by_label["sgd lr=0.01 momentum=0.9"]["status"] == "diverged"
    for label, (near, left) in SADDLE.items():
        run = gd if label == "sgd lr=0.01" else by_label[label]
        assert close_to(near_saddle(run), near) and close_to(left_saddle(run), left), label


def saddle_rotated(result: Result) -> None:
    """(b), turned 45°: gradient descent and momentum do as on x² − y², but Adam, NAdam
    and RMSprop, whose escape came from the escape direction being a coordinate axis, now
    come near the saddle point and linger there (Adam for hundreds of steps)."""
    by_label = runs(result)
    assert near_saddle(by_label["sgd lr=0.01"]) > 400
    assert near_saddle(by_label["sgd lr=0.01 momentum=0.9"]) < 100
    for name in ("adam lr=0.01", "nadam lr=0.01", "rmsprop lr=0.01"):
        assert near_saddle(by_label[name]) > 100, name
    assert near_saddle(by_label["adam lr=0.01"]) > 300
    for label, (near, left) in ROTATED.items():
        run = by_label[label]
        assert close_to(near_saddle(run), near) and close_to(left_saddle(run), left), label


def himmelblau_basins(result: Result) -> None:
    """From beside the local maximum, the runs end in two different minima."""
    assert {r["reached_minimum"] for r in result["runs"]} == {1, 2}


CLAIMS: dict[str, Callable[[Result], None]] = {
    "rosenbrock-ravine": rosenbrock_ravine,
    "rosenbrock-gd-rates": rosenbrock_gd_rates,
    "rosenbrock-adam-rates": rosenbrock_adam_rates,
    "saddle-escape": saddle_escape,
    "saddle-rotated": saddle_rotated,
    "himmelblau-basins": himmelblau_basins,
}


def test_there_are_examples() -> None:
    assert {p.stem for p in EXAMPLES} >= set(CLAIMS) | set(DOCUMENTED)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_shows_what_the_docs_say(api: TestClient, path: Path) -> None:
    r = api.post("/v1/playground", json=json.loads(path.read_text()))
    assert r.status_code == 200, r.text
    result = r.json()
    if path.stem in CLAIMS:
        CLAIMS[path.stem](result)
    for label, documented in DOCUMENTED.get(path.stem, {}).items():
        got = runs(result)[label]["reached_step"]
        assert close_to(got, documented), (label, got, documented)
