"""Learning-rate schedules as functions of where training is.

Each schedule in the spec is a pure function here: of the epoch e (counted from 0 after
warm-up) for the epoch-stepped ones, of the batch step t for one_cycle. A ``Schedule``
object per job puts the linear warm-up in front and answers the one question the loop
asks before every optimizer step: which lr (and momentum) now? Only reduce_on_plateau
keeps state, because its rate depends on the metrics seen so far.

The sequences match torch.optim.lr_scheduler's (StepLR, MultiStepLR, CosineAnnealingLR,
CosineAnnealingWarmRestarts, OneCycleLR, ReduceLROnPlateau); tests compare them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from service.spec import metric_mode
from service.spec.optimizers import resolved
from service.spec.schedules import (
    Constant,
    Cosine,
    Exponential,
    MultiStep,
    OneCycle,
    ReduceOnPlateau,
    ScheduleBase,
    StepDecay,
    TimeBased,
)

# --------------------------------------------------------------- pure functions of e or t


def step_lr(e: int, *, lr0: float, step_size: int, gamma: float) -> float:
    return lr0 * gamma ** (e // step_size)


def multistep_lr(e: int, *, lr0: float, milestones: list[int], gamma: float) -> float:
    return lr0 * gamma ** bisect_right(milestones, e)


def exponential_lr(e: int, *, lr0: float, k: float) -> float:
    return lr0 * math.exp(-k * e)


def time_based_lr(e: int, *, lr0: float, k: float) -> float:
    return lr0 / (1 + k * e)


def _half_cosine(lr0: float, eta_min: float, t_cur: float, t: float) -> float:
    return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * t_cur / t)) / 2


def cosine_lr(e: int, *, lr0: float, t_max: int, eta_min: float) -> float:
    # Held at eta_min after t_max (torch's recursive form would climb back up).
    return _half_cosine(lr0, eta_min, min(e, t_max), t_max)


def cosine_restarts_lr(e: int, *, lr0: float, t_0: int, t_mult: int, eta_min: float) -> float:
    if t_mult == 1:
        t_cur, t_i = e % t_0, t_0
    else:
        # Cycles grow geometrically, so this loop runs O(log e) times; integers keep it exact.
        t_cur, t_i = e, t_0
        while t_cur >= t_i:
            t_cur, t_i = t_cur - t_i, t_i * t_mult
    return _half_cosine(lr0, eta_min, t_cur, t_i)


def _anneal(strategy: str, start: float, end: float, pct: float) -> float:
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def one_cycle(t: int, *, spec: OneCycle, max_lr: float, total_steps: int) -> tuple[float, float]:
    """(lr, momentum) at batch step t of ``total_steps``, as torch's OneCycleLR computes them."""
    initial_lr = max_lr / spec.div_factor
    min_lr = initial_lr / spec.final_div_factor
    hi, lo = spec.max_momentum, spec.base_momentum
    rise_end = float(spec.pct_start * total_steps) - 1
    # (last step of the phase, lr from → to, momentum from → to)
    phases = [(rise_end, initial_lr, max_lr, hi, lo)]
    if spec.three_phase:
        phases.append((float(2 * spec.pct_start * total_steps) - 2, max_lr, initial_lr, lo, hi))
        phases.append((total_steps - 1, initial_lr, min_lr, hi, hi))
    else:
        phases.append((total_steps - 1, max_lr, min_lr, lo, hi))
    start_step = 0.0
    for i, (end_step, lr_a, lr_b, m_a, m_b) in enumerate(phases):
        if t <= end_step or i == len(phases) - 1:
            # A phase can be zero steps long when pct_start·T is a whole number ≤ 1;
            # torch divides by zero there, we take its end point.
            span = end_step - start_step
            pct = (t - start_step) / span if span else 1.0
            strategy = spec.anneal_strategy
            return _anneal(strategy, lr_a, lr_b, pct), _anneal(strategy, m_a, m_b, pct)
        start_step = end_step
    raise AssertionError("unreachable: the last phase always answers")


# --------------------------------------------------------------- one object per job


