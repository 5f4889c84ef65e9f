"""Regularizers applied by the training loop (dropout and batch norm live on the model)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator

from service.spec.common import SpecModel


class EarlyStopping(SpecModel):
    monitor: str = Field(
        "val_loss", max_length=64, description="Metric watched at the end of each epoch."
    )
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="auto: max for accuracy and r2, min otherwise."
    )
    patience: StrictInt = Field(
        5, ge=1, le=100_000, description="Epochs without improvement to stop."
    )
    min_delta: StrictFloat = Field(0.0, ge=0.0, le=1e6, description="Smallest change that counts.")
    restore_best_weights: StrictBool = Field(
        True, description="Save the best epoch's weights rather than the last's."
    )
    start_from_epoch: StrictInt = Field(
        0,
        ge=0,
        le=100_000,
        description="Ignore the first epochs (e.g. a warm-up, or 1cycle's rising phase, "
        "where the loss is expected to get worse) before watching the metric.",
    )


class GradClip(SpecModel):
    max_norm: StrictFloat | None = Field(
        None, gt=0.0, le=1e6, description="Rescale gradients whose total norm exceeds this."
    )
    norm_type: StrictFloat = Field(2.0, gt=0.0, le=1e3, description="p of the p-norm (2 = L2).")
    max_value: StrictFloat | None = Field(
        None, gt=0.0, le=1e6, description="Clamp each gradient element to [−v, v]."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> GradClip:
        if (self.max_norm is None) == (self.max_value is None):
            raise ValueError("set exactly one of max_norm (clip by norm) or max_value (by value)")
        return self


class Regularization(SpecModel):
    l1: StrictFloat = Field(
        0.0, ge=0.0, le=100.0, description="Adds l1·Σ|θ| (weights only) to the loss."
    )
    l2: StrictFloat = Field(
        0.0, ge=0.0, le=100.0, description="Adds l2·Σθ² (weights only) to the loss."
    )
    weight_decay: StrictFloat = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="Decoupled (AdamW-style) decay for any optimizer: θ ← θ·(1 − η·λ) "
        "before each step, with η the rate applied at that step.",
    )
    early_stopping: EarlyStopping | None = None
    grad_clip: GradClip | None = None
