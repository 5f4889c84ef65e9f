"""Celery tasks. Thin: take an id, hand it to the runner, which loads, trains and records."""

from __future__ import annotations

from service.config import get_settings
from service.queue import TRAIN_JOB
from workers.app import app


@app.task(name=TRAIN_JOB, ignore_result=True)
def train_job(job_id: str) -> None:
    from workers.runner import run_job  # torch loads in the pool process, not at import

    run_job(job_id, settings=get_settings())
