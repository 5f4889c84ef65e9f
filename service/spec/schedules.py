"""Learning-rate schedules.

The worker computes each one as a function of the step (see
``workers/engine/schedules.py``); ``update_rule`` is that function. η₀ is the
optimizer's ``lr``, e the epoch counted from 0 after any warm-up, t the batch step.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator

from service.spec.common import SpecModel

Gamma = Annotated[StrictFloat, Field(gt=0.0, le=1.0, description="Multiplicative decay factor.")]


class ScheduleBase(SpecModel):
    warmup_epochs: StrictInt = Field(
        0,
        ge=0,
        le=100_000,
        description="Linear warm-up in front of the schedule, stepped per batch: "
        "η = η_target·(t+1)/T_warmup for the first T_warmup steps.",
    )

    description: ClassVar[str] = ""
    update_rule: ClassVar[str] = ""
    stepped: ClassVar[Literal["epoch", "batch"]] = "epoch"


class Constant(ScheduleBase):
    name: Literal["constant"]
    description: ClassVar[str] = "The optimizer's lr throughout."
    update_rule: ClassVar[str] = "η_e = η₀"


class StepDecay(ScheduleBase):
    name: Literal["step"]
    step_size: StrictInt = Field(10, ge=1, le=100_000, description="Epochs between decays (s).")
    gamma: Gamma = 0.1
    description: ClassVar[str] = "Multiply the rate by gamma every step_size epochs."
    update_rule: ClassVar[str] = "η_e = η₀·γ^⌊e/s⌋"


class MultiStep(ScheduleBase):
    name: Literal["multistep"]
    milestones: list[Annotated[StrictInt, Field(ge=1, le=100_000)]] = Field(
        default_factory=lambda: [10, 15],
        min_length=1,
        max_length=100,
        description="Epochs (strictly increasing) at which the rate is multiplied by gamma.",
    )
    gamma: Gamma = 0.1
    description: ClassVar[str] = "Multiply the rate by gamma at each milestone epoch."
    update_rule: ClassVar[str] = "η_e = η₀·γ^(number of milestones ≤ e)"

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("milestones must be strictly increasing")
        return v


class Exponential(ScheduleBase):
    name: Literal["exponential"]
    k: StrictFloat = Field(0.1, ge=0.0, le=100.0, description="Decay rate per epoch.")
    description: ClassVar[str] = "Exponential decay, per epoch."
    update_rule: ClassVar[str] = "η_e = η₀·exp(−k·e)"


class TimeBased(ScheduleBase):
    name: Literal["time_based"]
    k: StrictFloat = Field(0.1, ge=0.0, le=100.0, description="Decay rate per epoch.")
    description: ClassVar[str] = "Inverse-time decay (Keras' classic `decay`), per epoch."
    update_rule: ClassVar[str] = "η_e = η₀ / (1 + k·e)"


class Cosine(ScheduleBase):
    name: Literal["cosine"]
    t_max: StrictInt | None = Field(
        None, ge=1, le=100_000, description="Epochs of the half cosine; default: all epochs."
    )
    eta_min: StrictFloat = Field(0.0, ge=0.0, le=1000.0, description="Lowest rate.")
    t_0: StrictInt | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Warm restarts (SGDR): epochs of the first cycle; unset for no restarts.",
    )
    t_mult: StrictInt = Field(1, ge=1, le=100, description="Each cycle is t_mult times the last.")
    description: ClassVar[str] = (
        "Cosine annealing from η₀ to eta_min, stepped per epoch, with optional warm restarts "
        "(Loshchilov & Hutter, 2017)."
    )
    update_rule: ClassVar[str] = (
        "η_e = η_min + ½(η₀ − η_min)(1 + cos(π·T_cur/T)); without restarts T = t_max and "
        "T_cur = min(e, t_max); with restarts T starts at t_0, T_cur resets to 0 at the end "
        "of each cycle and T is multiplied by t_mult"
    )

    @model_validator(mode="after")
    def _one_of(self) -> Cosine:
        if self.t_0 is not None and self.t_max is not None:
            raise ValueError("set t_max (no restarts) or t_0 (warm restarts), not both")
        return self


class OneCycle(ScheduleBase):
    name: Literal["one_cycle"]
    max_lr: Annotated[StrictFloat, Field(gt=0.0, le=1000.0)] | Literal["auto"] | None = Field(
        None,
        description='Peak rate; default: the optimizer\'s lr. "auto": an LR range test runs '
        "first and its suggestion is the peak.",
    )
    pct_start: StrictFloat = Field(0.3, gt=0.0, lt=1.0, description="Share of steps spent rising.")
    anneal_strategy: Literal["cos", "linear"] = "cos"
    div_factor: StrictFloat = Field(25.0, ge=1.0, le=1e6, description="Initial rate = max_lr/div.")
    final_div_factor: StrictFloat = Field(
        1e4, ge=1.0, le=1e9, description="Final rate = initial rate / final_div_factor."
    )
    three_phase: StrictBool = Field(False, description="Add a third phase that anneals to the end.")
    cycle_momentum: StrictBool | None = Field(
        None,
        description="Cycle momentum (SGD, RMSprop with momentum > 0) or β1 (Adam family) "
        "inversely to the rate; default: whenever the optimizer uses one.",
    )
    base_momentum: StrictFloat = Field(0.85, ge=0.0, lt=1.0)
    max_momentum: StrictFloat = Field(0.95, ge=0.0, lt=1.0)
    stepped: ClassVar[Literal["epoch", "batch"]] = "batch"
    description: ClassVar[str] = (
        "Leslie Smith's 1cycle policy, stepped per batch: the rate rises from "
        "max_lr/div_factor to max_lr, then anneals to max_lr/(div_factor·final_div_factor), "
        "while momentum does the opposite. Matches torch.optim.lr_scheduler.OneCycleLR."
    )
    update_rule: ClassVar[str] = (
        "over T = steps after warm-up, t from 0: phase 1 (t ≤ pct_start·T − 1): η anneals "
        "from max_lr/div to max_lr and momentum from max_momentum to base_momentum; phase 2 "
        "(to t = T − 1): η anneals to max_lr/(div·final_div) and momentum back to "
        "max_momentum; three_phase: phase 2 (t ≤ 2·pct_start·T − 2) takes η back to "
        "max_lr/div and momentum to max_momentum, phase 3 anneals η to "
        "max_lr/(div·final_div) with momentum held; p = the fraction of the phase done; "
        "cos anneal a→b: b + (a−b)(1 + cos(πp))/2, linear: a + (b−a)·p"
    )

    @model_validator(mode="after")
    def _momentum_order(self) -> OneCycle:
        if self.base_momentum > self.max_momentum:
            raise ValueError("base_momentum must not exceed max_momentum")
        if self.three_phase and self.pct_start >= 0.5:
            raise ValueError(
                "three_phase needs pct_start < 0.5 (phases 1 and 2 last pct_start each)"
            )
        return self


class ReduceOnPlateau(ScheduleBase):
    name: Literal["reduce_on_plateau"]
    monitor: str = Field(
        "val_loss", max_length=64, description="Metric watched at the end of each epoch."
    )
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="auto: max for accuracy and r2, min otherwise."
    )
    factor: StrictFloat = Field(0.1, gt=0.0, lt=1.0, description="Rate multiplier on a plateau.")
    patience: StrictInt = Field(5, ge=0, le=100_000, description="Epochs without improvement.")
    threshold: StrictFloat = Field(1e-4, ge=0.0, le=1.0, description="Relative improvement needed.")
    cooldown: StrictInt = Field(
        0, ge=0, le=100_000, description="Epochs to wait after a reduction."
    )
    min_lr: StrictFloat = Field(0.0, ge=0.0, le=1000.0)
    description: ClassVar[str] = (
        "Multiply the rate by factor when the monitored metric has not improved for "
        "patience epochs (torch's ReduceLROnPlateau, relative threshold)."
    )
    update_rule: ClassVar[str] = (
        "after each epoch: if the metric is not better than best·(1 ∓ threshold) for more "
        "than patience epochs (outside cooldown): η ← max(η·factor, min_lr)"
    )


ScheduleSpec = Annotated[
    Constant
    | StepDecay
    | MultiStep
    | Exponential
    | TimeBased
    | Cosine
    | OneCycle
    | ReduceOnPlateau,
    Field(discriminator="name"),
]
SCHEDULE_NAMES: tuple[str, ...] = (
    "constant",
    "step",
    "multistep",
    "exponential",
    "time_based",
    "cosine",
    "one_cycle",
    "reduce_on_plateau",
)
