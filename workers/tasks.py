"""Celery tasks. Thin: take an id, hand it to the runner, which claims, trains and records."""

from __future__ import annotations

from celery import Task

from service.config import get_settings
from service.queue import TRAIN_JOB, sender
from workers.app import app


@app.task(name=TRAIN_JOB, ignore_result=True, bind=True)
def train_job(self: Task, job_id: str, dispatch: int | None = None) -> None:
    """``dispatch`` is the job's dispatch number when the message was sent (absent in
    messages from before it existed: those are taken as current). The runner sends the
    messages of a sweep's next trials through the app this task runs under, so it never
    imports the app itself."""
    from workers.runner import run_job  # torch loads in the pool process, not at import

    settings = get_settings()
    run_job(job_id, settings=settings, dispatch=dispatch, send=sender(self.app, settings.queue))
