"""Optimizers: ``torch.optim`` classes under the spec's names, built from its arguments."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from service.spec.optimizers import OptimizerBase

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "nadam": torch.optim.NAdam,
    "adamax": torch.optim.Adamax,
}


def build_optimizer(spec: OptimizerBase, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer ``spec`` names, over ``params``."""
    kwargs = spec.torch_kwargs()
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])  # torch indexes it; JSON gives a list
    return OPTIMIZERS[spec.name](params, **kwargs)  # type: ignore[attr-defined]
