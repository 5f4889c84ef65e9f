"""Losses and the numbers recorded every epoch (names from ``service.spec.common``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from service.spec.common import Task

#: Cross-entropy on logits for classification (binary too: two logits, not one sigmoid,
#: so every classifier has the same head); mean squared error for regression.
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "classification": F.cross_entropy,
    "regression": F.mse_loss,
}

# Validation runs in chunks so a large split cannot exhaust memory with activations.
EVAL_CHUNK = 4096


class EpochTotals:
    """Running sums over one epoch's batches.

    They stay on the device as tensors, so adding to them never makes a step wait for
    the GPU; ``summary`` reads them once, at the end of the epoch. ``target_scale`` is
    the regression targets' scale (1 when unscaled): ``train_loss`` is the MSE the
    optimizer minimised, ``train_mse`` the same in the target's own units.
    """

    def __init__(self, task: Task, device: torch.device, target_scale: float = 1.0) -> None:
        self.task = task
        self.target_scale = target_scale
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.grad_norm_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.samples = 0
        self.steps = 0

    @torch.no_grad()
    def add(
        self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor, norm: torch.Tensor
    ) -> None:
        n = len(target)
        self.loss_sum += loss.double() * n  # weighted: the last batch may be smaller
        if self.task == "classification":
            self.correct += (output.argmax(dim=1) == target).sum()
        self.grad_norm_sum += norm.double()
        self.samples += n
        self.steps += 1

    def summary(self) -> dict[str, float]:
        train_loss = self.loss_sum.item() / self.samples
        out = {"train_loss": train_loss}
        if self.task == "classification":
            out["train_accuracy"] = self.correct.item() / self.samples
        else:
            # The loss is the MSE of scaled targets: (s·a − s·b)² = s²·(a − b)².
            out["train_mse"] = train_loss * self.target_scale**2
        out["grad_norm"] = self.grad_norm_sum.item() / self.steps
        return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    task: Task,
    *,
    target_shift: float = 0.0,
    target_scale: float = 1.0,
) -> dict[str, float]:
    """Validation metrics over the whole split, in eval mode (dropout off, batch-norm
    running statistics), computed in float64 so that tiny differences show.

    Regression targets ``y`` (and so the model's outputs) may be scaled, as
    ``(y − target_shift) / target_scale``: ``val_loss`` is the MSE on that scale, the
    one the optimizer minimises; ``val_mse``, ``val_mae`` and ``val_r2`` are computed
    after mapping outputs and targets back to the target's own units.
    """
    model.eval()
    output = torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])
    output = output.double()
    if task == "classification":
        return {
            "val_loss": F.cross_entropy(output, y).item(),
            "val_accuracy": (output.argmax(dim=1) == y).double().mean().item(),
        }
    target = y.double()
    loss = (output - target).pow(2).mean().item()
    if target_shift != 0.0 or target_scale != 1.0:
        output = output * target_scale + target_shift
        target = target * target_scale + target_shift
    error = output - target
    mse = error.pow(2).mean().item()
    ss_res = error.pow(2).sum().item()
    ss_tot = (target - target.mean()).pow(2).sum().item()
    # A constant target has no variance to explain: scikit-learn's r2_score convention.
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return {"val_loss": loss, "val_mse": mse, "val_mae": error.abs().mean().item(), "val_r2": r2}
