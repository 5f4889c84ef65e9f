"""The playground's request and response, and the checks a request needs beyond its
fields' own: the pieces that must fit together (a schedule and the number of steps) and
the caps that keep one request from hogging the API.

A run's ``optimizer`` and ``schedule`` are the job spec's own models (``OptimizerSpec``,
``ScheduleSpec``), so they accept exactly what a job accepts. In the playground one step
is one epoch of one batch: epoch-stepped schedules change the rate every step,
``warmup_epochs`` counts steps, and ``reduce_on_plateau`` watches the function value
(``val_loss``: at the point the step arrived at, the default; ``train_loss``: at the
point the gradient was taken).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt, field_validator

from service.playground.functions import BOUND, SURFACES, Surface, make_surface
from service.spec.common import FieldError, SpecModel
from service.spec.optimizers import OptimizerSpec
from service.spec.schedules import (
    Constant,
    Cosine,
    MultiStep,
    OneCycle,
    ReduceOnPlateau,
    ScheduleSpec,
)
from service.text import LABEL_PATTERN, label_or_none

__all__ = [
    "EXAMPLE_REQUEST",
    "MAX_RUNS",
    "MAX_STEPS",
    "MAX_TOTAL_STEPS",
    "MONITORS",
    "FunctionSpec",
    "PlaygroundRequest",
    "PlaygroundResult",
    "PlaygroundRun",
    "RunResult",
    "check_request",
]

#: Steps of one run.
MAX_STEPS = 10_000
#: Runs (optimizer and schedule pairs) in one request.
MAX_RUNS = 10
#: Steps of all runs together, by default (``DESCENT_PLAYGROUND_MAX_STEPS``): a request
#: costs about 30–60 µs per step here.
MAX_TOTAL_STEPS = 20_000
#: What reduce_on_plateau may watch: the function value after the step or before it.
MONITORS = ("val_loss", "train_loss")


# -- the functions -------------------------------------------------------------------


def _doc(cls: type[Surface]) -> str:
    s = make_surface(cls.name)
    minima = "; ".join(f"({p.x:.6g}, {p.y:.6g})" for p in s.minima if p.kind == "global")
    w = cls.window
    return (
        f"{cls.title}: {cls.formula}. Global minima: {minima or 'none (unbounded below)'}. "
        f"Default start ({cls.start[0]:g}, {cls.start[1]:g}); window "
        f"[{w.x_min:g}, {w.x_max:g}] × [{w.y_min:g}, {w.y_max:g}]."
    )


class Rosenbrock(SpecModel):
    __doc__ = _doc(SURFACES["rosenbrock"])
    name: Literal["rosenbrock"]


class Beale(SpecModel):
    __doc__ = _doc(SURFACES["beale"]) + " Saddles at (0, 1) and (0.1005, −2.6445)."
    name: Literal["beale"]


class Himmelblau(SpecModel):
    __doc__ = _doc(SURFACES["himmelblau"]) + " Four saddles and a local maximum between them."
    name: Literal["himmelblau"]


class Rastrigin(SpecModel):
    __doc__ = (
        _doc(SURFACES["rastrigin"])
        + " A local minimum near every integer point; those with |x|, |y| ≤ 5 are listed."
    )
    name: Literal["rastrigin"]


class Saddle(SpecModel):
    __doc__ = (
        _doc(SURFACES["saddle"])
        + " A saddle point at the origin. The default start turns with θ: it stays a hair "
        "off the stable manifold."
    )
    name: Literal["saddle"]
    angle: float = Field(
        0.0,
        ge=-180.0,
        le=180.0,
        description="θ in degrees: the surface turned by θ (45: f = 2xy). Gradient descent "
        "behaves the same at any θ; optimizers that scale each coordinate do not.",
    )


class MonkeySaddle(SpecModel):
    __doc__ = (
        _doc(SURFACES["monkey_saddle"])
        + " A degenerate saddle at the origin (zero Hessian), with three valleys."
    )
    name: Literal["monkey_saddle"]


class Quadratic(SpecModel):
    __doc__ = _doc(SURFACES["quadratic"])
    name: Literal["quadratic"]
    condition_number: StrictFloat = Field(
        10.0,
        ge=1.0,
        le=1e6,
        description="κ: the ratio of the Hessian's eigenvalues (κ and 1). Gradient descent "
        "is stable for lr < 2/κ.",
    )
    angle: StrictFloat = Field(
        0.0,
        ge=-180.0,
        le=180.0,
        description="θ in degrees: the valley's direction from the x axis.",
    )


FunctionSpec = Annotated[
    Rosenbrock | Beale | Himmelblau | Rastrigin | Saddle | MonkeySaddle | Quadratic,
    Field(discriminator="name"),
]


def surface_of(spec: Any) -> Surface:
    """The surface a ``FunctionSpec`` names, with its parameters."""
    return make_surface(spec.name, **spec.model_dump(exclude={"name"}))


# -- the request ---------------------------------------------------------------------

Coordinate = Annotated[StrictFloat, Field(ge=-BOUND, le=BOUND)]


class PlaygroundRun(SpecModel):
    """One optimizer (and schedule) to run from the start point."""

    label: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The run's name in the legend; default: the optimizer, its rate, its "
        "settings that are not at their defaults and the schedule (`sgd lr=0.001 "
        "momentum=0.9`, `adam lr=0.1 + cosine`).",
        json_schema_extra={"pattern": LABEL_PATTERN},
    )
    optimizer: OptimizerSpec = Field(
        description='Exactly as in a job spec (`{"name": "adam", "lr": 0.1}`), but `lr` '
        'must be a number: `"auto"` needs a model and data to test.'
    )
    schedule: ScheduleSpec = Field(
        default_factory=lambda: Constant(name="constant"),
        description="Exactly as in a job spec. One step is one epoch here: epoch-stepped "
        "schedules change the rate every step and warmup_epochs counts steps; "
        "reduce_on_plateau watches the function value (monitor `val_loss`: after the "
        "step, the default; `train_loss`: before it).",
    )

    @field_validator("label")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        return label_or_none(v)


class PlaygroundRequest(SpecModel):
    """Optimizers racing on a classic 2-D test function from one start point."""

    function: FunctionSpec = Field(description="The surface, by `name`.")
    start: tuple[Coordinate, Coordinate] | None = Field(
        None, description="(x, y) to start from; default: the function's own (see its schema)."
    )
    steps: StrictInt = Field(
        500,
        ge=1,
        le=MAX_STEPS,
        description=f"Optimizer steps per run; steps × runs at most {MAX_TOTAL_STEPS:,} "
        "(the server's DESCENT_PLAYGROUND_MAX_STEPS).",
    )
    tolerance: StrictFloat = Field(
        1e-3,
        gt=0.0,
        le=100.0,
        description="A run has reached a minimum at the first step whose point lies within "
        "this (Euclidean) distance of one of the function's listed minima.",
    )
    runs: list[PlaygroundRun] = Field(
        min_length=1,
        max_length=MAX_RUNS,
        description=f"1 to {MAX_RUNS} optimizers, each with an optional schedule and label.",
    )


def check_request(
    req: PlaygroundRequest, max_total_steps: int = MAX_TOTAL_STEPS
) -> list[FieldError]:
    """What the fields' own validation cannot see: schedules against the number of steps,
    ``"auto"`` rates, and the cap on the total work (the server's
    ``DESCENT_PLAYGROUND_MAX_STEPS``); empty when the request can run."""
    errors: list[FieldError] = []
    total = req.steps * len(req.runs)
    if total > max_total_steps:
        errors.append(
            FieldError(
                "steps",
                f"{req.steps:,} steps × {len(req.runs)} runs = {total:,} steps, above this "
                f"server's cap of {max_total_steps:,} per request; use fewer steps or runs",
            )
        )
    for i, run in enumerate(req.runs):
        errors += _run_errors(f"runs.{i}", run, req.steps)
    return errors


def _run_errors(at: str, run: PlaygroundRun, steps: int) -> list[FieldError]:
    errors: list[FieldError] = []
    opt, sched = run.optimizer, run.schedule
    auto = '"auto" runs an LR range test on a model and data; the playground has neither: '
    if opt.lr == "auto":
        errors.append(FieldError(f"{at}.optimizer.lr", auto + "give a number"))
    if isinstance(sched, OneCycle) and sched.max_lr == "auto":
        errors.append(FieldError(f"{at}.schedule.max_lr", auto + "give a number, or leave it out"))
    if sched.warmup_epochs >= steps:
        errors.append(
            FieldError(
                f"{at}.schedule.warmup_epochs",
                f"{sched.warmup_epochs} warm-up steps leave none of the {steps} steps for "
                "the schedule itself (one step is one epoch here)",
            )
        )
        return errors
    left = steps - sched.warmup_epochs  # e in the schedules' rules runs over these
    if isinstance(sched, MultiStep) and sched.milestones[-1] >= left:
        errors.append(
            FieldError(
                f"{at}.schedule.milestones",
                f"milestone {sched.milestones[-1]} is not before the last step after warm-up "
                f"({left - 1}); it would never apply (one step is one epoch here)",
            )
        )
    if isinstance(sched, Cosine) and sched.t_max is not None and sched.t_max > left:
        errors.append(
            FieldError(
                f"{at}.schedule.t_max",
                f"{sched.t_max} is longer than the {left} steps after warm-up; the rate "
                "would never reach eta_min (one step is one epoch here)",
            )
        )
    if isinstance(sched, OneCycle) and sched.cycle_momentum and not opt.has_momentum:
        what = "adagrad has" if opt.name == "adagrad" else f"{opt.name} with momentum 0 has"
        errors.append(
            FieldError(
                f"{at}.schedule.cycle_momentum",
                f"{what} no momentum or β1 to cycle; set cycle_momentum to false",
                [False],
            )
        )
    if isinstance(sched, ReduceOnPlateau) and sched.monitor not in MONITORS:
        errors.append(
            FieldError(
                f"{at}.schedule.monitor",
                f"unknown metric {sched.monitor!r}: in the playground reduce_on_plateau "
                "watches the function value, after the step (val_loss) or before it "
                "(train_loss)",
                list(MONITORS),
            )
        )
    return errors


# -- the response --------------------------------------------------------------------


class PointRead(BaseModel):
    x: float
    y: float
    value: float = Field(description="f(x, y).")
    kind: Literal["global", "local", "saddle"]


class WindowRead(BaseModel):
    """A suggested plotting window: the function's own, grown to hold the start point."""

    x: tuple[float, float]
    y: tuple[float, float]


