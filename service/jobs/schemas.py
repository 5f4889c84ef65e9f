"""Request and response shapes of the jobs API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from service.jobs.states import JobKind, JobStatus
from service.openapi import inline_schema
from service.projects.schemas import Organised
from service.spec import JobSpec
from service.spec.results import (
    AutoLrRecord,
    AutoLrSummary,
    LandscapeRecord,
    RangeCurve,
    RangeTestRecord,
)

EXAMPLE_SPEC: dict[str, Any] = {
    "name": "digits-adam",
    "dataset": {"name": "digits", "val_fraction": 0.2, "scaling": "standard"},
    "model": {
        "kind": "mlp",
        "hidden": [128, 64],
        "activation": "relu",
        "batch_norm": False,
        "dropout": 0.1,
        "init": "he_normal",
    },
    "optimizer": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999], "weight_decay": 0.0},
    "schedule": {"name": "one_cycle", "max_lr": 0.01},
    "regularization": {
        "l1": 0.0,
        "l2": 0.0001,
        "early_stopping": {"monitor": "val_loss", "patience": 5},
        "grad_clip": {"max_norm": 1.0},
    },
    "training": {"epochs": 20, "batch_size": 32, "seed": 0, "device": "auto"},
}

#: A submit body with labels beside the spec's sections.
EXAMPLE_LABELLED: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "optimizer": {"name": "adam", "lr": 0.003},
    "project": "digits-baselines",
    "tags": {"stage": "baseline"},
    "note": "the reference run for this week's comparisons",
}


class JobCreate(JobSpec, Organised):
    """``POST /v1/jobs``: a job spec, with ``project``, ``tags`` and ``note`` beside its
    sections (they label the job and are not part of its stored spec)."""


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: JobKind
    status: JobStatus = Field(
        description="queued → running → succeeded | failed | cancelled | diverged | pruned"
    )
    status_reason: str | None = Field(None, description="Why a job failed, diverged or stopped.")
    task: str = Field(description="classification or regression")
    spec: dict[str, Any] = Field(description="The spec with every default filled in.")
    dataset_id: str | None
    n_parameters: int
    memory_estimate: int | None = Field(
        None, description="Estimated bytes for weights, gradients, optimizer state and data."
    )
    cancel_requested: bool
    epochs: int = Field(
        description="Epochs asked for; a range test: its steps; a landscape: its grid rows."
    )
    epochs_completed: int
    stop_epoch: int | None = Field(None, description="Epoch at which early stopping ended it.")
    best_epoch: int | None = None
    best_value: float | None = Field(None, description="Best value of the monitored metric.")
    final_metrics: dict[str, float] | None = Field(
        None, description="The last epoch's metrics (see `saved_metrics` for the weights')."
    )
    saved_epoch: int | None = Field(
        None,
        description="The epoch whose weights were saved: the best one when early stopping's "
        "`restore_best_weights` put them back, else the last.",
    )
    saved_metrics: dict[str, float | None] | None = Field(
        None, description="The metrics of `saved_epoch`: what the downloadable model scores."
    )
    best_metrics: dict[str, float | None] | None = Field(
        None,
        description="Per metric early stopping can watch (losses, accuracies, mse/mae/r2), "
        "its best value over the recorded epochs (highest accuracy and r2, lowest of the "
        "rest), each possibly from a different epoch; set when the job ends.",
    )
    device: str | None = None
    has_model: bool
    has_bundle: bool = Field(
        False,
        description="The saved model comes as a bundle: `model.json` manifest and ONNX export "
        "beside the weights (`GET …/model?format=bundle|onnx`); false for jobs trained "
        "before bundles existed (docs/models.md).",
    )
    attempt: int = Field(
        description="Attempts started so far: above 1, the job lost a worker and resumed "
        "from its last checkpoint (see `GET /v1/jobs/{id}/attempts`)."
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    source_job_id: str | None = Field(None, description="A landscape: the job it studies.")
    auto_lr: AutoLrSummary | None = Field(
        None,
        description='What `"auto"` rates became: `fields`, `value`, `rule` and `why` (the '
        "whole range test is in `GET …/result`).",
    )
    # -- organising (docs/search.md) ---------------------------------------------------
    project: str | None = Field(None, description="The project it is in, by name.")
    tags: dict[str, str] = Field(default_factory=dict, description="Its key → value tags.")
    note: str | None = Field(None, description="Its note.")
    links: dict[str, str]


class RangeTestResultRead(RangeTestRecord):
    """A range-test job's result, with its curve (read from its metric rows)."""

    curve: RangeCurve


