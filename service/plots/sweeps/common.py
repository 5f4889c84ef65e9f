"""What every plot of a sweep draws from: the sweep and its trials as plain data
(:class:`SweepInfo`, :class:`TrialInfo`, never ORM rows), and what the plots say alike
(counts by state, the best trial, a 409 when there is nothing to draw yet)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from service.errors import Conflict
from service.plots.curves import to_float
from service.plots.labels import format_value

__all__ = [
    "STATES",
    "SweepInfo",
    "TrialInfo",
    "best_trial",
    "better_word",
    "counts_text",
    "is_number",
    "nothing_to_plot",
    "trial_info",
    "trial_label",
]

#: Trial states as the plots name them, in the order their legends list them.
STATES: tuple[str, ...] = ("complete", "pruned", "fail", "running")


@dataclass(frozen=True)
class SweepInfo:
    """What every plot of a sweep needs to know about the sweep itself."""

    id: str
    name: str
    kind: str  # "sweep" | "comparison"
    status: str
    metric: str  # the objective's metric
    direction: Literal["min", "max"]
    #: The pruner's step: ``epoch``, or ``progress`` (percent of the trial's run).
    step_measure: str = "epoch"
    #: The stored spec's ``space`` (presets expanded), for axis scales; {} for comparisons.
    space: Mapping[str, Any] = field(default_factory=dict)
    repeats: int = 1
    live: bool = False  # the sweep may still change: the image must not be cached

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.id[:8]}"

    def better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "min" else a > b


@dataclass(frozen=True)
class TrialInfo:
    """One trial as the plots see it."""

    number: int
    state: str  # running | complete | pruned | fail
    #: complete: the trial's score (the mean objective of its seeds); otherwise the
    #: objective so far (mean over its jobs that have one), or None.
    value: float | None
    params: Mapping[str, Any]
    label: str
    #: (step, objective so far) in step order; with several seeds, their mean per step.
    intermediate: tuple[tuple[int, float], ...] = ()


def trial_label(number: int, params: Mapping[str, Any], label: str | None = None) -> str:
    """``#3 sgd lr=0.01 momentum=0.9``: a configuration's label, or its values."""
    if label:
        return f"#{number} {label}"
    parts = []
    for path, value in params.items():
        leaf = path.rsplit(".", 1)[-1]
        if leaf.isdigit() and "." in path:  # optimizer.betas.0 -> betas.0
            leaf = ".".join(path.rsplit(".", 2)[-2:])
        text = format_value(value)
        parts.append(text if leaf in ("name", "kind") else f"{leaf}={text}")
    return " ".join([f"#{number}", *parts])


def trial_info(trial: Any, label: str | None = None) -> TrialInfo:
    """A :class:`TrialInfo` from a ``service.sweeps.study.TrialRow`` (a plain dataclass
    with ``number``, ``params``, ``jobs`` and ``outcome()``)."""
    state, value = trial.outcome()
    if value is None:
        so_far = [to_float(j.objective) for j in trial.jobs if j.objective is not None]
        so_far = [v for v in so_far if not math.isnan(v)]
        value = statistics.fmean(so_far) if so_far else None
    value = None if value is None or math.isnan(to_float(value)) else float(value)
    per_step: dict[int, list[float]] = {}
    for job in trial.jobs:
        for step, v in (job.intermediate or {}).items():
            x = to_float(v)
            if not math.isnan(x):
                try:
                    per_step.setdefault(int(step), []).append(x)
                except ValueError:
                    continue
    intermediate = tuple((s, statistics.fmean(vs)) for s, vs in sorted(per_step.items()))
    return TrialInfo(
        number=trial.number,
        state=state,
        value=value,
        params=dict(trial.params or {}),
        label=trial_label(trial.number, trial.params or {}, label),
        intermediate=intermediate,
    )


def nothing_to_plot(message: str) -> Conflict:
    """The 409 of a plot with nothing to draw yet (or ever, for this kind)."""
    return Conflict(message, code="nothing_to_plot")


def better_word(info: SweepInfo) -> str:
    return "lower is better" if info.direction == "min" else "higher is better"


def counts_text(trials: Sequence[TrialInfo]) -> str:
    """``3 complete, 1 pruned``: the trials by state, for a title."""
    parts = []
    for state in STATES:
        n = sum(t.state == state for t in trials)
        if n:
            parts.append(f"{n} {'failed' if state == 'fail' else state}")
    return ", ".join(parts)


def best_trial(info: SweepInfo, trials: Iterable[TrialInfo]) -> TrialInfo | None:
    """The best complete trial with a value, or None."""
    best = None
    for t in trials:
        done = t.state == "complete" and t.value is not None
        if done and (best is None or info.better(t.value, best.value)):  # type: ignore[arg-type]
            best = t
    return best


def is_number(v: Any) -> bool:
    """A finite int or float (a bool is not a number here)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
