"""The training loop: a job spec in, one report per epoch out, a result at the end.

Read ``train`` top to bottom, one screen: set up (``_Run.build``: device, seed, data,
model, optimizer, schedule), restore a checkpoint when resuming (``_Run.restore``), then
for each epoch train and validate it (``_Run.epoch``: shuffle, step through the batches,
evaluate, the epoch's metrics), let the schedule and early stopping see it and take a
checkpoint (``_Run.end_epoch``), report, and decide whether to go on. What ends a run
early is an exception: the loop's own ``_Ended`` (cancelled, timed out, diverged) and the
reporter's ``PruneTrial``. The whole dataset lives on the device, so a batch is an index
into it (no DataLoader, no worker processes, no host-to-device copies per step).

The lab (``lr_finder``, ``landscape``) shares the setup and the step rather than copying
them: ``initial_model`` seeds and builds exactly the model ``train`` starts from,
``epoch_batches`` cuts the epochs the same way, and ``Stepper.update`` is the step
(penalties, backward, clipping, decoupled decay, the optimizer).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from service.spec import TASK_METRICS, JobSpec, monitorable_metrics
from service.spec.bundle import MANIFEST, ONNX, WEIGHTS
from service.spec.optimizers import resolved
from service.spec.regularization import Regularization
from workers.engine.bundle import (
    BundleTarget,
    save_weights,
    saved_weights,
    write_bundle,
)
from workers.engine.checkpoint import (
    Checkpoint,
    CheckpointError,
    cpu_copy,
    rng_state,
    set_rng_state,
)
from workers.engine.data import SplitData, load_dataset
from workers.engine.device import is_out_of_memory, resolve_device
from workers.engine.metrics import LOSSES, EpochTotals, evaluate
from workers.engine.models import build_model, has_batch_norm
from workers.engine.optim import build_optimizer
from workers.engine.regularize import (
    EarlyStopping,
    clip_gradients_,
    decay_weights_,
    grad_norm,
    penalty,
    total_norm,
    weight_parameters,
)
from workers.engine.report import PruneTrial, Reporter
from workers.engine.schedules import Schedule, build_schedule, momentum_metric, set_rate

log = logging.getLogger(__name__)

Status = Literal["succeeded", "diverged", "cancelled", "timed_out", "pruned"]


@dataclass
class TrainResult:
    """How a run ended. ``best_*`` follow the early-stopping monitor, else val_loss."""

    status: Status
    reason: str | None
    epochs_completed: int
    stop_epoch: int | None  # the epoch early stopping ended the run at
    best_epoch: int | None
    best_value: float | None
    final_metrics: dict[str, float] = field(default_factory=dict)  # the last report
    device: str = "cpu"
    n_parameters: int = 0
    #: A succeeded run: the epoch whose weights were saved (the best one when early
    #: stopping restored it, else the last) and its report (None: a checkpoint from
    #: before they were kept); whether its bundle's manifest was written.
    saved_epoch: int | None = None
    saved_metrics: dict[str, float] | None = None
    has_bundle: bool = False


def batch_bounds(n_train: int, batch_size: int, batch_norm: bool) -> list[tuple[int, int]]:
    """[start, stop) of each batch in an epoch's shuffled order."""
    if batch_norm and batch_size < 2:
        raise ValueError(
            "training.batch_size: batch norm needs batches of at least 2 samples "
            "(the variance of one sample is undefined); use a larger batch_size or "
            "set batch_norm to false"
        )
    bounds = [(lo, min(lo + batch_size, n_train)) for lo in range(0, n_train, batch_size)]
    # A trailing batch of one sample would crash batch norm for the same reason. Drop
    # it: the next epoch's shuffle puts that sample in a full batch.
    if batch_norm and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
    return bounds


def epoch_batches(spec: JobSpec, n_train: int, model: nn.Module) -> list[tuple[int, int]]:
    """The batches of one epoch of ``spec`` over ``n_train`` samples (``batch_bounds``)."""
    batch_size = min(spec.training.resolve_batch_size(n_train), n_train)
    return batch_bounds(n_train, batch_size, has_batch_norm(model))


def initial_model(
    spec: JobSpec, data: SplitData, dev: torch.device
) -> tuple[nn.Module, torch.Generator]:
    """Seed torch as every run of ``spec`` starts and build its model on ``dev``: the very
    weights ``train`` starts from, bit for bit. Also returns the generator that shuffles
    the batches, seeded likewise.

    Weights and dropout masks come from torch's global generator (reseeded here, so
    whatever ran before in this process cannot leak into the run); shuffling has its own,
    so adding dropout to a model does not change the order of the batches.
    """
    seed = spec.training.seed
    torch.manual_seed(seed)
    shuffle = torch.Generator(device=dev)
    shuffle.manual_seed(seed)
    return build_model(spec.model, data.shape).to(dev), shuffle


