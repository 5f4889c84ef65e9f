"""The training loop: a job spec in, one report per epoch out, a result at the end.

Read ``train`` top to bottom: set up (device, seed, data, model, optimizer, schedule),
restore a checkpoint when resuming, then for each epoch shuffle, step through the
batches, validate, take a checkpoint, report, and decide whether to go on. The whole
dataset lives on the device, so a batch is an index into it (no DataLoader, no worker
processes, no host-to-device copies per step).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from service.spec import TASK_METRICS, JobSpec, monitorable_metrics
from service.spec.regularization import Regularization
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
from workers.engine.report import Reporter
from workers.engine.schedules import build_schedule, momentum_metric, set_rate

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


#: Keys the saved state dict gets when regression targets were scaled: the model predicts
#: ``(y − target_shift) / target_scale``, so ``y = output · target_scale + target_shift``.
#: Pop them before ``model.load_state_dict``.
TARGET_KEYS: tuple[str, str] = ("target_shift", "target_scale")


def _save(model: nn.Module, path: Path, extra: dict[str, torch.Tensor] | None = None) -> None:
    # Write aside and rename, so a reader never finds half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state | (extra or {}), tmp)
    os.replace(tmp, path)


def _target_state(data: SplitData) -> dict[str, torch.Tensor]:
    """What the saved weights need to predict in the target's units: one value per
    output, float32 like the weights; nothing when the targets were not scaled."""
    if not data.target_scaled:
        return {}
    values = (data.target_shift, data.target_scale)
    return {
        k: torch.tensor([v], dtype=torch.float32) for k, v in zip(TARGET_KEYS, values, strict=True)
    }


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
) -> TrainResult:
    """Train ``spec`` to the end, to divergence, to early stopping, to cancellation or
    to its time limit.

    ``device`` overrides ``spec.training.device``. The model's ``state_dict`` is saved to
    ``model_path`` only when the run succeeds, with ``TARGET_KEYS`` added when
    regression targets were standardised. The same spec gives the same metrics on
    the same CPU, run after run (timings aside).

    Each completed epoch is reported with a ``Checkpoint``; ``resume`` continues from
    one at the epoch after it, and on the same CPU the rest of the run is exactly what
    an uninterrupted run would have been. A checkpoint at or past the last epoch, or
    at an early stop, finishes the run at once. ``time_limit_seconds`` bounds the
    seconds spent in ``train``, summed over the attempts a checkpoint carries on; it is
    checked at every batch boundary. A ``StopTraining`` raised by the reporter
    propagates unchanged; so do out-of-memory errors (see ``is_out_of_memory``).

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
    dev = resolve_device(device or spec.training.device)
    seed = spec.training.seed
    data = load_dataset(spec.dataset, datasets_dir=datasets_dir, device=dev)
    _check_monitors(spec, data.task)
    model, shuffle = initial_model(spec, data, dev)
    stepper = Stepper.build(spec, model)
    optimizer, params = stepper.optimizer, stepper.params
    n_parameters = sum(p.numel() for p in params)
    loss_fn = LOSSES[data.task]
    trajectory = trajectory_dir if spec.training.save_trajectory else None

    epochs = spec.training.epochs
    n_train = len(data.y_train)
    batches = epoch_batches(spec, n_train, model)
    schedule = build_schedule(
        spec.schedule,
        base_lr=spec.optimizer.lr,
        epochs=epochs,
        steps_per_epoch=len(batches),
        has_momentum=spec.optimizer.has_momentum,
    )
    cycled = momentum_metric(optimizer) if schedule.cycles_momentum else None
    early = spec.regularization.early_stopping
    tracker = (
        EarlyStopping.from_spec(early)
        if early is not None
        else EarlyStopping("val_loss")  # keeps score only: best_epoch / best_value
    )
    log.info(
        "training %s on %s: %d parameters, %d train / %d val samples, %d steps per epoch",
        spec.name or spec.default_name(),
        dev,
        n_parameters,
        n_train,
        len(data.y_val),
        len(batches),
    )

    metrics: dict[str, float] = {}
    completed = 0
    stop_epoch: int | None = None
    spent_before = 0.0  # training seconds of earlier attempts

    if resume is not None:
        # Everything that changes as training goes on comes back as it was when the
        # checkpoint's epoch ended. The split and scaling are not stored: load_dataset
        # recomputes them identically from the spec.
        saved = resume.state
        try:
            model.load_state_dict(saved["model"])
            # Copied: the optimizer would update the checkpoint's tensors in place.
            optimizer.load_state_dict(cpu_copy(saved["optimizer"]))
            schedule.load_state_dict(saved["schedule"])
            tracker.load_state_dict(saved["early_stopping"])
            exact = set_rng_state(saved["rng"], dev, shuffle, reseed=seed + resume.epoch)
            stop_epoch, spent_before = saved["stop_epoch"], saved["elapsed_seconds"]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            if is_out_of_memory(exc):
                raise  # the worker's trouble, not the checkpoint's
            raise CheckpointError(
                f"the checkpoint of epoch {resume.epoch} does not fit this job "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        completed, metrics = resume.epoch, dict(resume.metrics)
        log.info("resuming after epoch %d of %d", completed, epochs)
        if not exact:
            log.warning(
                "the checkpoint was taken on %s, this run is on %s: its random streams "
                "cannot carry over, so they were reseeded",
                saved["rng"]["device"],
                dev.type,
            )
    else:
        _save_trajectory(model, trajectory, 0)

    def elapsed() -> float:
        return spent_before + time.perf_counter() - clock

    def result(status: Status, reason: str | None = None, stop: int | None = None) -> TrainResult:
        return TrainResult(
            status=status,
            reason=reason,
            epochs_completed=completed,
            stop_epoch=stop,
            best_epoch=tracker.best_epoch,
            best_value=tracker.best_value,
            final_metrics=metrics,
            device=str(dev),
            n_parameters=n_parameters,
        )

    # An early stop already recorded in the checkpoint leaves nothing to train.
    for epoch in range(completed if stop_epoch is None else epochs, epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, generator=shuffle, device=dev)
        totals = EpochTotals(data.task, dev, target_scale=data.target_scale)
        for step, (lo, hi) in enumerate(batches):
            if reporter.should_stop():
                return result("cancelled", f"cancelled by request after {completed} epoch(s)")
            if time_limit_seconds is not None and elapsed() > time_limit_seconds:
                return result(
                    "timed_out",
                    f"exceeded the time limit of {time_limit_seconds:g} s "
                    f"after {completed} epoch(s)",
                )
            idx = order[lo:hi]
            x, y = data.x_train[idx], data.y_train[idx]
            lr, momentum = schedule.lr(epoch, step), schedule.momentum(epoch, step)
            set_rate(optimizer, lr, momentum)

            output = model(x)
            loss = loss_fn(output, y)
            # One host sync per step: the price of stopping at the very step that diverged.
            if not torch.isfinite(loss):
                return result(
                    "diverged",
                    f"train loss became {loss.item():g} at epoch {epoch + 1}, step {step + 1} "
                    f"(lr {lr:g}): the learning rate is likely too high",
                )
            norm = stepper.update(loss, lr)
            totals.add(loss.detach(), output.detach(), y, norm)

        train_seconds = time.perf_counter() - started
        val = evaluate(
            model,
            data.x_val,
            data.y_val,
            data.task,
            target_shift=data.target_shift,
            target_scale=data.target_scale,
        )
        if not math.isfinite(val["val_loss"]):
            return result(
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
        if cycled is not None and momentum is not None:
            metrics[cycled] = momentum
        metrics["grad_norm"] = measured["grad_norm"]
        metrics["weight_norm"] = total_norm(params).item()
        metrics["epoch_seconds"] = time.perf_counter() - started
        metrics["samples_per_second"] = totals.samples / max(train_seconds, 1e-9)
        completed = epoch + 1
        log.debug("epoch %d: %s", completed, metrics)

        # The schedule and early stopping see the epoch before the checkpoint is taken,
        # so that resuming from it never replays their decisions.
        if schedule.monitor is not None:
            schedule.on_epoch_end(metrics[schedule.monitor])
        if tracker.update(completed, metrics[tracker.monitor], model):
            stop_epoch = completed
        # CPU copies (one of the model, one of the optimizer's state; early stopping's
        # best weights are shared): the checkpoint must not change as training goes on.
        state: dict[str, Any] = {
            "model": cpu_copy(model.state_dict()),
            "optimizer": cpu_copy(optimizer.state_dict()),
            "schedule": schedule.state_dict(),
            "early_stopping": tracker.state_dict(),
            "rng": rng_state(dev, shuffle),
            "stop_epoch": stop_epoch,
            "elapsed_seconds": elapsed(),
        }
        _save_trajectory(model, trajectory, completed)
        pruned = reporter.report(completed, metrics, Checkpoint(completed, metrics, state))
        if pruned is not None:
            log.info("pruned at epoch %d: %s", completed, pruned)
            return result("pruned", pruned)
        if stop_epoch is not None:
            log.info("early stopping at epoch %d (best: epoch %s)", completed, tracker.best_epoch)
            break

    if tracker.restore_best_weights:
        tracker.restore(model)
    if model_path is not None:
        _save(model, model_path, _target_state(data))
    return result("succeeded", stop=stop_epoch)
