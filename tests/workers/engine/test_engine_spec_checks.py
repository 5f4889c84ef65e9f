"""The API's cross-field checks (service.spec.check_job) refuse what the engine cannot run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.spec import JobSpec, Limits, check_job
from workers.engine import ListReporter, train

LIMITS = Limits(max_epochs=1000, max_parameters=10**7, max_synthetic_samples=10**5)


def spec(**fields: Any) -> JobSpec:
    base = {"dataset": {"name": "moons", "n_samples": 100}, "training": {"epochs": 4}}
    return JobSpec.model_validate(base | fields)


def refused_fields(job: JobSpec) -> set[str]:
    return {e.field for e in check_job(job, job.dataset.known_shape(), LIMITS)}


def test_batch_norm_with_single_sample_batches_is_refused_and_would_fail() -> None:
    job = spec(model={"kind": "mlp", "batch_norm": True}, training={"epochs": 1, "batch_size": 1})
    assert "training.batch_size" in refused_fields(job)
    with pytest.raises(ValueError, match="batch norm"):
        train(job, reporter=ListReporter(), datasets_dir=Path("/nonexistent"))
    assert "training.batch_size" not in refused_fields(
        spec(model={"kind": "mlp", "batch_norm": True}, training={"batch_size": 2})
    )


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"name": "multistep", "milestones": [2], "warmup_epochs": 2}, "schedule.milestones"),
        ({"name": "cosine", "t_max": 3, "warmup_epochs": 2}, "schedule.t_max"),
    ],
)
def test_epoch_counts_after_warmup_are_checked(schedule: dict, field: str) -> None:
    # e counts epochs after warm-up: 4 epochs with 2 of warm-up leave e = 0, 1.
    assert field in refused_fields(spec(schedule=schedule))
    assert field not in refused_fields(spec(schedule={**schedule, "warmup_epochs": 0}))
