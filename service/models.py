"""All ORM models, imported in one place so Alembic and the app see the same metadata."""

from service.datasets.models import Dataset
from service.jobs.models import EpochMetric, Job

__all__ = ["Dataset", "EpochMetric", "Job"]
