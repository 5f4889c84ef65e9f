"""Small, valid job results (service/spec/results.py) for tests that seed rows by hand:
``jobs.result`` takes nothing else."""

from __future__ import annotations

from service.spec.lab import RangeTest
from service.spec.results import (
    AutoLrChoice,
    AutoLrRecord,
    BestPoint,
    LandscapeRecord,
    RangeCurve,
    RangeTestRecord,
    Stop,
    Suggestion,
)


def range_test_record(*, step: int = 40, lr: float = 0.1, steps: int = 50) -> RangeTestRecord:
    """A finished range test whose smoothed loss is lowest at ``step`` (rate ``lr``)."""
    return RangeTestRecord(
        status="succeeded",
        reason=None,
        settings=RangeTest(steps=steps),
        steps_run=steps,
        stopped=Stop("all_steps", steps, f"ran all {steps} steps"),
        best=BestPoint(step=step, lr=lr, smoothed_loss=0.9),
        suggestions=[Suggestion("valley", lr / 10, max(step - 10, 1), 1.0, "seeded")],
        suggestion=None,
        device="cpu",
        seconds=0.25,
    )


def auto_lr_record(value: float = 0.01) -> AutoLrRecord:
    """A training job's record of an ``"auto"`` optimizer.lr set to ``value``."""
    test = range_test_record()
    return AutoLrRecord(
        auto_lr=AutoLrChoice(
            fields=["optimizer.lr"],
            value=value,
            rule="valley",
            suggested_lr=value,
            why=f"optimizer.lr set to {value:g}, the range test's 'valley' suggestion",
            suggestions=test.suggestions,
            range_test=test,
            curve=RangeCurve(
                step=[1, 2, 3],
                lr=[1e-4, 1e-2, 1.0],
                loss=[2.0, 1.0, None],
                smoothed_loss=[2.0, 1.5, None],
            ),
        )
    )


def landscape_record(source_job: str | None = None) -> LandscapeRecord:
    """A finished landscape on a 3 × 3 grid with random directions."""
    return LandscapeRecord.model_validate(
        {
            "status": "succeeded",
            "reason": None,
            "source_job": source_job,
            "split": "val",
            "n_samples": 30,
            "metrics": {"loss": "val_loss", "quality": "val_accuracy"},
            "centre": {"loss": 0.5, "quality": 0.9},
            "interpolation": {
                "alpha": [0.0, 0.5, 1.0],
                "loss": [2.0, 1.0, 0.5],
                "quality": [0.3, 0.6, 0.9],
                "initial": {"loss": 2.0, "quality": 0.3},
                "final": {"loss": 0.5, "quality": 0.9},
            },
            "surface": {
                "x": [-1.0, 0.0, 1.0],
                "y": [-1.0, 0.0, 1.0],
                "loss": [[1.5, 1.0, 1.5], [1.0, 0.5, 1.0], [1.5, 1.0, 1.5]],
                "quality": [[0.5, 0.7, 0.5], [0.7, 0.9, 0.7], [0.5, 0.7, 0.5]],
            },
            "directions": {
                "kind": "random",
                "seed": 0,
                "normalization": "filter",
                "span": 1.0,
                "zeroed": "biases and batch-norm parameters (1-D)",
            },
            "explained_variance": None,
            "trajectory": None,
            "device": "cpu",
            "seconds": 0.5,
        }
    )
