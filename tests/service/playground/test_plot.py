"""The playground's picture: log-scaled contours where a function spans decades, and a
picture for every function, however short or wild its runs."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from service.playground.functions import FUNCTION_NAMES, make_surface
from service.playground.plot import render_playground, symlog_ticks, uses_log_levels
from service.playground.run import run_playground
from service.playground.schemas import PlaygroundRequest


def grid_values(name: str, **params: float) -> Any:
    s = make_surface(name, **params)
    w = s.window
    x, y = np.meshgrid(np.linspace(w.x_min, w.x_max, 100), np.linspace(w.y_min, w.y_max, 100))
    return s.expression(x, y, np)


@pytest.mark.parametrize(
    ("name", "log"),
    [
        ("rosenbrock", True),
        ("beale", True),
        ("himmelblau", False),
        ("rastrigin", False),
        ("saddle", False),
        ("monkey_saddle", False),
        ("quadratic", False),
    ],
)
def test_contours_are_log_scaled_where_the_function_spans_decades(name: str, log: bool) -> None:
    assert uses_log_levels(grid_values(name)) is log


def test_a_narrow_valley_gets_log_levels() -> None:
    assert uses_log_levels(grid_values("quadratic", condition_number=1e4))


def test_symlog_ticks_are_few_and_symmetric_about_zero() -> None:
    ticks = symlog_ticks(-1e12, 2.0)
    assert 0.0 in ticks and ticks == sorted(ticks)
    assert len([t for t in ticks if t < 0]) <= 6 and -1e12 in ticks and 10.0 in ticks


@pytest.mark.parametrize("name", FUNCTION_NAMES)
@pytest.mark.parametrize("steps", [1, 40])
def test_every_function_draws_short_and_diverging_runs(name: str, steps: int) -> None:
    req = PlaygroundRequest.model_validate(
        {
            "function": {"name": name},
            "steps": steps,
            "runs": [
                {"optimizer": {"name": "sgd", "lr": 1e-3}},
                {"optimizer": {"name": "sgd", "lr": 1000.0}},  # diverges within 3 steps
                {"optimizer": {"name": "adam", "lr": 0.1}, "schedule": {"name": "one_cycle"}},
            ],
        }
    )
    result = run_playground(req)
    wild = result.runs[1]
    assert wild.status == ("diverged" if steps > 1 else "completed")
    assert wild.diverged_step is None or wild.diverged_step <= 3
    with Image.open(io.BytesIO(render_playground(result, "png"))) as image:
        image.load()