class PlaygroundTrajectory(BaseModel):
    # Not `Trajectory`: a landscape's result has one (service.spec.results), and client
    # generators name their classes after the schemas' titles.

    points: list[tuple[float, float]] = Field(
        description="(x, y) before the first step, then after each step taken: "
        "`steps_taken` + 1 points."
    )
    values: list[float] = Field(description="f at each point.")
    lr: list[float] = Field(description="The rate each step applied: `steps_taken` values.")
    momentum: list[float] | None = Field(
        description="The momentum (SGD, RMSprop) or β1 (Adam family) each step applied, "
        "when the schedule cycles it (one_cycle); else null."
    )


class RunResult(BaseModel):
    label: str
    optimizer: OptimizerSpec = Field(description="As run, every default filled in.")
    schedule: ScheduleSpec = Field(description="As run, every default filled in.")
    status: Literal["completed", "diverged"] = Field(
        description="`completed`: every step ran; `diverged`: a step produced a non-finite "
        f"point, value or gradient, or left |x|, |y| ≤ {BOUND:g}, and the run stopped there."
    )
    steps_taken: int
    diverged_step: int | None = Field(description="The step that diverged (not in the path).")
    reason: str | None = Field(description="Why the run diverged, in words.")
    reached_step: int | None = Field(
        description="The first step (0: the start) whose point lies within `tolerance` of a "
        "listed minimum; null if none did."
    )
    reached_minimum: int | None = Field(description="Which one: an index into `minima`.")
    final_point: tuple[float, float]
    final_value: float
    trajectory: PlaygroundTrajectory


