"""The job spec: one training run, fully described as data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator

from service.spec.common import SpecModel
from service.spec.datasets import DatasetSpec, DigitsDataset
from service.spec.lab import AutoField, JobKind, Landscape, RangeTest
from service.spec.models import MLPModel, ModelSpec
from service.spec.optimizers import Adam, OptimizerSpec
from service.spec.regularization import Regularization
from service.spec.schedules import Constant, OneCycle, ScheduleSpec
from service.text import LABEL_PATTERN, label_or_none

#: Longest ``training.time_limit_seconds`` the language accepts (a year); the server's
#: own cap (DESCENT_MAX_JOB_SECONDS) is usually far lower.
MAX_TIME_LIMIT_SECONDS = 365 * 24 * 3600


class Training(SpecModel):
    epochs: StrictInt = Field(
        20, ge=1, le=100_000, description="Epochs to train (capped by the server)."
    )
    batch_size: Annotated[StrictInt, Field(ge=1, le=10_000_000)] | Literal["full"] = Field(
        32,
        description="Samples per step, or `full` for full-batch gradient descent. "
        "Batch size 1 is classic SGD.",
    )
    seed: StrictInt = Field(
        0, ge=0, le=2**32 - 1, description="Seeds weights, shuffling and dropout."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto` uses a GPU when the worker has one."
    )
    time_limit_seconds: StrictFloat | None = Field(
        None,
        gt=0,
        le=MAX_TIME_LIMIT_SECONDS,
        description="Wall-clock limit of the training; a job still training after it ends "
        "as failed. Default and cap: the server's DESCENT_MAX_JOB_SECONDS.",
    )

    save_trajectory: StrictBool = Field(
        False,
        description="Keep the weights after every epoch (and before the first), so a "
        "`landscape` job can draw the path the optimizer took.",
    )

    def resolve_batch_size(self, n_train: int) -> int:
        return n_train if self.batch_size == "full" else self.batch_size


class JobSpec(SpecModel):
    """A job. Every field has a default: ``{"dataset": {"name": "digits"}}`` is a job."""

    kind: JobKind = Field(
        "train",
        description="`train` (the default); `lr_range_test`: a learning-rate range test "
        "of this spec (settings in `range_test`); `landscape`: the loss landscape of a "
        "finished job (settings in `landscape`; dataset and model come from that job).",
    )
    name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="A display label (no control characters); default: made from the spec.",
        json_schema_extra={"pattern": LABEL_PATTERN},
    )
    dataset: DatasetSpec = Field(default_factory=lambda: DigitsDataset(name="digits"))
    model: ModelSpec = Field(default_factory=lambda: MLPModel(kind="mlp"))
    optimizer: OptimizerSpec = Field(default_factory=lambda: Adam(name="adam"))
    schedule: ScheduleSpec = Field(default_factory=lambda: Constant(name="constant"))
    regularization: Regularization = Field(default_factory=Regularization)
    training: Training = Field(default_factory=Training)
    range_test: RangeTest | None = Field(
        None,
        description="The range test's settings: for `kind: lr_range_test`, and for the "
        'test that `"auto"` learning rates run first. Default: the defaults below.',
    )
    landscape: Landscape | None = Field(
        None, description="For `kind: landscape` (required there): what to measure."
    )

    @property
    def auto_lr(self) -> list[AutoField]:
        """The fields set to ``"auto"``: a range test picks their value before training."""
        fields: list[AutoField] = ["optimizer.lr"] if self.optimizer.lr == "auto" else []
        if isinstance(self.schedule, OneCycle) and self.schedule.max_lr == "auto":
            fields.append("schedule.max_lr")
        return fields

    @field_validator("name")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        return label_or_none(v)

    def default_name(self) -> str:
        name = f"{self.dataset.name}-{self.model.kind}-{self.optimizer.name}"
        return f"{name}-lr-range-test" if self.kind == "lr_range_test" else name
