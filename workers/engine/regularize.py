"""Regularizers the loop applies around each step (dropout and batch norm live on the model).

"Weights" here means parameters with more than one dimension: the matrices of linear
layers and the kernels of convolutions. Biases and batch-norm scales are 1-D; shrinking
them towards zero does not simplify the model, so no penalty or decay touches them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from service.spec import metric_mode
from service.spec.regularization import EarlyStopping as EarlyStoppingSpec
from service.spec.regularization import GradClip


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.dim() > 1]


def penalty(weights: list[nn.Parameter], *, l1: float, l2: float) -> torch.Tensor | None:
    """l1·Σ|θ| + l2·Σθ² over ``weights``; None when both are off (nothing to add)."""
    terms = []
    if l1 > 0:
        terms.append(l1 * sum(w.abs().sum() for w in weights))
    if l2 > 0:
        terms.append(l2 * sum(w.pow(2).sum() for w in weights))
    return sum(terms) if terms else None  # type: ignore[return-value]


@torch.no_grad()
def decay_weights_(weights: list[nn.Parameter], *, lr: float, weight_decay: float) -> None:
    """Decoupled weight decay, θ ← θ·(1 − η·λ), applied before the optimizer's step.

    Unlike an L2 term in the loss it never passes through an adaptive optimizer's
    per-parameter scaling, so every weight shrinks by the same factor (AdamW's insight,
    here for any optimizer).
    """
    if weight_decay > 0:
        for w in weights:
            w.mul_(1.0 - lr * weight_decay)


@torch.no_grad()
def total_norm(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all ``tensors`` taken together, as a 0-d tensor (no host sync)."""
    return torch.nn.utils.get_total_norm(list(tensors), norm_type=2.0)


def grad_norm(params: list[nn.Parameter]) -> torch.Tensor:
    """The L2 norm of all gradients together, the number clipping by norm compares."""
    return total_norm(p.grad for p in params if p.grad is not None)


def clip_gradients_(params: list[nn.Parameter], clip: GradClip | None) -> None:
    """Rescale gradients whose total norm exceeds ``max_norm``, or clamp each element to
    [−max_value, max_value]; the spec sets exactly one."""
    if clip is None:
        return
    if clip.max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, clip.max_norm, norm_type=clip.norm_type)
    elif clip.max_value is not None:
        torch.nn.utils.clip_grad_value_(params, clip.max_value)


class EarlyStopping:
    """Watches one metric, remembers its best epoch, and says when to stop.

    With ``patience`` None it only keeps score (the loop uses that to report the best
    val_loss of a run without early stopping). The best weights are copied to the CPU
    so a long run on a GPU does not hold two models in device memory.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "auto",
        patience: int | None = None,
        min_delta: float = 0.0,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        self.monitor = monitor
        self.start_from_epoch = start_from_epoch
        self.mode = metric_mode(monitor) if mode == "auto" else mode
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        #: The best epoch's metrics (all of them, as reported), when ``update`` had them.
        self.best_metrics: dict[str, float] | None = None
        self.bad_epochs = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_spec(cls, spec: EarlyStoppingSpec) -> EarlyStopping:
        return cls(
            spec.monitor,
            mode=spec.mode,
            patience=spec.patience,
            min_delta=spec.min_delta,
            restore_best_weights=spec.restore_best_weights,
            start_from_epoch=spec.start_from_epoch,
        )

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def update(
        self,
        epoch: int,
        value: float,
        model: nn.Module,
        metrics: dict[str, float] | None = None,
    ) -> bool:
        """Record ``epoch``'s value of the monitored metric; True when training should stop.
        ``metrics`` (the epoch's whole report) are kept when it is the best so far: they
        describe the weights ``restore`` puts back.

        Epochs up to ``start_from_epoch`` are not watched at all (as in Keras)."""
        if epoch <= self.start_from_epoch:
            return False
        if self.improved(value):
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_metrics = dict(metrics) if metrics is not None else None
            if self.restore_best_weights:
                self._best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
        else:
            self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to carry on judging; the settings come from the spec.

        The best weights are shared, not copied: ``update`` replaces them, never edits
        them in place, so the dict handed out stays as it was."""
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "bad_epochs": self.bad_epochs,
            "best_state": self._best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]
        # Checkpoints written before the key existed: the best epoch's metrics are unknown.
        self.best_metrics = state.get("best_metrics")
        self.bad_epochs = state["bad_epochs"]
        self._best_state = state["best_state"]

    def restore(self, model: nn.Module) -> bool:
        """Load the best epoch's weights into ``model``; False when there are none to load."""
        if self._best_state is None:
            return False
        model.load_state_dict(self._best_state)
        return True