class Schedule:
    """The lr, and the momentum when it is cycled, for every step of one job.

    ``epoch`` counts from 0 including warm-up; ``step`` is the batch within the epoch.
    For the first W = warmup_epochs·steps_per_epoch steps the rate rises linearly to
    the schedule's own first value: lr(0, 0)·(t+1)/W. Momentum is not warmed up: it
    holds the schedule's first value (one_cycle's max_momentum) until warm-up ends,
    which also gives RMSprop its momentum buffer on the very first step.
    """

    cycles_momentum: bool = False
    monitor: str | None = None  # the metric on_epoch_end wants, if any

    def __init__(self, *, base_lr: float, steps_per_epoch: int, warmup_epochs: int) -> None:
        self.base_lr = base_lr
        self.steps_per_epoch = steps_per_epoch
        self.warmup_epochs = warmup_epochs
        self.warmup_steps = warmup_epochs * steps_per_epoch

    def lr(self, epoch: int, step: int) -> float:
        t = epoch * self.steps_per_epoch + step
        if t < self.warmup_steps:
            return self._lr(0, 0) * (t + 1) / self.warmup_steps
        return self._lr(epoch - self.warmup_epochs, t - self.warmup_steps)

    def momentum(self, epoch: int, step: int) -> float | None:
        if not self.cycles_momentum:
            return None
        t = epoch * self.steps_per_epoch + step
        return self._momentum(max(0, t - self.warmup_steps))

    def on_epoch_end(self, metric_value: float) -> None:
        """Told the monitored metric after each epoch; only reduce_on_plateau listens."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def _lr(self, e: int, t: int) -> float:
        """The rate at epoch e / step t, both counted after warm-up."""
        raise NotImplementedError

    def _momentum(self, t: int) -> float:
        raise NotImplementedError


class EpochSchedule(Schedule):
    """A rate that changes only between epochs: a pure function of e."""

    def __init__(self, rule: Callable[[int], float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule = rule

    def _lr(self, e: int, t: int) -> float:
        return self.rule(e)


class OneCycleSchedule(Schedule):
    """Leslie Smith's 1cycle, a pure function of the batch step after warm-up."""

    def __init__(
        self, spec: OneCycle, *, max_lr: float, total_steps: int, cycle: bool, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if total_steps < 1:
            raise ValueError("one_cycle needs at least one step after warm-up")
        self.at = partial(one_cycle, spec=spec, max_lr=max_lr, total_steps=total_steps)
        self.cycles_momentum = cycle

    def _lr(self, e: int, t: int) -> float:
        return self.at(t)[0]

    def _momentum(self, t: int) -> float:
        return self.at(t)[1]


class PlateauSchedule(Schedule):
    """torch's ReduceLROnPlateau (relative threshold): the rate falls by ``factor`` once
    the monitored metric has not improved for more than ``patience`` epochs."""

    # torch skips reductions smaller than this, so a rate already at min_lr stays put.
    EPS = 1e-8

    def __init__(self, spec: ReduceOnPlateau, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.monitor = spec.monitor
        self.mode = metric_mode(spec.monitor) if spec.mode == "auto" else spec.mode
        self.current_lr = self.base_lr
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.epochs_seen = 0

    def _lr(self, e: int, t: int) -> float:
        return self.current_lr

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best * (1.0 - self.spec.threshold)
        return value > self.best * (self.spec.threshold + 1.0)

    def on_epoch_end(self, metric_value: float) -> None:
        self.epochs_seen += 1
        if self.epochs_seen <= self.warmup_epochs:
            return  # the rate is still rising: a plateau there says nothing
        if self._is_better(metric_value):
            self.best, self.num_bad_epochs = metric_value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.spec.patience:
            new_lr = max(self.current_lr * self.spec.factor, self.spec.min_lr)
            if self.current_lr - new_lr > self.EPS:
                self.current_lr = new_lr
            self.cooldown_counter = self.spec.cooldown
            self.num_bad_epochs = 0

    _STATE = ("current_lr", "best", "num_bad_epochs", "cooldown_counter", "epochs_seen")

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])


# --------------------------------------------------------------- registry


@dataclass(frozen=True)
class JobSteps:
    """What a schedule needs to know about the job it runs in."""

    base_lr: float  # η₀, the optimizer's lr
    epochs: int
    steps_per_epoch: int
    warmup_epochs: int
    has_momentum: bool  # the optimizer has a momentum or β1 one_cycle may cycle

    def common(self) -> dict[str, Any]:
        return {
            "base_lr": self.base_lr,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
        }


