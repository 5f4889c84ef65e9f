"""Celery tasks. Thin: take an id, hand it to the runner, which claims, trains and records."""

from __future__ import annotations

from service.config import get_settings
from service.queue import TRAIN_JOB
from workers.app import app


@app.task(name=TRAIN_JOB, ignore_result=True)
def train_job(job_id: str, dispatch: int | None = None) -> None:
    """``dispatch`` is the job's dispatch number when the message was sent (absent in
    messages from before it existed: those are taken as current)."""
    from workers.runner import run_job  # torch loads in the pool process, not at import

    run_job(job_id, settings=get_settings(), dispatch=dispatch)
