"""Synthetic datasets that scikit-learn has no generator for, written with numpy.

Each is a pure function of its arguments: the same seed gives the same points.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_regression


def spirals(
    n_samples: int, *, n_classes: int, turns: float, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n_classes`` interleaved arms around the origin, each making ``turns`` turns.

    A point's radius r is uniform in [0, 1] and its angle 2π·(turns·r + k/n_classes)
    for arm k; ``noise`` jitters the angle (radians), so the arms blur most at the rim,
    as in the classic CS231n spiral.
    """
    rng = np.random.default_rng(seed)
    label = np.arange(n_samples) % n_classes  # as even a split between arms as n allows
    radius = rng.uniform(0.0, 1.0, n_samples)
    angle = 2 * np.pi * (turns * radius + label / n_classes)
    angle += noise * rng.standard_normal(n_samples)
    features = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return features, label.astype(np.int64)


def xor(n_samples: int, *, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points in [−1, 1]², labelled 1 where x·y > 0; noise is added after labelling,
    so points near the axes may land in the "wrong" quadrant."""
    rng = np.random.default_rng(seed)
    clean = rng.uniform(-1.0, 1.0, (n_samples, 2))
    label = (clean[:, 0] * clean[:, 1] > 0).astype(np.int64)
    return clean + noise * rng.standard_normal((n_samples, 2)), label


def linear_regression(
    n_samples: int, *, n_features: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """y = X·w + b + ε with X ~ N(0, I) and scikit-learn's random w (entries in [0, 100)).

    ``noise`` is relative to the signal: ε ~ N(0, (noise·‖w‖)²), and ‖w‖ is the standard
    deviation of X·w, so noise 0.1 caps R² near 0.99 whatever n_features is.
    """
    features, target, coef = make_regression(
        n_samples,
        n_features,
        n_informative=n_features,
        coef=True,
        shuffle=False,  # rows are i.i.d. already
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    scale = float(np.linalg.norm(coef))
    bias = rng.uniform(-1.0, 1.0) * scale
    target = target + bias + noise * scale * rng.standard_normal(n_samples)
    return features, target
