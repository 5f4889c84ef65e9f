"""What a job found, as ``jobs.result`` keeps it and ``GET /v1/jobs/{id}/result`` serves it.

A tagged union on ``kind`` (:data:`JobResult`):

- ``lr_range_test``: :class:`RangeTestRecord`, a range-test job's suggestions, why it
  stopped and its best point (the curve itself is in the job's metric rows);
- ``landscape``: :class:`LandscapeRecord`, the loss along the line from a job's initial to
  its final weights and on a grid around them;
- ``auto_lr``: :class:`AutoLrRecord`, for a training job whose rates were ``"auto"``: the
  range test's choice, recorded before training starts so that a resumed attempt trains
  on with the very rate it began with.

The engine builds them (``workers/engine``), the worker stores them and the API serves
them; the column's type (``service.db_json.TypedJSON``) validates a row as it is read and
dumps a record as it is written, so no code handles these documents as loose dicts.
Floats are finite or null: JSON has no NaN or infinity (PostgreSQL refuses them).
Pydantic only: the worker and the API both import this module (layer 1).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass

from service.spec.lab import AutoField, RangeTest, SuggestionRule

__all__ = [
    "JOB_RESULT",
    "AutoLrChoice",
    "AutoLrRecord",
    "AutoLrSummary",
    "BestPoint",
    "JobResult",
    "LandscapeRecord",
    "LossAndQuality",
    "PcaDirections",
    "RandomDirections",
    "RangeCurve",
    "RangeTestRecord",
    "Stop",
    "Suggestion",
    "SuggestionRule",
]

#: How a lab job ended: it ran to its end, or was cancelled with part of its work done.
LabStatus = Literal["succeeded", "cancelled"]
#: A measured value: null where the measurement was not finite.
Measured = float | None


class Record(BaseModel):
    """Base of the stored documents: nothing unknown, nothing non-finite, and immutable
    (a record is replaced, never edited in place, so the ORM always sees the change)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


# -- the range test ----------------------------------------------------------------------


@dataclass(frozen=True, config=ConfigDict(allow_inf_nan=False))
class Suggestion:
    """A rate a rule suggests: ``step`` and ``loss`` are the curve's point the rule read
    (for ``min_div_10`` the minimum, whose rate is ten times ``lr``)."""

    rule: SuggestionRule
    lr: float
    step: int
    loss: float  # the smoothed loss at ``step``
    explanation: str


@dataclass(frozen=True)
class Stop:
    """Why a range test ended, after which step, in a sentence."""

    why: Literal["all_steps", "diverged", "non_finite", "cancelled"]
    step: int  # the last step run (for non_finite: the step whose loss was not finite)
    text: str


class BestPoint(Record):
    """The curve's point of lowest smoothed loss."""

    step: int
    lr: float
    smoothed_loss: Measured


class RangeCurve(Record):
    """A range test's steps as columns, oldest first."""

    step: list[int]
    lr: list[Measured]
    loss: list[Measured] = Field(description="The batch's training loss before the step.")
    smoothed_loss: list[Measured] = Field(
        description="Its bias-corrected exponential moving average."
    )


class RangeTestRecord(Record):
    """A range-test job's result."""

    kind: Literal["lr_range_test"] = "lr_range_test"
    status: LabStatus
    reason: str | None = Field(description="Why it was cancelled; null when it ran.")
    settings: RangeTest
    steps_run: int
    stopped: Stop
    best: BestPoint | None
    suggestions: list[Suggestion] = Field(
        description="One per rule that found a rate; none when cancelled."
    )
    suggestion: SuggestionRule | None = Field(description="The rule `settings` asked for.")
    device: str
    seconds: float


# -- "auto" rates ------------------------------------------------------------------------


class AutoLrSummary(Record):
    """What ``"auto"`` rates became, in short (a job's ``auto_lr``)."""

    fields: list[AutoField]
    value: float = Field(description="The rate set, to three significant digits.")
    rule: SuggestionRule
    suggested_lr: float = Field(description="The rule's rate before rounding.")
    why: str


class AutoLrChoice(AutoLrSummary):
    """The choice with the range test behind it."""

    suggestions: list[Suggestion]
    range_test: RangeTestRecord
    curve: RangeCurve

    def summary(self) -> AutoLrSummary:
        return AutoLrSummary(**{name: getattr(self, name) for name in AutoLrSummary.model_fields})


class AutoLrRecord(Record):
    """A training job's result when its rates were ``"auto"``."""

    kind: Literal["auto_lr"] = "auto_lr"
    auto_lr: AutoLrChoice


# -- the landscape -----------------------------------------------------------------------


class LossAndQuality(Record):
    loss: Measured
    quality: Measured = Field(description="Accuracy for classification, R² for regression.")


class LandscapeMetrics(Record):
    """The metrics measured, by the names a training job records them under."""

    loss: str = Field(examples=["val_loss"])
    quality: str = Field(examples=["val_accuracy"])


class Line(Record):
    """The loss along θ(α) = (1−α)·θ_initial + α·θ_final."""

    alpha: list[float]
    loss: list[Measured]
    quality: list[Measured]
    initial: LossAndQuality
    final: LossAndQuality


class Surface(Record):
    """The grid: ``loss[i][j]`` at (``x[j]``, ``y[i]``), ``quality`` likewise; rows a
    cancelled job did not reach are null."""

    x: list[float]
    y: list[float]
    loss: list[list[Measured]]
    quality: list[list[Measured]]


class RandomDirections(Record):
    kind: Literal["random"]
    seed: int
    normalization: Literal["filter"]
    span: float
    zeroed: str = Field(description="The parameters the directions leave still.")


class PcaDirections(Record):
    kind: Literal["pca"]
    epochs: list[int] = Field(description="The trajectory's epochs (0: the initial weights).")
    margin: float = Field(description="How far past the farthest epoch the grid reaches.")


class Trajectory(Record):
    """With PCA directions: each epoch's projection onto them, and its own loss."""

    epochs: list[int]
    x: list[Measured]
    y: list[Measured]
    loss: list[Measured]


class LandscapeRecord(Record):
    """A landscape job's result."""

    kind: Literal["landscape"] = "landscape"
    status: LabStatus
    reason: str | None
    source_job: str | None = Field(description="The job whose weights were studied.")
    split: Literal["train", "val"]
    n_samples: int
    metrics: LandscapeMetrics
    centre: LossAndQuality = Field(description="At the final weights.")
    interpolation: Line
    surface: Surface
    directions: Annotated[RandomDirections | PcaDirections, Field(discriminator="kind")]
    explained_variance: list[Measured] | None = Field(
        description="PCA: each direction's share of the trajectory's variance."
    )
    trajectory: Trajectory | None
    device: str
    seconds: float


#: ``jobs.result``: one of the three, by ``kind``.
JobResult = Annotated[RangeTestRecord | LandscapeRecord | AutoLrRecord, Field(discriminator="kind")]
JOB_RESULT: TypeAdapter[RangeTestRecord | LandscapeRecord | AutoLrRecord] = TypeAdapter(JobResult)
