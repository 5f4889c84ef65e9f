"""Descent for scripts: the client, the answers it returns, and the job spec.

    from descent import Client, load_spec

    with Client.from_config() as api:          # $DESCENT_URL / $DESCENT_TOKEN, the config
        job = api.submit(load_spec("job.yaml"))  # file, or the local `descent up`
        final = api.wait(job.id)
        print(final.status, final.best_epoch, final.final_metrics)

Everything here is stable: names are added, not renamed or removed, within a major
version. The implementation lives in the ``service`` package (``service.client``, the
API's schemas, ``service.spec``); import it from here.
"""

import os as _os
from typing import TYPE_CHECKING as _TYPE_CHECKING

from service.cli.specfile import SpecFileError, load_spec
from service.client import (
    ApiError,
    Client,
    ConfigError,
    DescentError,
    Event,
    JobKind,
    JobStatus,
    SweepKind,
    SweepStatus,
    Unreachable,
)
from service.fleet.schemas import FleetRead, QueueRead, WorkerRead, WorkerState
from service.jobs.schemas import AttemptRead, JobPage, JobRead, MetricsRead, ResultRead
from service.predict.schemas import PredictionRead
from service.projects.schemas import ProjectPage, ProjectRead
from service.spec import JobSpec
from service.sweeps.schemas import (
    ComparisonRead,
    ImportanceRead,
    SweepPage,
    SweepRead,
    TrialPage,
    TrialRead,
)

if _TYPE_CHECKING:
    from workers.engine.loaded import LoadedModel


def load_model(source: str | _os.PathLike[str] | bytes | bytearray) -> "LoadedModel":
    """A trained job's model, ready to predict: ``source`` is its bundle (the zip of
    ``GET /v1/jobs/{id}/model?format=bundle``: a path, or its bytes) or its job folder.

    Returns an ``nn.Module`` whose ``predict(rows)`` takes raw feature rows and gives
    labels (or values in the target's units), with ``predict_proba``, ``preprocess``,
    ``manifest``, ``class_labels`` and ``feature_names`` (docs/models.md). Needs PyTorch
    (the ``worker`` extra); importing ``descent`` does not.
    """
    # Imported here, so that `import descent` stays free of torch.
    from workers.engine.loaded import load_model as load

    return load(source)


__all__ = [
    "ApiError",
    "AttemptRead",
    "Client",
    "ComparisonRead",
    "ConfigError",
    "DescentError",
    "Event",
    "FleetRead",
    "ImportanceRead",
    "JobKind",
    "JobPage",
    "JobRead",
    "JobSpec",
    "JobStatus",
    "MetricsRead",
    "PredictionRead",
    "ProjectPage",
    "ProjectRead",
    "QueueRead",
    "ResultRead",
    "SpecFileError",
    "SweepKind",
    "SweepPage",
    "SweepRead",
    "SweepStatus",
    "TrialPage",
    "TrialRead",
    "Unreachable",
    "WorkerRead",
    "WorkerState",
    "load_model",
    "load_spec",
]
