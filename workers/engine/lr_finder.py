"""The LR range test (Leslie Smith, 2017) and the ``"auto"`` learning rates it resolves.

``range_test`` trains a job's model, from the very weights its training would start
from, for up to ``steps`` batches while the rate rises from ``lr_min`` to ``lr_max``
(geometrically, lr_min·(lr_max/lr_min)^(i/(N−1)), or linearly). Everything else is the
job's: its optimizer with its own hyperparameters (only the rate is set each step), its
batch size, its penalties, clipping and decoupled decay, applied by the training loop's
own step (``loop.Stepper``); its schedule is ignored. Batches walk through shuffled
epochs, wrapping around as often as needed.

Each step records the batch's training loss (before the step) and its bias-corrected
exponential moving average, s_k = a_k / (1 − β^k) with a_k = β·a_{k−1} + (1 − β)·loss_k.
The test stops once the smoothed loss exceeds ``diverge_factor`` × its best so far (that
step is recorded: it shows the rise), or once the loss is not finite (that step is not).

Suggestions read the smoothed curve, against log10(lr), up to its minimum. As fastai's
``lr_find`` does, the first tenth of the planned steps is left out: there the average
has seen few batches and the rate is too small to move the loss, so its wiggles are
noise. Each rule is a pure function of (lrs, smoothed losses):

- ``steepest``: where the smoothed loss falls fastest, the most negative slope
  d(loss)/d(log10 lr) (central differences, ``numpy.gradient``) before the minimum;
- ``min_div_10``: the rate at the smoothed loss's minimum, divided by 10;
- ``valley`` (fastai's default since 2.4): about halfway along the longest descent of
  the smoothed loss before its minimum. As in fastai, the descent is the longest
  strictly decreasing subsequence (so a small bump does not cut it short), L points
  ending at index e; the valley starts at e − L and the pick is fastai's index,
  e − L + ⌊L/3⌋ + ⌊L/6⌋ (at or a step before the middle). fastai also drops the curve's
  last five points; here the descent ends at the minimum anyway.

``resolve_auto`` runs the test for a ``kind: train`` spec whose ``optimizer.lr`` or
``schedule.max_lr`` (one_cycle) is ``"auto"`` and writes the chosen suggestion, rounded
to three significant digits, into those fields, as the rate itself. Which suggestion:
``range_test.suggestion`` when set; else ``valley`` for a rate used throughout
(``optimizer.lr``) and ``min_div_10`` for a one-cycle peak, which the cycle reaches only
briefly between its warm-up and its annealing (Smith's advice: the peak may sit near the
edge of the stable range). On digits with momentum SGD (examples/lab, an Intel Xeon),
1cycle with the valley's 0.0085 as its peak ends 10 epochs at val_accuracy 0.914, with
min_div_10's 0.0739 it passes 0.95 at epoch 4 (docs/lab.md). Nothing of the test
survives into the training: ``train`` reseeds torch and builds a fresh model and
optimizer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from service.spec import JobSpec
from service.spec.lab import RangeTest, round_rate
from service.spec.results import (
    AutoLrChoice,
    BestPoint,
    RangeCurve,
    RangeTestRecord,
    Stop,
    Suggestion,
)
from workers.engine.checkpoint import Checkpoint
from workers.engine.data import load_dataset
from workers.engine.device import resolve_device
from workers.engine.loop import Stepper, epoch_batches, initial_model
from workers.engine.metrics import LOSSES
from workers.engine.report import Reporter
from workers.engine.schedules import set_rate

__all__ = [
    "RULES",
    "NoSuggestion",
    "RangePoint",
    "RangeTestCancelled",
    "RangeTestResult",
    "Stop",
    "Suggestion",
    "min_div_10",
    "range_rates",
    "range_test",
    "resolve_auto",
    "steepest",
    "valley",
    "with_rates",
]

log = logging.getLogger(__name__)

#: Suggestions read the curve after this fraction of the planned steps (fastai's 1/10).
SKIP_FRACTION = 10


class NoSuggestion(ValueError):
    """The range test's curve gives the asked rule nothing to suggest (the loss never
    fell over the range tested)."""


class RangeTestCancelled(Exception):
    """``resolve_auto`` was asked to stop (the reporter's ``should_stop``) mid-test."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the rates ------------------------------------------------------------------------


def range_rates(settings: RangeTest) -> list[float]:
    """The rate of each of the ``steps`` steps, ``lr_min`` first and ``lr_max`` last."""
    n, lo, hi = settings.steps, settings.lr_min, settings.lr_max
    if settings.mode == "exponential":
        rates = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    else:
        rates = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    rates[0], rates[-1] = lo, hi  # exactly, whatever the rounding on the way
    return rates


# -- suggestions: pure functions of the curve -----------------------------------------


def _curve(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(losses, dtype=np.float64)
    if lr.shape != loss.shape or lr.ndim != 1:
        raise ValueError("lrs and losses must be two sequences of the same length")
    if not (np.all(np.isfinite(lr)) and np.all(lr > 0) and np.all(np.isfinite(loss))):
        raise ValueError("lrs must be positive and finite, losses finite")
    if np.any(np.diff(lr) <= 0):
        raise ValueError("lrs must rise strictly")
    return lr, loss


def steepest(
    lrs: Sequence[float], losses: Sequence[float], *, first_step: int = 1
) -> Suggestion | None:
    """The rate where the smoothed loss falls fastest against log10(lr), before its
    minimum; None when it never falls. ``first_step`` numbers the first point."""
    lr, loss = _curve(lrs, losses)
    end = int(np.argmin(loss)) if len(loss) else 0
    if len(loss) < 3 or end == 0:
        return None
    slope = np.gradient(loss, np.log10(lr))
    i = int(np.argmin(slope[: end + 1]))
    if slope[i] >= 0:
        return None
    step = first_step + i
    return Suggestion(
        "steepest",
        float(lr[i]),
        step,
        float(loss[i]),
        f"the smoothed loss falls fastest at step {step} (lr {lr[i]:.3g}): "
        f"{slope[i]:.3g} per tenfold rise of the rate",
    )


def min_div_10(
    lrs: Sequence[float], losses: Sequence[float], *, first_step: int = 1
) -> Suggestion | None:
    """A tenth of the rate at the smoothed loss's minimum; None when the minimum is the
    first point (the loss never fell)."""
    lr, loss = _curve(lrs, losses)
    if len(loss) < 2:
        return None
    i = int(np.argmin(loss))
    if i == 0:
        return None
    step = first_step + i
    return Suggestion(
        "min_div_10",
        float(lr[i] / 10),
        step,
        float(loss[i]),
        f"the smoothed loss is lowest ({loss[i]:.4g}) at step {step} (lr {lr[i]:.3g}); "
        "a tenth of that rate stays clear of where the loss turns up",
    )


def _longest_descent(loss: np.ndarray) -> tuple[int, int]:
    """(length, last index) of the longest strictly decreasing subsequence of ``loss``;
    of several equally long, the one that ends first."""
    n = len(loss)
    length = np.ones(n, dtype=np.int64)
    for i in range(1, n):
        higher = loss[:i] > loss[i]
        if higher.any():
            length[i] = length[:i][higher].max() + 1
    last = int(np.argmax(length))
    return int(length[last]), last


def valley(
    lrs: Sequence[float], losses: Sequence[float], *, first_step: int = 1
) -> Suggestion | None:
    """fastai's valley rule: a point about halfway along the longest descent of the
    smoothed loss before its minimum; None when the loss never fell.

    As in fastai (``fastai.callback.schedule.valley``), the descent is the longest
    strictly decreasing subsequence, L points ending at index ``last`` (of several equally
    long, the one that ends first), so a plateau that wobbles down by a hair now and then
    adds a few points to the subsequence, not its whole length to the valley. The valley
    starts at ``last − L`` and the pick is ``⌊L/3⌋ + ⌊L/6⌋`` points into it (about L/2,
    never past it): fastai's index, clamped at the curve's first point.
    """
    lr, loss = _curve(lrs, losses)
    if len(loss) < 2:
        return None
    end = int(np.argmin(loss))
    if end == 0:
        return None
    length, last = _longest_descent(loss[: end + 1])
    i = max(0, last - length + length // 3 + length // 6)
    step = first_step + i
    return Suggestion(
        "valley",
        float(lr[i]),
        step,
        float(loss[i]),
        f"the smoothed loss falls over {length} steps up to step {first_step + last} "
        f"(lr {lr[last]:.3g}), its longest descent; step {step} is about halfway along "
        "it (fastai's valley)",
    )


#: The suggestion rules by name, each a pure function of (lrs, smoothed losses).
RULES: dict[str, Callable[..., Suggestion | None]] = {
    "steepest": steepest,
    "min_div_10": min_div_10,
    "valley": valley,
}


# -- the test -------------------------------------------------------------------------


@dataclass(frozen=True)
class RangePoint:
    step: int  # from 1
    lr: float
    loss: float  # the batch's training loss before the step
    smoothed_loss: float


@dataclass
class RangeTestResult:
    """How a range test went: its curve (``points``), why it stopped and the rules'
    suggestions (none when cancelled: they assume the whole sweep of rates)."""

    status: Literal["succeeded", "cancelled"]
    reason: str | None
    settings: RangeTest
    points: list[RangePoint]
    stopped: Stop
    suggestions: list[Suggestion] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0

    @property
    def best(self) -> RangePoint | None:
        """The point of lowest smoothed loss."""
        return min(self.points, key=lambda p: p.smoothed_loss, default=None)

    def choose(self, rule: str | None = None) -> Suggestion:
        """The suggestion of ``rule`` (default: the settings' ``suggestion``); raises
        ``NoSuggestion`` when that rule has none."""
        rule = rule or self.settings.suggestion or "valley"
        if rule not in RULES:
            raise ValueError(f"unknown suggestion rule {rule!r}; one of {', '.join(RULES)}")
        for s in self.suggestions:
            if s.rule == rule:
                return s
        if self.status == "cancelled":
            why = f"it was {self.stopped.text}"
        elif self.points:
            why = (
                f"its smoothed loss never fell between lr {self.points[0].lr:g} "
                f"and lr {self.points[-1].lr:g}"
            )
        else:
            why = f"it has no usable step ({self.stopped.text})"
        raise NoSuggestion(f"the range test gives no {rule!r} suggestion: {why}")

    def record(self) -> RangeTestRecord:
        """The job's result (the curve is in its rows): finite floats only."""
        best = self.best
        return RangeTestRecord(
            status=self.status,
            reason=self.reason,
            settings=self.settings,
            steps_run=len(self.points),
            stopped=self.stopped,
            best=None
            if best is None
            else BestPoint(step=best.step, lr=best.lr, smoothed_loss=_finite(best.smoothed_loss)),
            suggestions=self.suggestions,
            suggestion=self.settings.suggestion,
            device=self.device,
            seconds=round(self.seconds, 3),
        )

    def curve(self) -> RangeCurve:
        """The curve as columns: step, lr, loss, smoothed_loss."""
        return RangeCurve(
            step=[p.step for p in self.points],
            lr=[p.lr for p in self.points],
            loss=[_finite(p.loss) for p in self.points],
            smoothed_loss=[_finite(p.smoothed_loss) for p in self.points],
        )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _suggest(points: list[RangePoint], planned_steps: int) -> list[Suggestion]:
    skip = planned_steps // SKIP_FRACTION
    if len(points) - skip < 3:
        skip = 0  # too short a curve to leave anything out
    usable = points[skip:]
    lrs = [p.lr for p in usable]
    smoothed = [p.smoothed_loss for p in usable]
    if not all(math.isfinite(v) for v in smoothed):
        return []
    first = usable[0].step if usable else 1
    found = (rule(lrs, smoothed, first_step=first) for rule in RULES.values())
    return [s for s in found if s is not None]


def range_test(
    spec: JobSpec,
    settings: RangeTest,
    *,
    datasets_dir: Path,
    device: str | None = None,
    reporter: Reporter | None = None,
) -> RangeTestResult:
    """Run the range test of ``spec`` (see the module's docstring).

    Each step is reported as ``report(step, {"lr", "loss", "smoothed_loss"}, None)``,
    steps from 1, and ``should_stop`` is asked before each step: a yes ends the test as
    ``cancelled``. ``device`` overrides ``spec.training.device``. A ``StopTraining`` (or
    ``PruneTrial``: a range test is not pruned) from the reporter propagates.
    """
    clock = time.perf_counter()
    dev = resolve_device(device or spec.training.device)
    data = load_dataset(spec.dataset, datasets_dir=datasets_dir, device=dev)
    model, shuffle = initial_model(spec, data, dev)
    rates = range_rates(settings)
    stepper = Stepper.build(spec, model, lr=rates[0])
    loss_fn = LOSSES[data.task]
    n_train = len(data.y_train)
    batches = epoch_batches(spec, n_train, model)
    beta = settings.smoothing
    log.info(
        "range test of %s on %s: %d steps, lr %g → %g (%s), %d batches per epoch",
        spec.name or spec.default_name(),
        dev,
        settings.steps,
        settings.lr_min,
        settings.lr_max,
        settings.mode,
        len(batches),
    )

    points: list[RangePoint] = []
    average, best = 0.0, math.inf
    stopped: Stop | None = None
    order = torch.empty(0, dtype=torch.int64)
    model.train()
    for i, lr in enumerate(rates):
        step = i + 1
        if reporter is not None and reporter.should_stop():
            stopped = Stop("cancelled", i, f"cancelled by request after {i} step(s)")
            break
        b = i % len(batches)
        if b == 0:  # a new epoch: a new order
            order = torch.randperm(n_train, generator=shuffle, device=dev)
        lo, hi = batches[b]
        idx = order[lo:hi]
        x, y = data.x_train[idx], data.y_train[idx]
        set_rate(stepper.optimizer, lr, None)
        loss = loss_fn(model(x), y)
        value = loss.item()
        if not math.isfinite(value):
            stopped = Stop(
                "non_finite", step, f"the loss became {value:g} at step {step} (lr {lr:.3g})"
            )
            break
        average = beta * average + (1 - beta) * value
        smoothed = average / (1 - beta**step)
        points.append(RangePoint(step, lr, value, smoothed))
        if reporter is not None:
            metrics = {"lr": lr, "loss": value, "smoothed_loss": smoothed}
            reporter.report(step, metrics, None)
        if smoothed > settings.diverge_factor * best or not math.isfinite(smoothed):
            stopped = Stop(
                "diverged",
                step,
                f"the smoothed loss {smoothed:.4g} exceeded {settings.diverge_factor:g} × its "
                f"best ({best:.4g}) at step {step} (lr {lr:.3g})",
            )
            break
        best = min(best, smoothed)
        stepper.update(loss, lr)
    if stopped is None:
        stopped = Stop("all_steps", len(rates), f"ran all {len(rates)} steps")

    seconds = time.perf_counter() - clock
    if stopped.why == "cancelled":
        return RangeTestResult(
            "cancelled", stopped.text, settings, points, stopped, [], str(dev), seconds
        )
    suggestions = _suggest(points, settings.steps)
    log.info("range test: %s; suggestions %s", stopped.text, [(s.rule, s.lr) for s in suggestions])
    return RangeTestResult(
        "succeeded", None, settings, points, stopped, suggestions, str(dev), seconds
    )


# -- "auto" -----------------------------------------------------------------------------


@dataclass
class _StopOnly:
    """Forwards ``should_stop`` and keeps the range test's rows out of the job's rows
    (they are epochs); the record keeps the curve instead."""

    reporter: Reporter

    def report(self, epoch: int, metrics: dict[str, float], checkpoint: Checkpoint | None) -> None:
        return None

    def should_stop(self) -> bool:
        return self.reporter.should_stop()


def with_rates(spec: JobSpec, fields: Sequence[str], value: float) -> JobSpec:
    """``spec`` with each of ``fields`` (names as ``JobSpec.auto_lr`` gives them:
    ``optimizer.lr``, ``schedule.max_lr``) set to ``value`` and ``range_test`` dropped;
    nothing else changes. A resumed job rebuilds its concrete spec with this from the
    record of its first attempt, instead of testing again."""
    unknown = set(fields) - {"optimizer.lr", "schedule.max_lr"}
    if unknown:
        raise ValueError(f"not a learning-rate field: {', '.join(sorted(unknown))}")
    data = spec.model_dump(mode="json")
    if "optimizer.lr" in fields:
        data["optimizer"]["lr"] = value
    if "schedule.max_lr" in fields:
        data["schedule"]["max_lr"] = value
    data["range_test"] = None
    return JobSpec.model_validate(data)


def resolve_auto(
    spec: JobSpec,
    *,
    datasets_dir: Path,
    device: str | None = None,
    reporter: Reporter | None = None,
) -> tuple[JobSpec, AutoLrChoice | None]:
    """Replace the ``"auto"`` learning rates of a ``kind: train`` spec by a range test's
    suggestion; returns the concrete spec and the record of the choice.

    The test runs with ``spec.range_test`` (default ``RangeTest()``) and takes the
    suggestion of its rule (``RangeTest.rule_for``: ``suggestion`` when set, else
    ``min_div_10`` for a one-cycle peak and ``valley`` for a constant rate), rounded to
    three significant digits, as the
    value of every field in ``spec.auto_lr`` (``optimizer.lr``, ``schedule.max_lr``).
    The concrete spec is the same spec with those fields set and ``range_test`` dropped
    (its settings are in the record; the spec language keeps ``range_test`` for
    ``"auto"`` specs and range-test jobs). A spec with nothing ``"auto"`` comes back
    as it is, with no record.

    ``reporter``: only its ``should_stop`` is asked, before each step; a yes raises
    ``RangeTestCancelled``. The steps are not reported (a training job's rows are its
    epochs): the record holds the curve. ``NoSuggestion`` (a ``ValueError`` naming the
    fields) when the curve gives the rule nothing.
    """
    fields = spec.auto_lr
    if not fields:
        return spec, None
    if spec.kind != "train":
        raise ValueError(f'"auto" learning rates are for kind train, not {spec.kind}')
    settings = spec.range_test or RangeTest()
    result = range_test(
        spec,
        settings,
        datasets_dir=datasets_dir,
        device=device,
        reporter=_StopOnly(reporter) if reporter is not None else None,
    )
    if result.status == "cancelled":
        raise RangeTestCancelled(f"{result.reason} of the range test for {', '.join(fields)}")
    try:
        pick = result.choose(settings.rule_for(fields))
    except NoSuggestion as exc:
        raise NoSuggestion(
            f'{", ".join(fields)}: "auto" found no learning rate: {exc}; give a value, '
            "or widen range_test.lr_min / lr_max"
        ) from exc
    value = round_rate(pick.lr)
    resolved = with_rates(spec, fields, value)
    why = (
        f"{' and '.join(fields)} set to {value:g}, the range test's {pick.rule!r} "
        f"suggestion: {pick.explanation}"
    )
    record = AutoLrChoice(
        fields=fields,
        value=value,
        rule=pick.rule,
        suggested_lr=pick.lr,
        why=why,
        suggestions=result.suggestions,
        range_test=result.record(),
        curve=result.curve(),
    )
    log.info("auto learning rate: %s", why)
    return resolved, record