@dataclass
class Stepper:
    """What one optimizer step touches, and the step itself (``update``)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    reg: Regularization
    params: list[nn.Parameter]
    weights: list[nn.Parameter]  # the ones penalties and decay act on

    @classmethod
    def build(cls, spec: JobSpec, model: nn.Module, *, lr: float | None = None) -> Stepper:
        """The spec's optimizer over ``model``; ``lr`` replaces ``optimizer.lr`` (the range
        test sets the rate every step, and ``"auto"`` has no value yet)."""
        opt_spec = spec.optimizer if lr is None else spec.optimizer.model_copy(update={"lr": lr})
        params = list(model.parameters())
        return cls(
            model=model,
            optimizer=build_optimizer(opt_spec, params),
            reg=spec.regularization,
            params=params,
            weights=weight_parameters(model),
        )

    def update(self, loss: torch.Tensor, lr: float) -> torch.Tensor:
        """One step on the batch whose ``loss`` was just computed, at rate ``lr`` (already
        set on the optimizer): the l1/l2 penalties join the loss, then backward, clipping,
        decoupled decay and the optimizer's step. Returns the gradient norm before
        clipping (how steep the loss really was)."""
        reg = self.reg
        extra = penalty(self.weights, l1=reg.l1, l2=reg.l2)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if extra is None else loss + extra).backward()
        norm = grad_norm(self.params)
        clip_gradients_(self.params, reg.grad_clip)
        decay_weights_(self.weights, lr=lr, weight_decay=reg.weight_decay)
        self.optimizer.step()
        return norm


def _check_monitors(spec: JobSpec, task: str) -> None:
    # The API checks this too; a spec that skipped the API should still fail up front.
    allowed = monitorable_metrics(task)
    watched = {"schedule.monitor": getattr(spec.schedule, "monitor", None)}
    if spec.regularization.early_stopping is not None:
        watched["regularization.early_stopping.monitor"] = (
            spec.regularization.early_stopping.monitor
        )
    for name, metric in watched.items():
        if metric is not None and metric not in allowed:
            raise ValueError(f"{name}: unknown metric {metric!r}; allowed: {', '.join(allowed)}")


def _save_to(path: Path, write: Callable[[Path], None]) -> None:
    # Write aside and rename, so a reader never finds half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _save(model: nn.Module, path: Path) -> None:
    def write(tmp: Path) -> None:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)

    _save_to(path, write)


TRAJECTORY_NAME = "epoch-{epoch:05d}.pt"
_TRAJECTORY_FILE = re.compile(r"epoch-(\d{5,})\.pt")


def _save_trajectory(model: nn.Module, trajectory_dir: Path | None, epoch: int) -> None:
    if trajectory_dir is not None:
        _save(model, trajectory_dir / TRAJECTORY_NAME.format(epoch=epoch))


def load_trajectory(trajectory_dir: Path) -> list[tuple[int, dict[str, torch.Tensor]]]:
    """The weights ``train`` saved with ``save_trajectory``: (epoch, CPU state_dict) in
    epoch order, epoch 0 being the initial weights. Half-written files (``*.tmp``) and
    anything else in the folder are ignored; a missing folder is an empty trajectory."""
    if not trajectory_dir.is_dir():
        return []
    found = []
    for path in trajectory_dir.iterdir():
        match = _TRAJECTORY_FILE.fullmatch(path.name)
        if match is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)
            found.append((int(match.group(1)), state))
    return sorted(found, key=lambda item: item[0])


def train(
    spec: JobSpec,
    *,
    reporter: Reporter,
    datasets_dir: Path,
    model_path: Path | None = None,
    device: str | None = None,
    resume: Checkpoint | None = None,
    time_limit_seconds: float | None = None,
    trajectory_dir: Path | None = None,
    bundle: BundleTarget | None = None,
) -> TrainResult:
    """Train ``spec`` to the end, to divergence, to early stopping, to cancellation, to
    its time limit or until the reporter prunes it.

    ``device`` overrides ``spec.training.device``. The model's ``state_dict`` is saved to
    ``model_path`` only when the run succeeds, with ``bundle.TARGET_KEYS`` added when
    regression targets were standardised. With ``bundle``, a succeeded run writes its
    bundle into ``bundle.dir`` (``model.pt``, ``model.onnx``, ``model.json``:
    ``workers/engine/bundle.py``); a failure to write the ONNX file or manifest is
    logged and leaves ``has_bundle`` false, never fails the run. The same spec gives the
    same metrics on the same CPU, run after run (timings aside).

    Each completed epoch is reported with a ``Checkpoint``; ``resume`` continues from
    one at the epoch after it, and on the same CPU the rest of the run is exactly what
    an uninterrupted run would have been. A checkpoint at or past the last epoch, or
    at an early stop, finishes the run at once. ``time_limit_seconds`` bounds the
    seconds spent in ``train``, summed over the attempts a checkpoint carries on; it is
    checked at every batch boundary. A ``PruneTrial`` raised by ``report`` ends the run
    as ``pruned`` (that epoch reported, the weights not saved). A ``StopTraining`` raised
    by the reporter propagates unchanged; so do out-of-memory errors (see
    ``is_out_of_memory``).

    With ``training.save_trajectory`` and a ``trajectory_dir``, the weights (a CPU
    state_dict) are saved there before the first epoch and after each epoch, as
    ``epoch-00000.pt``, ``epoch-00001.pt``, … (``load_trajectory`` reads them back), each
    before its epoch is reported: an epoch run again after a crash rewrites its file
    with the same weights. ``"auto"`` learning rates must be resolved first
    (``workers.engine.lr_finder.resolve_auto``).
    """
    clock = time.perf_counter()
    if spec.auto_lr:
        raise ValueError(
            f'{", ".join(spec.auto_lr)}: "auto" must be resolved by a range test before '
            "training (workers.engine.lr_finder.resolve_auto)"
        )
    run = _Run.build(
        spec,
        datasets_dir=datasets_dir,
        device=device,
        trajectory=trajectory_dir if spec.training.save_trajectory else None,
        time_limit=time_limit_seconds,
        clock=clock,
    )
    if resume is not None:
        run.restore(resume)
    else:
        _save_trajectory(run.model, run.trajectory, 0)

    for epoch in run.epochs_to_go():
        try:
            metrics = run.epoch(epoch, reporter)
        except _Ended as ended:
            return run.outcome(ended.status, ended.reason)
        checkpoint = run.end_epoch(epoch, metrics)
        try:
            reporter.report(run.completed, metrics, checkpoint)
        except PruneTrial as pruned:
            log.info("pruned at epoch %d: %s", run.completed, pruned.reason)
            return run.outcome("pruned", pruned.reason)
        if run.stop_epoch is not None:
            log.info(
                "early stopping at epoch %d (best: epoch %s)", run.completed, run.tracker.best_epoch
            )
            break
    return run.finish(model_path, bundle)


class _Ended(Exception):
    """An epoch cut the run short: cancelled, timed out or diverged."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status: Status = status
        self.reason = reason


