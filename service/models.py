"""All ORM models, imported in one place so Alembic and the app see the same metadata."""

from service.auth.models import ApiToken, BrowserSession, User
from service.datasets.models import Dataset
from service.fleet.models import Worker
from service.jobs.models import EpochMetric, Job, JobAttempt
from service.projects.models import Project
from service.sweeps.models import Sweep, SweepTrial

__all__ = [
    "ApiToken",
    "BrowserSession",
    "Dataset",
    "EpochMetric",
    "Job",
    "JobAttempt",
    "Project",
    "Sweep",
    "SweepTrial",
    "User",
    "Worker",
]
