"""Figures of docs/playground.md and the README's playground lines: every request of
examples/playground/ run in-process by the code the API runs (``run_playground``), with
the saddle counts examples/playground/figures.py prints.

The runs are float64 arithmetic on a 2-element tensor through ``torch.optim``: the same
on every platform we tried, to the last step count. A kernel that rounds a last bit
differently can still move a threshold crossing by a step or two, so step counts are
compared to 1% elsewhere (as tests/service/playground/test_reproductions.py does).
"""

from __future__ import annotations

import json
import math
from typing import Any

from scripts.docfigures.core import ROOT, Near, Platform, Rule, Source, Value
from scripts.docfigures.examples import load

EXAMPLES = ROOT / "examples" / "playground"


def _run(stem: str) -> dict[str, Any]:
    from service.playground.run import run_playground
    from service.playground.schemas import PlaygroundRequest

    request = PlaygroundRequest.model_validate(json.loads((EXAMPLES / f"{stem}.json").read_text()))
    return run_playground(request).model_dump(mode="json")


def _kicks(run: dict[str, Any], minimum: tuple[float, float], tolerance: float) -> list[int]:
    """Steps at which ``run`` left the tolerance around ``minimum`` after being inside."""
    inside = [
        math.hypot(x - minimum[0], y - minimum[1]) < tolerance
        for x, y in run["trajectory"]["points"]
    ]
    return [k for k in range(1, len(inside)) if inside[k - 1] and not inside[k]]


def playground() -> dict[str, Value]:
    figures_py = load("examples/playground/figures.py")
    figures: dict[str, Value] = {}
    for stem in (
        "rosenbrock-ravine",
        "rosenbrock-gd-rates",
        "rosenbrock-adam-rates",
        "saddle-escape",
        "saddle-rotated",
        "himmelblau-basins",
        "quadratic-valley",
    ):
        result = _run(stem)
        for i, run in enumerate(result["runs"]):
            key = f"{stem}.{i}"
            figures |= {
                f"{key}.label": run["label"],
                f"{key}.status": run["status"],
                f"{key}.reached": run["reached_step"],
                f"{key}.diverged": run["diverged_step"],
                f"{key}.final_value": run["final_value"],
            }
            if run["reached_minimum"] is not None:
                point = result["minima"][run["reached_minimum"]]
                figures[f"{key}.minimum_x"] = point["x"]
                figures[f"{key}.minimum_y"] = point["y"]
            if stem.startswith("saddle"):
                near, left = figures_py.saddle_figures(result, run)
                steps = [
                    k
                    for k, (x, y) in enumerate(run["trajectory"]["points"])
                    if math.hypot(x, y) < figures_py.NEAR
                ]
                figures |= {
                    f"{key}.near": near,
                    f"{key}.left": left,
                    f"{key}.near_first": steps[0] if steps else None,
                    f"{key}.near_last": steps[-1] if steps else None,
                    f"{key}.closest": min(math.hypot(x, y) for x, y in run["trajectory"]["points"]),
                }
        if stem == "rosenbrock-ravine":
            kicks = _kicks(result["runs"][2], (1.0, 1.0), result["tolerance"])
            gaps = [b - a for a, b in zip(kicks, kicks[1:], strict=False)]
            figures |= {"adam_kicks.count": len(kicks), "adam_kicks.min_gap": min(gaps)}
            figures["adam_kicks.max_gap"] = max(gaps)
    return figures | _analysis()


def _analysis() -> dict[str, Value]:
    """What the prose works out by hand, worked out here."""
    from service.playground.functions import make_surface

    # Rosenbrock's Hessian at (1, 1) is [[802, −400], [−400, 200]].
    a, b, d = 802.0, -400.0, 200.0
    mean, gap = (a + d) / 2, math.sqrt(((a - d) / 2) ** 2 + b * b)
    high, low = mean + gap, mean - gap
    lr, mu = 0.01, 0.9
    # Momentum on −y²: y_t grows like the larger root of λ² − (1 + μ + 2η)λ + μ = 0.
    p = 1 + mu + 2 * lr
    growth = (p + math.sqrt(p * p - 4 * mu)) / 2
    figures: dict[str, Value] = {
        "rosenbrock.hessian_high": high,
        "rosenbrock.hessian_low": low,
        "rosenbrock.stable_lr": 2 / high,
        "saddle.gd_escape_steps": math.log(0.1 / 1e-6) / (2 * lr),
        "saddle.momentum_growth": growth,
    }
    for name in ("beale", "himmelblau", "rastrigin"):
        surface = make_surface(name)
        points = [*surface.saddles, *surface.minima[:5]]
        kinds = {"saddle": "saddle", "global": "minimum", "local": "local"}
        counters: dict[str, int] = {}
        for point in points:
            kind = kinds[point.kind]
            n = counters[kind] = counters.get(kind, -1) + 1
            figures |= {
                f"{name}.{kind}{n}.x": point.x,
                f"{name}.{kind}{n}.y": point.y,
                f"{name}.{kind}{n}.value": point.value,
            }
    return figures


STEPS = Near(rel=0.01, abs=1, why="a step count: 1% (at least one step), as the tests allow")
SOURCES = [
    Source(
        name="playground",
        about="the requests of examples/playground/, run in-process as the API runs them",
        command=".venv/bin/python scripts/docs_check.py regenerate playground (over HTTP, "
        "against `descent up`: .venv/bin/python examples/playground/figures.py)",
        cheap=True,
        computes=playground,
        rules=(
            ("*.label", Rule("exact")),
            ("*.status", Rule("exact")),
            ("*.minimum_?", Rule("exact")),
            ("rosenbrock.*", Rule("exact")),
            ("saddle.*", Rule("exact")),
            ("beale.*", Rule("exact")),
            ("himmelblau.*", Rule("exact")),
            ("rastrigin.*", Rule("exact")),
            ("*.final_value", Platform(why="f where a run ends, to the last bits")),
            ("*.closest", Near(rel=0.05, why="the closest approach to the saddle point")),
            ("*", STEPS),
        ),
    ),
]
