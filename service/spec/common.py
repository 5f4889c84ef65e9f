"""Pieces every part of the job language shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Task = Literal["classification", "regression"]

#: Metrics recorded every epoch. The same names in SQL, the API, events and plots.
_LOSSES = ("epoch", "train_loss", "val_loss")
_NORMS = ("grad_norm", "weight_norm")
#: Wall-clock measurements: they differ between two runs of the same spec.
TIMING_METRICS = ("epoch_seconds", "samples_per_second")
#: Recorded for every task.
COMMON_METRICS = (*_LOSSES, "lr", *_NORMS, *TIMING_METRICS)
#: Recorded by task.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("train_accuracy", "val_accuracy"),
    "regression": ("train_mse", "val_mse", "val_mae", "val_r2"),
}
#: Recorded only when a schedule cycles them (one_cycle with cycle_momentum).
CYCLED_METRICS = ("momentum", "beta1")


#: What the lab's job kinds record per row instead of epochs' metrics: a range test one
#: row per step, a landscape one per row of its grid (service/spec/lab.py).
LAB_METRICS: dict[str, tuple[str, ...]] = {
    "lr_range_test": ("lr", "loss", "smoothed_loss"),
    "landscape": ("row", "loss_min", "loss_max"),
}


def metric_names(task: str, kind: str = "train") -> tuple[str, ...]:
    """Every metric a job of ``task`` (and ``kind``) may record, in the order the engine
    reports them."""
    if kind in LAB_METRICS:
        return ("epoch", *LAB_METRICS[kind])  # "epoch": the row's number
    return (*_LOSSES, *TASK_METRICS[task], "lr", *CYCLED_METRICS, *_NORMS, *TIMING_METRICS)


def monitorable_metrics(task: str) -> tuple[str, ...]:
    """Metrics that early stopping and reduce_on_plateau may watch."""
    return ("train_loss", "val_loss", *TASK_METRICS[task])


def metric_mode(metric: str) -> Literal["min", "max"]:
    """Whether a larger value of ``metric`` is better."""
    return "max" if metric.endswith(("accuracy", "_r2")) else "min"


class SpecModel(BaseModel):
    """Base of every spec model: unknown fields and non-finite numbers (NaN, ±inf, 1e400)
    are errors.

    Values of the wrong JSON type are errors too, through pydantic's strict types on
    every field that holds a number or a boolean (``StrictFloat``, ``StrictInt``,
    ``StrictBool``): lax mode would read ``true`` or ``"0.1"`` as a number and ``1`` or
    ``"yes"`` as a boolean; the spec takes neither. A float field takes an integer
    (``"lr": 1``); an integer field takes no float, not even ``2.0`` (docs/architecture.md
    says why). Strictness is per field, not ``ConfigDict(strict=True)``: a strict model
    would also refuse a JSON array where a tuple belongs (``betas``).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of a request, in the words a user can act on."""

    field: str
    message: str
    allowed: list[Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.allowed is not None:
            out["allowed"] = self.allowed
        return out


@dataclass
class SpecError(Exception):
    """A spec that parsed but does not fit its dataset or the configured caps."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{e.field}: {e.message}" for e in self.errors)
