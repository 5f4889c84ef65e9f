"""The optimization lab's job kinds: an LR range test, and a loss landscape of a finished
job. Both are jobs (same table, queue, leases, metrics store) whose spec says ``kind``.

- ``lr_range_test`` (Leslie Smith, 2017, "Cyclical Learning Rates for Training Neural
  Networks", section 3.3): train the spec's model and optimizer for up to ``steps`` steps
  while the learning rate rises from ``lr_min`` to ``lr_max``; each step's (lr, loss,
  smoothed loss) is one metrics row. ``lr: "auto"`` on an optimizer and
  ``one_cycle.max_lr: "auto"`` run one first, with these settings, and train with its
  suggestion.
- ``landscape`` (Li et al., 2018, "Visualizing the Loss Landscape of Neural Nets"): the
  loss along the line from a finished job's initial to its final weights, and on a 2-D
  grid around its final weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from service.spec.common import SpecModel

#: What ``"auto"`` takes from a range test: see :class:`RangeTest.suggestion`.
SUGGESTION_RULES: tuple[str, ...] = ("steepest", "min_div_10", "valley")
SuggestionRule = Literal["steepest", "min_div_10", "valley"]
#: The fields that may be ``"auto"`` (``JobSpec.auto_lr``).
AutoField = Literal["optimizer.lr", "schedule.max_lr"]
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Rate = Annotated[StrictFloat, Field(gt=0.0, le=1000.0)]
#: Significant digits of a rate a range test picks ("auto" rates, a sweep's "auto" ends).
AUTO_DIGITS = 3


def round_rate(lr: float) -> float:
    """``lr`` to ``AUTO_DIGITS`` significant digits, as "auto" records it."""
    return float(f"{lr:.{AUTO_DIGITS}g}")


class RangeTest(SpecModel):
    lr_min: Rate = Field(1e-7, description="The rate of the first step.")
    lr_max: Rate = Field(10.0, description="The rate of the last step.")
    steps: StrictInt = Field(
        100, ge=10, le=2000, description="Steps at most (one batch each, epochs wrap around)."
    )
    mode: Literal["exponential", "linear"] = Field(
        "exponential",
        description="How the rate rises: geometrically (lr_min·(lr_max/lr_min)^(i/(N−1))) "
        "or linearly from lr_min to lr_max.",
    )
    smoothing: StrictFloat = Field(
        0.98,
        ge=0.0,
        lt=1.0,
        description="β of the bias-corrected exponential moving average of the loss "
        "(0: no smoothing).",
    )
    diverge_factor: StrictFloat = Field(
        4.0,
        gt=1.0,
        le=1e6,
        description="Stop once the smoothed loss exceeds this multiple of its best so far.",
    )
    suggestion: SuggestionRule | None = Field(
        None,
        description='The rule `"auto"` uses: `steepest` (the steepest descent of the '
        "smoothed loss against log lr), `min_div_10` (the rate at the smoothed loss's "
        "minimum, divided by 10) or `valley` (the middle of the longest stretch of "
        "descent before the minimum). Default: `min_div_10` for a one-cycle peak "
        "(`schedule.max_lr`: the cycle only touches it briefly, between warm-up and "
        "annealing), `valley` for a rate used throughout (`optimizer.lr`).",
    )

    def rule_for(self, fields: Sequence[str]) -> str:
        """The rule ``"auto"`` takes for ``fields`` (see ``suggestion``)."""
        if self.suggestion is not None:
            return self.suggestion
        return "min_div_10" if "schedule.max_lr" in fields else "valley"

    @model_validator(mode="after")
    def _rising(self) -> RangeTest:
        if self.lr_min >= self.lr_max:
            raise ValueError("lr_min must be below lr_max")
        return self


class Interpolation(SpecModel):
    points: StrictInt = Field(
        61,
        ge=3,
        le=401,
        description="Points along the line; the default 61 over −0.25…1.25 puts points at "
        "α = 0 and α = 1 exactly.",
    )
    alpha_min: StrictFloat = Field(
        -0.25, ge=-10.0, le=10.0, description="θ(α) = (1−α)·θ_initial + α·θ_final from here…"
    )
    alpha_max: StrictFloat = Field(1.25, ge=-10.0, le=10.0, description="…to here.")

    @model_validator(mode="after")
    def _ordered(self) -> Interpolation:
        if self.alpha_min >= self.alpha_max:
            raise ValueError("alpha_min must be below alpha_max")
        return self


class Landscape(SpecModel):
    job_id: str = Field(
        description="The finished (succeeded) job whose weights are studied; its dataset, "
        "model and seed are used.",
        json_schema_extra={"pattern": UUID_PATTERN},
    )
    split: Literal["train", "val"] = Field(
        "val", description="The samples the loss is measured on (the job's own split)."
    )
    resolution: StrictInt = Field(
        21,
        ge=3,
        le=101,
        description="Grid points along each axis; odd, so the centre is the final weights.",
    )
    span: StrictFloat = Field(
        1.0,
        gt=0.0,
        le=100.0,
        description="The grid covers −span…span along each direction (filter-normalised "
        "directions: 1 is the size of the weights themselves). With `directions: pca` "
        "the grid covers the trajectory instead, with a margin.",
    )
    directions: Literal["random", "pca"] = Field(
        "random",
        description="`random`: two Gaussian directions, filter-wise normalised (Li et al.); "
        "`pca`: the first two principal components of the job's per-epoch weights, with "
        "the trajectory projected onto the surface (the job must have run with "
        "`training.save_trajectory: true`).",
    )
    seed: StrictInt = Field(0, ge=0, le=2**32 - 1, description="Seeds the random directions.")
    interpolation: Interpolation = Field(default_factory=Interpolation)

    @field_validator("resolution")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("must be odd, so the final weights are a grid point")
        return v


#: ``kind`` of a job (``service.jobs.models.JobKind`` names the same values).
JobKind = Literal["train", "lr_range_test", "landscape"]
