"""Every optimizer trains under every schedule and reports exactly the documented metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from service.spec import COMMON_METRICS, OPTIMIZER_NAMES, SCHEDULE_NAMES, TASK_METRICS, JobSpec
from workers.engine import ListReporter, train

# Small enough that all 56 runs take a few seconds; valid for 3 epochs.
SCHEDULES = {
    "constant": {},
    "step": {"step_size": 1, "gamma": 0.5},
    "multistep": {"milestones": [1, 2]},
    "exponential": {"k": 0.5},
    "time_based": {"k": 0.5},
    "cosine": {"warmup_epochs": 1},
    "one_cycle": {"warmup_epochs": 1},
    "reduce_on_plateau": {"patience": 0, "warmup_epochs": 1},
}
CYCLED = {"sgd": "momentum", "rmsprop": "momentum", "adagrad": None}  # the rest: beta1
# Momentum in use, so one_cycle cycles it (it leaves an unused momentum of 0 alone).
OPTIMIZER_ARGS = {"sgd": {"momentum": 0.9}, "rmsprop": {"momentum": 0.5}}


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
@pytest.mark.parametrize("optimizer", OPTIMIZER_NAMES)
def test_optimizer_schedule_matrix(optimizer: str, schedule: str) -> None:
    spec = JobSpec.model_validate(
        {
            "dataset": {"name": "moons", "n_samples": 200},
            "model": {"kind": "mlp", "hidden": [16]},
            "optimizer": {"name": optimizer, **OPTIMIZER_ARGS.get(optimizer, {})},
            "schedule": {"name": schedule, **SCHEDULES[schedule]},
            "training": {"epochs": 3, "batch_size": 32},
        }
    )
    reporter = ListReporter()
    result = train(spec, reporter=reporter, datasets_dir=Path("/nonexistent"))

    assert result.status == "succeeded", result.reason
    assert [epoch for epoch, _ in reporter.reports] == [1, 2, 3]
    expected = {*COMMON_METRICS, *TASK_METRICS["classification"]}
    cycled = CYCLED.get(optimizer, "beta1") if schedule == "one_cycle" else None
    if cycled:
        expected.add(cycled)
    for epoch, metrics in reporter.reports:
        assert set(metrics) == expected
        assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), metrics
        assert metrics["epoch"] == epoch and metrics["lr"] > 0
    assert result.final_metrics == reporter.reports[-1][1]


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
def test_one_cycle_leaves_an_unused_momentum_alone(optimizer: str) -> None:
    spec = JobSpec.model_validate(
        {
            "dataset": {"name": "moons", "n_samples": 200},
            "optimizer": {"name": optimizer},
            "schedule": {"name": "one_cycle"},
            "training": {"epochs": 2},
        }
    )
    reporter = ListReporter()
    assert train(spec, reporter=reporter, datasets_dir=Path("/nonexistent")).status == "succeeded"
    assert "momentum" not in reporter.reports[-1][1]
