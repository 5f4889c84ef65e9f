"""The OpenAPI description of ``GET /v1/sweeps/{id}/events`` (see
:mod:`service.sweeps.events`): each event's JSON, as pydantic models, and one event as an
OpenAPI (before 3.2) ``text/event-stream`` schema describes it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.jobs.states import JobStatus
from service.openapi import inline_schema
from service.sweeps.states import SweepStatus, TrialState

__all__ = [
    "SWEEP_EVENT_SCHEMA",
    "BestEvent",
    "SweepEndEvent",
    "SweepEpochEvent",
    "SweepStateEvent",
    "TrialCountsEvent",
    "TrialEvent",
]


class TrialCountsEvent(BaseModel):
    queued: int
    running: int
    complete: int
    pruned: int
    failed: int
    cancelled: int


class BestEvent(BaseModel):
    number: int
    label: str | None = Field(description="The configuration's label (comparisons).")
    params: dict[str, Any]
    value: float = Field(description="The trial's objective: the mean over its seeds.")
    job_ids: list[str]


class SweepStateEvent(BaseModel):
    """`event: sweep`: sent on connecting and whenever the sweep changes."""

    sweep_id: str
    status: SweepStatus
    status_reason: str | None
    trials_created: int
    counts: TrialCountsEvent = Field(description="Trials by state.")
    best: BestEvent | None = Field(description="The best complete trial so far.")


class SweepEndEvent(SweepStateEvent):
    """`event: end`: the sweep ended and none of its jobs runs; the stream closes."""


class TrialEvent(BaseModel):
    """`event: trial`: one of the sweep's jobs (a trial runs one per seed), on connecting
    and when it appears or changes status or attempt."""

    sweep_id: str
    trial: int = Field(description="The trial's number.")
    label: str | None = Field(description="The configuration's label (comparisons).")
    trial_state: TrialState
    job_id: str
    repeat: int = Field(description="Which of the trial's seeds (0-based).")
    status: JobStatus
    status_reason: str | None
    attempt: int
    epochs_completed: int
    epochs: int | None = Field(description="Epochs asked for.")
    objective: float | None = Field(description="The job's objective so far.")
    params: dict[str, Any] = Field(description="Dotted path → the value the trial set.")


class SweepEpochEvent(BaseModel):
    """`event: epoch`: an epoch of one of the sweep's jobs; the event's `id:` is its
    sweep event number."""

    sweep_id: str
    trial: int
    job_id: str
    repeat: int
    epoch: int
    metrics: dict[str, float | None] = Field(description="As `GET /v1/jobs/{id}/metrics`.")
    objective: float | None = Field(description="The objective metric's value at this epoch.")
    recorded_at: str = Field(description="When the worker recorded it (ISO 8601, UTC).")


SWEEP_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["sweep", "trial", "epoch", "end"]},
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The last epoch's sweep event number sent.",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    inline_schema(m)
                    for m in (SweepEpochEvent, TrialEvent, SweepStateEvent, SweepEndEvent)
                ]
            },
        },
    },
}