def _constant(spec: Constant, job: JobSteps) -> Schedule:
    lr0 = job.base_lr
    return EpochSchedule(lambda e: lr0, **job.common())


def _step(spec: StepDecay, job: JobSteps) -> Schedule:
    rule = partial(step_lr, lr0=job.base_lr, step_size=spec.step_size, gamma=spec.gamma)
    return EpochSchedule(rule, **job.common())


def _multistep(spec: MultiStep, job: JobSteps) -> Schedule:
    rule = partial(multistep_lr, lr0=job.base_lr, milestones=spec.milestones, gamma=spec.gamma)
    return EpochSchedule(rule, **job.common())


def _exponential(spec: Exponential, job: JobSteps) -> Schedule:
    return EpochSchedule(partial(exponential_lr, lr0=job.base_lr, k=spec.k), **job.common())


def _time_based(spec: TimeBased, job: JobSteps) -> Schedule:
    return EpochSchedule(partial(time_based_lr, lr0=job.base_lr, k=spec.k), **job.common())


def _cosine(spec: Cosine, job: JobSteps) -> Schedule:
    rule: Callable[[int], float]
    if spec.t_0 is not None:
        rule = partial(
            cosine_restarts_lr,
            lr0=job.base_lr,
            t_0=spec.t_0,
            t_mult=spec.t_mult,
            eta_min=spec.eta_min,
        )
    else:
        t_max = spec.t_max or job.epochs - job.warmup_epochs
        rule = partial(cosine_lr, lr0=job.base_lr, t_max=t_max, eta_min=spec.eta_min)
    return EpochSchedule(rule, **job.common())


def _one_cycle(spec: OneCycle, job: JobSteps) -> Schedule:
    cycle = job.has_momentum if spec.cycle_momentum is None else spec.cycle_momentum
    if cycle and not job.has_momentum:
        raise ValueError("schedule.cycle_momentum: this optimizer has no momentum or β1 to cycle")
    return OneCycleSchedule(
        spec,
        max_lr=resolved(spec.max_lr, "schedule.max_lr") if spec.max_lr else job.base_lr,
        total_steps=(job.epochs - job.warmup_epochs) * job.steps_per_epoch,
        cycle=cycle,
        **job.common(),
    )


def _reduce_on_plateau(spec: ReduceOnPlateau, job: JobSteps) -> Schedule:
    return PlateauSchedule(spec, **job.common())


SCHEDULES: dict[str, Callable[[Any, JobSteps], Schedule]] = {
    "constant": _constant,
    "step": _step,
    "multistep": _multistep,
    "exponential": _exponential,
    "time_based": _time_based,
    "cosine": _cosine,
    "one_cycle": _one_cycle,
    "reduce_on_plateau": _reduce_on_plateau,
}


def build_schedule(
    spec: ScheduleBase,
    *,
    base_lr: float,
    epochs: int,
    steps_per_epoch: int,
    has_momentum: bool = False,
) -> Schedule:
    """The schedule ``spec`` names for a job of ``epochs`` × ``steps_per_epoch`` steps.

    ``base_lr`` is the optimizer's lr (η₀); ``has_momentum`` says whether the optimizer
    has a momentum or β1 that one_cycle may cycle (``OptimizerSpec.has_momentum``).
    """
    if spec.warmup_epochs >= epochs:
        raise ValueError(
            f"schedule.warmup_epochs ({spec.warmup_epochs}) leaves none of the {epochs} epochs"
        )
    job = JobSteps(base_lr, epochs, steps_per_epoch, spec.warmup_epochs, has_momentum)
    return SCHEDULES[spec.name](spec, job)  # type: ignore[attr-defined]


def set_rate(optimizer: torch.optim.Optimizer, lr: float, momentum: float | None) -> None:
    """Apply this step's rate (and cycled momentum: SGD's/RMSprop's ``momentum``, the
    Adam family's β1) to every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if momentum is None:
            continue
        if "betas" in group:
            group["betas"] = (momentum, group["betas"][1])
        else:
            group["momentum"] = momentum


def momentum_metric(optimizer: torch.optim.Optimizer) -> str:
    """The name a cycled momentum is recorded under: ``beta1`` or ``momentum``."""
    return "beta1" if "betas" in optimizer.defaults else "momentum"