@dataclass
class _Run:
    """One call of ``train``: what it built, and how far it has come."""

    spec: JobSpec
    dev: torch.device
    data: SplitData
    model: nn.Module
    shuffle: torch.Generator  # the batches' order; weights and dropout use torch's own
    stepper: Stepper
    schedule: Schedule
    tracker: EarlyStopping  # early stopping, or only the score (best_epoch / best_value)
    batches: list[tuple[int, int]]
    cycled: str | None  # the metric a cycled momentum is recorded as
    trajectory: Path | None
    time_limit: float | None
    clock: float
    completed: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's
    stop_epoch: int | None = None
    spent_before: float = 0.0  # training seconds of earlier attempts

    @classmethod
    def build(
        cls,
        spec: JobSpec,
        *,
        datasets_dir: Path,
        device: str | None,
        trajectory: Path | None,
        time_limit: float | None,
        clock: float,
    ) -> _Run:
        dev = resolve_device(device or spec.training.device)
        data = load_dataset(spec.dataset, datasets_dir=datasets_dir, device=dev)
        _check_monitors(spec, data.task)
        model, shuffle = initial_model(spec, data, dev)
        stepper = Stepper.build(spec, model)
        batches = epoch_batches(spec, len(data.y_train), model)
        schedule = build_schedule(
            spec.schedule,
            base_lr=resolved(spec.optimizer.lr, "optimizer.lr"),
            epochs=spec.training.epochs,
            steps_per_epoch=len(batches),
            has_momentum=spec.optimizer.has_momentum,
        )
        early = spec.regularization.early_stopping
        run = cls(
            spec=spec,
            dev=dev,
            data=data,
            model=model,
            shuffle=shuffle,
            stepper=stepper,
            schedule=schedule,
            tracker=EarlyStopping.from_spec(early)
            if early is not None
            else EarlyStopping("val_loss"),
            batches=batches,
            cycled=momentum_metric(stepper.optimizer) if schedule.cycles_momentum else None,
            trajectory=trajectory,
            time_limit=time_limit,
            clock=clock,
        )
        log.info(
            "training %s on %s: %d parameters, %d train / %d val samples, %d steps per epoch",
            spec.name or spec.default_name(),
            dev,
            run.n_parameters,
            len(data.y_train),
            len(data.y_val),
            len(batches),
        )
        return run

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.stepper.params)

    def elapsed(self) -> float:
        return self.spent_before + time.perf_counter() - self.clock

    def restore(self, resume: Checkpoint) -> None:
        """Everything that changes as training goes on, as it was when the checkpoint's
        epoch ended. The split and scaling are not stored: ``load_dataset`` recomputes
        them identically from the spec."""
        saved = resume.state
        try:
            self.model.load_state_dict(saved["model"])
            # Copied: the optimizer would update the checkpoint's tensors in place.
            self.stepper.optimizer.load_state_dict(cpu_copy(saved["optimizer"]))
            self.schedule.load_state_dict(saved["schedule"])
            self.tracker.load_state_dict(saved["early_stopping"])
            reseed = self.spec.training.seed + resume.epoch
            exact = set_rng_state(saved["rng"], self.dev, self.shuffle, reseed=reseed)
            self.stop_epoch, self.spent_before = saved["stop_epoch"], saved["elapsed_seconds"]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            if is_out_of_memory(exc):
                raise  # the worker's trouble, not the checkpoint's
            raise CheckpointError(
                f"the checkpoint of epoch {resume.epoch} does not fit this job "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        self.completed, self.metrics = resume.epoch, dict(resume.metrics)
        log.info("resuming after epoch %d of %d", self.completed, self.spec.training.epochs)
        if not exact:
            log.warning(
                "the checkpoint was taken on %s, this run is on %s: its random streams "
                "cannot carry over, so they were reseeded",
                saved["rng"]["device"],
                self.dev.type,
            )

    def epochs_to_go(self) -> range:
        """The epochs left (from 0); none after an early stop the checkpoint recorded."""
        epochs = self.spec.training.epochs
        return range(self.completed if self.stop_epoch is None else epochs, epochs)

    def epoch(self, epoch: int, reporter: Reporter) -> dict[str, float]:
        """Train one epoch and validate: its metrics. Raises ``_Ended``."""
        started = time.perf_counter()
        totals, lr, momentum = self._steps(epoch, reporter)
        train_seconds = time.perf_counter() - started
        data = self.data
        val = evaluate(
            self.model,
            data.x_val,
            data.y_val,
            data.task,
            target_shift=data.target_shift,
            target_scale=data.target_scale,
        )
        if not math.isfinite(val["val_loss"]):
            raise _Ended(
                "diverged",
                f"val loss became {val['val_loss']:g} at epoch {epoch + 1} (lr {lr:g}): "
                "the learning rate is likely too high",
            )
        measured = totals.summary() | val
        metrics = {
            "epoch": float(epoch + 1),
            "train_loss": measured["train_loss"],
            "val_loss": measured["val_loss"],
            **{name: measured[name] for name in TASK_METRICS[data.task]},
            "lr": lr,  # the rate of the epoch's last step
        }
        if self.cycled is not None and momentum is not None:
            metrics[self.cycled] = momentum
        metrics["grad_norm"] = measured["grad_norm"]
        metrics["weight_norm"] = total_norm(self.stepper.params).item()
        metrics["epoch_seconds"] = time.perf_counter() - started
        metrics["samples_per_second"] = totals.samples / max(train_seconds, 1e-9)
        return metrics

    def _steps(self, epoch: int, reporter: Reporter) -> tuple[EpochTotals, float, float | None]:
        """One pass over the shuffled batches: the totals, and the last step's rate and
        momentum. Raises ``_Ended``: cancelled, timed out, or a loss that is not finite."""
        data, model, optimizer = self.data, self.model, self.stepper.optimizer
        loss_fn = LOSSES[data.task]
        model.train()
        order = torch.randperm(len(data.y_train), generator=self.shuffle, device=self.dev)
        totals = EpochTotals(data.task, self.dev, target_scale=data.target_scale)
        lr, momentum = math.nan, None
        for step, (lo, hi) in enumerate(self.batches):
            if reporter.should_stop():
                raise _Ended("cancelled", f"cancelled by request after {self.completed} epoch(s)")
            if self.time_limit is not None and self.elapsed() > self.time_limit:
                raise _Ended(
                    "timed_out",
                    f"exceeded the time limit of {self.time_limit:g} s "
                    f"after {self.completed} epoch(s)",
                )
            idx = order[lo:hi]
            x, y = data.x_train[idx], data.y_train[idx]
            lr, momentum = self.schedule.lr(epoch, step), self.schedule.momentum(epoch, step)
            set_rate(optimizer, lr, momentum)

            output = model(x)
            loss = loss_fn(output, y)
            # One host sync per step: the price of stopping at the very step that diverged.
            if not torch.isfinite(loss):
                raise _Ended(
                    "diverged",
                    f"train loss became {loss.item():g} at epoch {epoch + 1}, step {step + 1} "
                    f"(lr {lr:g}): the learning rate is likely too high",
                )
            norm = self.stepper.update(loss, lr)
            totals.add(loss.detach(), output.detach(), y, norm)
        return totals, lr, momentum

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> Checkpoint:
        """The epoch is complete: the schedule and early stopping see it, then the
        checkpoint is taken (so resuming from it never replays their decisions) and the
        trajectory's file written."""
        self.completed, self.metrics = epoch + 1, metrics
        log.debug("epoch %d: %s", self.completed, metrics)
        if self.schedule.monitor is not None:
            self.schedule.on_epoch_end(metrics[self.schedule.monitor])
        monitored = metrics[self.tracker.monitor]
        if self.tracker.update(self.completed, monitored, self.model, metrics):
            self.stop_epoch = self.completed
        # CPU copies (one of the model, one of the optimizer's state; early stopping's
        # best weights are shared): the checkpoint must not change as training goes on.
        state: dict[str, Any] = {
            "model": cpu_copy(self.model.state_dict()),
            "optimizer": cpu_copy(self.stepper.optimizer.state_dict()),
            "schedule": self.schedule.state_dict(),
            "early_stopping": self.tracker.state_dict(),
            "rng": rng_state(self.dev, self.shuffle),
            "stop_epoch": self.stop_epoch,
            "elapsed_seconds": self.elapsed(),
        }
        _save_trajectory(self.model, self.trajectory, self.completed)
        return Checkpoint(self.completed, metrics, state)

    def outcome(self, status: Status, reason: str | None = None) -> TrainResult:
        return TrainResult(
            status=status,
            reason=reason,
            epochs_completed=self.completed,
            stop_epoch=self.stop_epoch if status == "succeeded" else None,
            best_epoch=self.tracker.best_epoch,
            best_value=self.tracker.best_value,
            final_metrics=self.metrics,
            device=str(self.dev),
            n_parameters=self.n_parameters,
        )

    def finish(self, model_path: Path | None, bundle: BundleTarget | None) -> TrainResult:
        """The run succeeded: the weights it keeps (the best epoch's when asked), saved,
        and with ``bundle`` the rest of the bundle beside them."""
        restored = self.tracker.restore_best_weights and self.tracker.restore(self.model)
        epoch = self.tracker.best_epoch if restored else self.completed
        metrics = self.tracker.best_metrics if restored else self.metrics
        result = self.outcome("succeeded")
        result.saved_epoch, result.saved_metrics = epoch, metrics
        if model_path is not None:
            _save_to(model_path, lambda tmp: save_weights(self.model, tmp, self.data))
        if bundle is not None and epoch is not None:
            bundle.dir.mkdir(parents=True, exist_ok=True)
            save_weights(self.model, bundle.dir / WEIGHTS, self.data)
            result.has_bundle = self._write_bundle(bundle, epoch, restored, metrics)
        return result

    def _write_bundle(
        self, bundle: BundleTarget, epoch: int, restored: bool, metrics: dict[str, float] | None
    ) -> bool:
        try:
            write_bundle(
                bundle,
                spec=self.spec,
                data=self.data,
                model=self.model,
                saved=saved_weights(epoch=epoch, restored=restored, metrics=metrics),
                n_parameters=self.n_parameters,
            )
        except Exception:
            # The weights are good and saved: a bundle that cannot be described costs
            # the bundle (has_bundle false), not the run.
            log.exception("could not write the bundle's manifest; model.pt only")
            for name in (MANIFEST, ONNX):
                (bundle.dir / name).unlink(missing_ok=True)
            return False
        return True