class ResultRead(BaseModel):
    job_id: str
    kind: JobKind
    status: JobStatus
    result: Annotated[
        RangeTestResultRead | LandscapeRecord | AutoLrRecord, Field(discriminator="kind")
    ] = Field(
        description="By its `kind`: `lr_range_test`: `suggestions` (each with its `rule`, "
        "`lr`, `step` and `explanation`), `stopped`, `best`, and `curve` (`step`, `lr`, "
        "`loss`, `smoothed_loss` lists). `landscape`: `interpolation` (`alpha`, `loss`, …), "
        "`surface` (`x`, `y`, `loss` rows), `centre`, `directions`, `trajectory`. "
        '`auto_lr`, a training job with `"auto"` rates: the choice and the range test '
        "behind it."
    )


class JobPage(BaseModel):
    items: list[JobRead]
    total: int
    limit: int
    offset: int


class EpochResources(BaseModel):
    """What one epoch used, measured by its worker as the epoch ended."""

    epoch: int
    device: str | None = Field(None, description="`cpu`, or the CUDA device (`cuda:0`).")
    device_name: str | None = Field(None, description="The CPU's or the GPU's model name.")
    rss_peak_bytes: int | None = Field(
        None, description="The worker process's peak resident memory during the epoch."
    )
    cuda_max_allocated_bytes: int | None = Field(
        None, description="CUDA only: the peak of memory torch allocated during the epoch."
    )


class MetricsRead(BaseModel):
    job_id: str
    status: JobStatus
    names: list[str] = Field(description="The metric names in each row, `epoch` first.")
    epochs: list[dict[str, float | int | None]]
    resources: list[EpochResources] = Field(
        default_factory=list,
        description="Per epoch (of those in `epochs`), what it used: device, peak memory. "
        "Epochs recorded before workers measured this have none. Not in the CSV.",
    )


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    worker: str | None = Field(None, description="host:pid of the process that ran it")
    resumed_from_epoch: int = Field(description="The checkpoint it started from; 0: the start.")
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = Field(
        None,
        description="The job's status if this attempt ended it; `lost` (its worker died), "
        "`superseded` (another attempt took over) or `handed_back` (its worker was stopped "
        "and gave the job back to the queue, to resume at once); null while it runs.",
    )


# -- the event stream (GET /v1/jobs/{id}/events) ------------------------------------


class StatusEvent(BaseModel):
    """`event: status`: sent on connecting and at each change of status or attempt."""

    job_id: str
    status: JobStatus
    status_reason: str | None
    attempt: int
    epochs_completed: int
    epochs: int = Field(description="Epochs asked for.")


class EpochEvent(BaseModel):
    """`event: epoch`: one recorded epoch; the event's `id:` is the epoch."""

    job_id: str
    epoch: int
    epochs: int = Field(description="Epochs asked for.")
    metrics: dict[str, float | None] = Field(description="As `GET …/metrics` has them.")
    recorded_at: str = Field(description="When the worker recorded it (ISO 8601, UTC).")


class EndEvent(StatusEvent):
    """`event: end`: the job ended; the stream closes after it."""

    stop_epoch: int | None
    best_epoch: int | None
    best_value: float | None
    final_metrics: dict[str, float | None] | None
    saved_epoch: int | None = Field(None, description="As on the job: the weights' epoch.")
    saved_metrics: dict[str, float | None] | None = None
    best_metrics: dict[str, float | None] | None = None


#: One event as an OpenAPI (before 3.2) `text/event-stream` schema describes it: the
#: fields of an event, its `data` a JSON document of one of the three shapes.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["status", "epoch", "end"]},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The last epoch sent."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [inline_schema(m) for m in (EpochEvent, EndEvent, StatusEvent)]
            },
        },
    },
}

#: One event of ``GET /v1/jobs/events`` (all of a user's jobs): the job as it reads now.
MY_EVENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["job"]},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": inline_schema(JobRead),
        },
    },
}
