"""Job rows written straight into a test's database, for the tests of the worker's parts
(claim, lease, reaper, fleet, hand-back) that start from a row rather than a request."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.db import utcnow
from service.jobs.models import Job
from service.spec import JobSpec

#: An iris job with every default: what most of those tests run.
IRIS_SPEC = JobSpec.model_validate({"dataset": {"name": "iris"}}).model_dump(mode="json")


def new_job(
    sessions: sessionmaker[Session], *, spec: dict[str, Any] | None = None, **values: Any
) -> str:
    """A queued job of ``spec`` (default :data:`IRIS_SPEC`) sent once; ``values`` set or
    override its columns. Returns its id."""
    job_id = str(uuid.uuid4())
    columns: dict[str, Any] = {
        "id": job_id,
        "name": "t",
        "spec": spec if spec is not None else IRIS_SPEC,
        "task": "classification",
        "n_parameters": 10,
        "dispatch": 1,
        "dispatched_at": utcnow(),
    }
    with sessions() as s, s.begin():
        s.add(Job(**(columns | values)))
    return job_id