class PlaygroundResult(BaseModel):
    function: FunctionSpec
    title: str
    formula: str
    start: tuple[float, float]
    steps: int
    tolerance: float
    bound: float = Field(description="Runs stop once |x| or |y| exceeds this.")
    minima: list[PointRead] = Field(
        description="Known minima, global ones first: what `reached_step` measures against "
        "(Rastrigin: its global minimum and the local ones with |x|, |y| ≤ 5)."
    )
    saddle_points: list[PointRead]
    window: WindowRead
    runs: list[RunResult]


EXAMPLE_REQUEST: dict[str, Any] = {
    "function": {"name": "rosenbrock"},
    "start": [-1.2, 1.0],
    "steps": 500,
    "tolerance": 0.01,
    "runs": [
        {"label": "gradient descent", "optimizer": {"name": "sgd", "lr": 0.0019}},
        {"label": "momentum 0.9", "optimizer": {"name": "sgd", "lr": 0.0019, "momentum": 0.9}},
        {
            "label": "nesterov 0.9",
            "optimizer": {"name": "sgd", "lr": 0.0012, "momentum": 0.9, "nesterov": True},
        },
        {"label": "adam", "optimizer": {"name": "adam", "lr": 0.1}},
        {
            "label": "adam + cosine",
            "optimizer": {"name": "adam", "lr": 0.1},
            "schedule": {"name": "cosine"},
        },
    ],
}
