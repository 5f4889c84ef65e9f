"""For the CLI's tests: what the API answers, as JSON documents a fake API
(``httpx.MockTransport``) can send — the client parses them into the API's response
models, so they must be whole — and usage errors read without rich's boxes."""

from __future__ import annotations

import json
import re
from typing import Any


def flat(text: str) -> str:
    """Text without the boxes and line breaks of a rich usage error."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def sse(*events: tuple[str, int, dict[str, Any]]) -> str:
    return "".join(f"id: {i}\nevent: {e}\ndata: {json.dumps(d)}\n\n" for e, i, d in events)


def job_answer(**fields: Any) -> dict[str, Any]:
    """A job as the API answers it (``JobRead``), with ``fields`` changed."""
    return {
        "id": "job-1",
        "name": "moons",
        "kind": "train",
        "status": "succeeded",
        "status_reason": None,
        "task": "classification",
        "spec": {"dataset": {"name": "moons"}, "training": {"epochs": 3}},
        "dataset_id": None,
        "n_parameters": 226,
        "cancel_requested": False,
        "epochs": 3,
        "epochs_completed": 3,
        "best_epoch": 3,
        "best_value": 0.25,
        "has_model": True,
        "attempt": 1,
        "created_at": "2026-01-01T10:00:00Z",
        "started_at": "2026-01-01T10:00:01Z",
        "finished_at": "2026-01-01T10:00:05Z",
        "links": {},
    } | fields


def sweep_answer(**fields: Any) -> dict[str, Any]:
    """A sweep as the API answers it (``SweepRead``), with ``fields`` changed."""
    return {
        "id": "sweep-1",
        "name": "optimizers",
        "kind": "comparison",
        "status": "succeeded",
        "status_reason": None,
        "task": "classification",
        "created_at": "2026-01-01T10:00:00Z",
        "finished_at": "2026-01-01T10:05:00Z",
        "cancel_requested": False,
        "spec": {},
        "max_trials": 3,
        "parallelism": 2,
        "repeats": 1,
        "trials_created": 3,
        "counts": {"complete": 3},
        "epochs_spent": 9,
        "objective": {"metric": "val_accuracy", "direction": "max", "measure": "best"},
        "best": None,
        "links": {},
    } | fields


def page(*items: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(items), "total": len(items), "limit": 20, "offset": 0}
