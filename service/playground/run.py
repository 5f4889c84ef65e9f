"""The playground's optimization loop, built from the training engine's own parts.

Each run builds its optimizer with ``workers.engine.optim.build_optimizer`` and its
schedule with ``workers.engine.schedules.build_schedule`` over a job of ``steps``
epochs of one batch each, then drives them as ``workers/engine/loop.py`` does: before
every step it asks the schedule for this step's rate (and cycled momentum) and applies
them with ``set_rate``, and after every step (an epoch here) it tells reduce_on_plateau
the monitored value. So a playground run is what a job with that optimizer and schedule
would do on this surface.

The parameter is a 2-element float64 tensor; its gradient is the surface's exact one,
written by hand (``functions.py``: three to four times faster than autograd, and a test
checks it against autograd). torch and the engine are imported on the first request,
never when the API starts; without torch a request gets a 503.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal

from service.errors import ApiError
from service.playground.functions import BOUND, Surface
from service.playground.schemas import (
    PlaygroundRequest,
    PlaygroundResult,
    PlaygroundRun,
    surface_of,
)
from service.plots.labels import format_value
from service.spec.common import SpecModel

__all__ = ["EngineUnavailable", "Gradient", "describe", "engine", "labels", "run_playground"]

Gradient = Literal["analytic", "autograd"]


class EngineUnavailable(ApiError):
    """torch (or the worker's engine) is not installed where the API runs."""

    status, code = 503, "playground_unavailable"


def engine() -> SimpleNamespace:
    """torch and the engine's builders, imported now (the first call takes a few
    seconds: torch, then ``workers.engine``)."""
    try:
        import torch

        from workers.engine.optim import build_optimizer
        from workers.engine.schedules import build_schedule, set_rate
    except ImportError as exc:
        raise EngineUnavailable(
            "the optimizer playground runs the training engine's optimizers, which need "
            f"PyTorch, and this API's environment cannot import it ({exc}); install torch "
            "where the API runs (e.g. `pip install -e '.[worker]'`)"
        ) from exc
    return SimpleNamespace(
        torch=torch,
        build_optimizer=build_optimizer,
        build_schedule=build_schedule,
        set_rate=set_rate,
    )


def _changed(spec: SpecModel, skip: tuple[str, ...]) -> list[str]:
    """``key=value`` for each field of ``spec`` (an optimizer or a schedule, both named by
    ``name``) that is not at its default."""
    name = spec.name  # type: ignore[attr-defined]
    defaults = type(spec).model_validate({"name": name}).model_dump(mode="json")
    return [
        f"{key}={format_value(value)}"
        for key, value in spec.model_dump(mode="json").items()
        if key not in skip and value != defaults[key]
    ]


def describe(run: PlaygroundRun) -> str:
    """A run in a few words: ``sgd lr=0.001 momentum=0.9``, ``adam lr=0.1 + cosine``."""
    opt, sched = run.optimizer, run.schedule
    words = [opt.name, f"lr={format_value(opt.lr)}", *_changed(opt, ("name", "lr"))]
    if sched.name != "constant" or sched.warmup_epochs:
        words += ["+", sched.name, *_changed(sched, ("name",))]
    return " ".join(words)


def labels(runs: list[PlaygroundRun]) -> list[str]:
    """Each run's label: its own, else ``describe``'s, with ``(run i)`` added to runs that
    would otherwise share one."""
    made = [r.label or describe(r) for r in runs]
    counts = Counter(made)
    return [
        label if r.label or counts[label] == 1 else f"{label} (run {i + 1})"
        for i, (label, r) in enumerate(zip(made, runs, strict=True))
    ]


@dataclass
class _Path:
    xs: list[float]
    ys: list[float]
    values: list[float]
    lr: list[float]
    momentum: list[float] | None
    diverged_step: int | None = None
    reason: str | None = None


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _walk(
    surface: Surface,
    run: PlaygroundRun,
    start: tuple[float, float],
    steps: int,
    eng: SimpleNamespace,
    gradient: Gradient,
) -> _Path:
    torch = eng.torch
    point = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = eng.build_optimizer(run.optimizer, [point])
    schedule = eng.build_schedule(
        run.schedule,
        base_lr=run.optimizer.lr,
        epochs=steps,
        steps_per_epoch=1,
        has_momentum=run.optimizer.has_momentum,
    )
    x, y = start
    value = surface.value(x, y)
    path = _Path([x], [y], [value], [], [] if schedule.cycles_momentum else None)
    for t in range(steps):
        step = t + 1  # steps are counted from 1, like epochs
        lr, momentum = schedule.lr(t, 0), schedule.momentum(t, 0)
        eng.set_rate(optimizer, lr, momentum)
        if gradient == "autograd":
            point.grad = None
            surface.expression(point[0], point[1], torch).backward()
            gx, gy = point.grad.tolist()
        else:
            gx, gy = surface.gradient(x, y)
            point.grad = torch.tensor((gx, gy), dtype=torch.float64)
        if not _finite(gx, gy):
            path.diverged_step = step
            path.reason = (
                f"step {step} (lr {lr:g}): the gradient at ({x:g}, {y:g}) is ({gx:g}, {gy:g})"
            )
            return path
        optimizer.step()
        nx, ny = point.tolist()
        new_value = surface.value(nx, ny) if _finite(nx, ny) else math.nan
        if not _finite(nx, ny, new_value) or abs(nx) > BOUND or abs(ny) > BOUND:
            if not _finite(nx, ny):
                what = "a non-finite point"
            elif not _finite(new_value):
                what = f"a point where f is {new_value:g}"
            else:
                what = f"a point beyond |x|, |y| ≤ {BOUND:g}"
            path.diverged_step = step
            path.reason = (
                f"step {step} (lr {lr:g}) went from ({x:g}, {y:g}) to {what}: ({nx:g}, {ny:g})"
            )
            if not surface.minima:
                path.reason += "; this function is unbounded below: off the saddle, f → −∞"
            return path
        path.xs.append(nx)
        path.ys.append(ny)
        path.values.append(new_value)
        path.lr.append(lr)
        if path.momentum is not None:
            path.momentum.append(momentum)
        if schedule.monitor is not None:  # reduce_on_plateau: the step is an epoch
            schedule.on_epoch_end(new_value if schedule.monitor == "val_loss" else value)
        x, y, value = nx, ny, new_value
    return path


def _reached(surface: Surface, path: _Path, tolerance: float) -> tuple[int | None, int | None]:
    """The first step whose point lies within ``tolerance`` of a listed minimum, and the
    index of the nearest such minimum."""
    order = sorted(range(len(surface.minima)), key=lambda i: surface.minima[i].x)
    mx = [surface.minima[i].x for i in order]
    for step, (x, y) in enumerate(zip(path.xs, path.ys, strict=True)):
        # Only minima with |x − m.x| ≤ tolerance can be near (Rastrigin lists 121).
        lo, hi = bisect_left(mx, x - tolerance), bisect_right(mx, x + tolerance)
        near = [
            (math.hypot(x - mx[k], y - surface.minima[order[k]].y), order[k]) for k in range(lo, hi)
        ]
        hit = min(near, default=None)
        if hit is not None and hit[0] <= tolerance:
            return step, hit[1]
    return None, None


def run_playground(req: PlaygroundRequest, *, gradient: Gradient = "analytic") -> PlaygroundResult:
    """Every run of ``req`` from its start, with what is known about its function.

    ``req`` must have passed ``check_request``. ``gradient="autograd"`` takes gradients
    by torch autograd of the surface's expression instead (for tests and benchmarks).
    """
    eng = engine()
    surface = surface_of(req.function)
    start = req.start or surface.default_start()
    window = surface.window.including(*start)
    runs = []
    for run, label in zip(req.runs, labels(req.runs), strict=True):
        path = _walk(surface, run, start, req.steps, eng, gradient)
        reached, which = _reached(surface, path, req.tolerance)
        runs.append(
            {
                "label": label,
                "optimizer": run.optimizer,
                "schedule": run.schedule,
                "status": "completed" if path.diverged_step is None else "diverged",
                "steps_taken": len(path.lr),
                "diverged_step": path.diverged_step,
                "reason": path.reason,
                "reached_step": reached,
                "reached_minimum": which,
                "final_point": (path.xs[-1], path.ys[-1]),
                "final_value": path.values[-1],
                "trajectory": {
                    "points": list(zip(path.xs, path.ys, strict=True)),
                    "values": path.values,
                    "lr": path.lr,
                    "momentum": path.momentum,
                },
            }
        )
    return PlaygroundResult.model_validate(
        {
            "function": req.function,
            "title": surface.heading(),
            "formula": surface.formula,
            "start": start,
            "steps": req.steps,
            "tolerance": req.tolerance,
            "bound": BOUND,
            "minima": [vars(p) for p in surface.minima],
            "saddle_points": [vars(p) for p in surface.saddles],
            "window": {
                "x": (window.x_min, window.x_max),
                "y": (window.y_min, window.y_max),
            },
            "runs": runs,
        }
    )
