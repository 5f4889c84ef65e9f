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
from service.jobs.schemas import AttemptRead, JobPage, JobRead, MetricsRead, ResultRead
from service.spec import JobSpec
from service.sweeps.schemas import (
    ComparisonRead,
    ImportanceRead,
    SweepPage,
    SweepRead,
    TrialPage,
    TrialRead,
)

__all__ = [
    "ApiError",
    "AttemptRead",
    "Client",
    "ComparisonRead",
    "ConfigError",
    "DescentError",
    "Event",
    "ImportanceRead",
    "JobKind",
    "JobPage",
    "JobRead",
    "JobSpec",
    "JobStatus",
    "MetricsRead",
    "ResultRead",
    "SpecFileError",
    "SweepKind",
    "SweepPage",
    "SweepRead",
    "SweepStatus",
    "TrialPage",
    "TrialRead",
    "Unreachable",
    "load_spec",
]
