"""Statistics of a configuration over its seeds: one implementation for every place that
shows them, so a comparison's table (``GET /v1/sweeps/{id}/comparison``) and its chart's
band (``…/plots/comparison``) agree to the last digit on the same values.

SciPy gives Student's t quantile; it is imported on the first use, never when the API
starts (the API stays small and starts fast).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Spread", "spread", "t_quantile"]


@dataclass(frozen=True)
class Spread:
    """The mean of some values and how far they spread."""

    n: int
    mean: float | None  # None: no values
    #: The sample standard deviation (divided by n - 1); None under 2 values.
    std: float | None
    #: The 95% confidence interval of the mean, Student's t with n - 1 degrees of
    #: freedom; None under 2 values.
    ci95: tuple[float, float] | None


@functools.cache
def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (cached: a chart
    asks it once per epoch and configuration, with a handful of distinct ``df``)."""
    if df < 1:
        raise ValueError(f"Student's t needs at least 1 degree of freedom, not {df}")
    from scipy import stats

    return float(stats.t.ppf(q, df))


def spread(values: Sequence[float]) -> Spread:
    """Mean, standard deviation and 95% confidence interval of the mean of ``values``
    (finite numbers: the caller leaves out missing and non-finite ones)."""
    n = len(values)
    if n == 0:
        return Spread(0, None, None, None)
    mean = statistics.fmean(values)
    if n < 2:
        return Spread(n, mean, None, None)
    std = statistics.stdev(values)
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return Spread(n, mean, std, (mean - half, mean + half))
