"""The playground's loop: the engine's optimizers and schedules, step by step as a job
runs them; divergence, tolerance and the reached step; and no torch, no playground."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest
import torch

from service.playground.functions import BOUND, make_surface
from service.playground.run import EngineUnavailable, engine, labels, run_playground
from service.playground.schemas import PlaygroundRequest, RunResult, check_request


def request(function: str = "rosenbrock", **fields: Any) -> PlaygroundRequest:
    fields.setdefault("runs", [{"optimizer": {"name": "sgd", "lr": 0.001}}])
    req = PlaygroundRequest.model_validate({"function": {"name": function}, **fields})
    assert check_request(req) == []
    return req


def one(function: str = "rosenbrock", **fields: Any) -> RunResult:
    return run_playground(request(function, **fields)).runs[0]


def test_runs_are_deterministic() -> None:
    runs = [
        {"optimizer": {"name": name, "lr": 0.01}, "schedule": {"name": "cosine"}}
        for name in ("sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adamax")
    ]
    req = request("beale", steps=300, runs=runs)
    first, second = run_playground(req), run_playground(req)
    assert first.model_dump_json() == second.model_dump_json()


def test_a_run_is_the_torch_optimizer_stepped_by_hand() -> None:
    """The same steps as a plain torch loop with autograd, to the last bits or so."""
    spec = {"name": "sgd", "lr": 0.0015, "momentum": 0.9, "nesterov": True}
    run = one(steps=200, runs=[{"optimizer": spec}])
    surface = make_surface("rosenbrock")
    p = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.0015, momentum=0.9, nesterov=True)
    expected = [tuple(p.tolist())]
    for _ in range(200):
        opt.zero_grad()
        surface.expression(p[0], p[1], torch).backward()
        opt.step()
        expected.append(tuple(p.tolist()))
    assert len(run.trajectory.points) == 201
    for ours, theirs in zip(run.trajectory.points, expected, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)


def test_autograd_gives_the_same_paths() -> None:
    runs = [
        {"optimizer": {"name": "adam", "lr": 0.05}},
        {"optimizer": {"name": "rmsprop", "lr": 0.01, "centered": True}},
    ]
    req = request("himmelblau", steps=300, runs=runs)
    exact, auto = run_playground(req), run_playground(req, gradient="autograd")
    for a, b in zip(exact.runs, auto.runs, strict=True):
        for p, q in zip(a.trajectory.points, b.trajectory.points, strict=True):
            assert p == pytest.approx(q, rel=1e-9, abs=1e-9)


# -- schedules: one step is one epoch -------------------------------------------------

LR0 = 0.001
STEPS = 40


def sgdr(t: int, t_0: int, t_mult: int) -> float:
    """Cosine with warm restarts: cycles of t_0, t_0·t_mult, … steps."""
    length = t_0
    while t >= length:
        t, length = t - length, length * t_mult
    return LR0 * (1 + math.cos(math.pi * t / length)) / 2


def lrs(schedule: dict[str, Any], optimizer: dict[str, Any] | None = None) -> RunResult:
    optimizer = optimizer or {"name": "sgd", "lr": LR0}
    return one(steps=STEPS, runs=[{"optimizer": optimizer, "schedule": schedule}])


@pytest.mark.parametrize(
    ("schedule", "rule"),
    [
        ({"name": "constant"}, lambda t: LR0),
        ({"name": "step", "step_size": 7, "gamma": 0.5}, lambda t: LR0 * 0.5 ** (t // 7)),
        (
            {"name": "multistep", "milestones": [5, 20], "gamma": 0.1},
            lambda t: LR0 * 0.1 ** ((t >= 5) + (t >= 20)),
        ),
        ({"name": "exponential", "k": 0.1}, lambda t: LR0 * math.exp(-0.1 * t)),
        ({"name": "time_based", "k": 0.5}, lambda t: LR0 / (1 + 0.5 * t)),
        ({"name": "cosine"}, lambda t: LR0 * (1 + math.cos(math.pi * t / STEPS)) / 2),
        ({"name": "cosine", "t_0": 10, "t_mult": 2}, lambda t: sgdr(t, 10, 2)),
        (
            {"name": "step", "step_size": 10, "gamma": 0.5, "warmup_epochs": 4},
            lambda t: LR0 * (t + 1) / 4 if t < 4 else LR0 * 0.5 ** ((t - 4) // 10),
        ),
    ],
    ids=["constant", "step", "multistep", "exponential", "time_based", "cosine", "sgdr", "warmup"],
)
def test_epoch_schedules_change_the_rate_every_step(schedule: dict[str, Any], rule: Any) -> None:
    run = lrs(schedule)
    assert run.status == "completed"
    assert run.trajectory.lr == pytest.approx([rule(t) for t in range(STEPS)], rel=1e-12)
    assert run.trajectory.momentum is None


def test_one_cycle_matches_torch_and_cycles_beta1() -> None:
    run = lrs({"name": "one_cycle", "max_lr": 0.1}, {"name": "adam", "lr": 0.01})
    opt = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=0.01)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=STEPS)
    want_lr, want_beta1 = [], []
    for _ in range(STEPS):
        want_lr.append(opt.param_groups[0]["lr"])
        want_beta1.append(opt.param_groups[0]["betas"][0])
        opt.step()
        ref.step()
    assert run.trajectory.lr == pytest.approx(want_lr, rel=1e-9)
    assert run.trajectory.momentum == pytest.approx(want_beta1, rel=1e-9)
    assert min(run.trajectory.momentum) == pytest.approx(0.85)


@pytest.mark.parametrize("monitor", ["val_loss", "train_loss"])
def test_reduce_on_plateau_watches_the_function_value(monitor: str) -> None:
    """Rastrigin's local minimum near the start is a plateau within a few steps; torch's
    ReduceLROnPlateau, told the same values, cuts the rate at the same steps."""
    schedule = {"name": "reduce_on_plateau", "monitor": monitor, "patience": 3, "factor": 0.5}
    run = one(
        "rastrigin",
        steps=60,
        runs=[{"optimizer": {"name": "sgd", "lr": 0.002}, "schedule": schedule}],
    )
    opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.002)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=3, factor=0.5)
    values = run.trajectory.values
    want = []
    for t in range(60):
        want.append(opt.param_groups[0]["lr"])
        # val_loss: the value where the step arrived; train_loss: where it started.
        ref.step(values[t + 1] if monitor == "val_loss" else values[t])
    assert run.trajectory.lr == pytest.approx(want, rel=1e-12)
    assert len(set(run.trajectory.lr)) >= 3  # it did reduce, more than once


# -- divergence -----------------------------------------------------------------------


def test_a_rate_too_high_diverges_and_stops_there() -> None:
    run = one(steps=500, runs=[{"optimizer": {"name": "sgd", "lr": 0.01}}])
    assert run.status == "diverged"
    k = run.diverged_step
    assert k is not None and 1 <= k < 500
    assert run.steps_taken == k - 1
    assert len(run.trajectory.points) == len(run.trajectory.values) == k
    assert len(run.trajectory.lr) == k - 1
    assert all(math.isfinite(v) for p in run.trajectory.points for v in p)
    assert all(abs(v) <= BOUND for p in run.trajectory.points for v in p)
    assert run.final_point == run.trajectory.points[-1]
    assert run.reason is not None and f"step {k} (lr 0.01)" in run.reason
    assert run.reached_step is None


def test_sliding_off_an_unbounded_surface_stops_at_the_bound() -> None:
    run = one(
        "saddle",
        start=[1.0, 1e-6],
        steps=1000,
        runs=[{"optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}}],
    )
    assert run.status == "diverged" and run.diverged_step is not None
    assert run.reason is not None and "beyond |x|, |y| ≤ 1e+06" in run.reason
    assert "unbounded below" in run.reason
    assert abs(run.final_point[1]) <= BOUND


def test_a_completed_run_takes_every_step() -> None:
    run = one(steps=50)
    assert (run.status, run.steps_taken, run.diverged_step, run.reason) == (
        "completed",
        50,
        None,
        None,
    )
    assert len(run.trajectory.points) == 51 and run.trajectory.points[0] == (-1.2, 1.0)


# -- tolerance ------------------------------------------------------------------------


def first_within(run: RunResult, minima: list[tuple[float, float]], tol: float) -> int | None:
    for k, (x, y) in enumerate(run.trajectory.points):
        if any(math.hypot(x - a, y - b) <= tol for a, b in minima):
            return k
    return None


@pytest.mark.parametrize("tolerance", [1e-1, 1e-2, 1e-4])
def test_reached_step_is_the_first_point_within_tolerance(tolerance: float) -> None:
    runs = [
        {"optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.5}},
        {"optimizer": {"name": "adam", "lr": 0.05}},
        {"optimizer": {"name": "sgd", "lr": 0.001}},
    ]
    result = run_playground(request("himmelblau", steps=400, tolerance=tolerance, runs=runs))
    minima = [(m.x, m.y) for m in result.minima]
    for run in result.runs:
        assert run.reached_step == first_within(run, minima, tolerance)
        if run.reached_step is not None:
            m = result.minima[run.reached_minimum]
            x, y = run.trajectory.points[run.reached_step]
            assert math.hypot(x - m.x, y - m.y) <= tolerance
    assert result.runs[0].reached_step is not None


def test_a_larger_tolerance_is_reached_no_later() -> None:
    steps = [
        one(
            "quadratic", steps=300, tolerance=tol, runs=[{"optimizer": {"name": "sgd", "lr": 0.05}}]
        ).reached_step
        for tol in (1.0, 0.1, 0.01, 0.001)
    ]
    assert None not in steps and steps == sorted(steps) and steps[0] < steps[-1]


def test_starting_at_a_minimum_is_reaching_it_at_step_0() -> None:
    run = one(start=[1.0, 1.0], steps=5)
    assert (run.reached_step, run.reached_minimum) == (0, 0)


def test_rastrigin_names_the_local_minimum_a_run_falls_into() -> None:
    result = run_playground(
        request(
            "rastrigin",
            steps=100,
            tolerance=1e-3,
            runs=[{"optimizer": {"name": "sgd", "lr": 0.002}}],
        )
    )
    run = result.runs[0]
    assert run.reached_minimum is not None
    m = result.minima[run.reached_minimum]
    assert m.kind == "local" and (round(m.x), round(m.y)) == (2, -2)


def test_saddles_have_no_minimum_to_reach() -> None:
    result = run_playground(request("monkey_saddle", steps=100, tolerance=100.0))
    assert result.minima == [] and result.runs[0].reached_step is None
    assert [(p.x, p.y, p.kind) for p in result.saddle_points] == [(0.0, 0.0, "saddle")]


# -- the rest ---------------------------------------------------------------------------


def test_labels_tell_runs_apart_and_a_given_label_wins() -> None:
    req = request(
        runs=[
            {"optimizer": {"name": "sgd", "lr": 0.001}},
            {"optimizer": {"name": "sgd", "lr": 0.001, "momentum": 0.9}},
            {"optimizer": {"name": "adam", "lr": 0.1}, "schedule": {"name": "cosine"}},
            {"optimizer": {"name": "adam", "lr": 0.1}, "label": "mine"},
            {"optimizer": {"name": "adam", "lr": 0.1}},
        ]
    )
    made = labels(req.runs)
    assert made[3] == "mine"
    assert made[0] == "sgd lr=0.001"
    assert made[1] == "sgd lr=0.001 momentum=0.9"
    assert made[2] == "adam lr=0.1 + cosine"
    assert made[4] == "adam lr=0.1"
    same = request(
        runs=[
            {"optimizer": {"name": "adam"}},
            {"optimizer": {"name": "adam", "betas": [0.9, 0.999]}},
            {
                "optimizer": {"name": "rmsprop", "centered": True, "lr": 1e-4},
                "schedule": {"name": "one_cycle", "max_lr": 0.01, "warmup_epochs": 2},
            },
        ]
    )
    assert labels(same.runs) == [
        "adam lr=0.001 (run 1)",
        "adam lr=0.001 (run 2)",
        "rmsprop lr=0.0001 centered=on + one_cycle warmup_epochs=2 max_lr=0.01",
    ]


def test_the_window_holds_the_start() -> None:
    result = run_playground(request(start=[5.0, -3.0], steps=1))
    (x0, x1), (y0, y1) = result.window.x, result.window.y
    assert x0 == -2.0 and x1 > 5.0 and y0 < -3.0 and y1 == 3.0


def test_without_torch_the_playground_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("torch", "workers.engine.optim", "workers.engine.schedules"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(EngineUnavailable) as caught:
        engine()
    assert caught.value.status == 503 and "PyTorch" in caught.value.message
