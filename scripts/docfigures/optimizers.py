"""Figures of docs/optimizers.md: how long Adam's two ε placements stay apart.

torch's Adam divides by √v̂_t + ε. Kingma & Ba's "efficient" ordering, which TensorFlow
and Keras use, divides the uncorrected √v_t by ε̂ and moves the bias corrections into the
rate; with the same number for ε and ε̂ that is torch's form with ε/√(1 − β2^t) in place
of ε, which only fades as β2^t does. Measured on torch's own Adam: a parameter whose
gradient is ε itself (where ε matters most) takes both updates, step by step.
"""

from __future__ import annotations

import math

from scripts.docfigures.core import Near, Source, Value

STEPS = 10_000


def adam_eps() -> dict[str, Value]:
    import torch

    lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    g = eps
    m = v = 0.0
    last_apart: dict[float, int] = {0.1: 0, 0.01: 0, 0.001: 0}
    before = 0.0
    for t in range(1, STEPS + 1):
        p.grad = torch.full_like(p, g)
        opt.step()
        torch_step = before - p.item()
        before = p.item()
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        rate = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        efficient_step = rate * m / (math.sqrt(v) + eps)
        apart = abs(torch_step - efficient_step) / abs(torch_step)
        for threshold in last_apart:
            if apart > threshold:
                last_apart[threshold] = t
    return {
        "steps_apart_10pct": last_apart[0.1],
        "steps_apart_1pct": last_apart[0.01],
        "steps_apart_permille": last_apart[0.001],
    }


SOURCES = [
    Source(
        name="adam-eps",
        about="docs/optimizers.md: steps over which Adam's two ε placements differ",
        command=".venv/bin/python scripts/docs_check.py regenerate adam-eps",
        cheap=True,
        computes=adam_eps,
        rules=(("*", Near(abs=2, why="float64 arithmetic on one scalar: two steps either way")),),
    ),
]
