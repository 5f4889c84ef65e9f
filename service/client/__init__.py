"""A small synchronous client for the Descent API, for scripts, notebooks and dashboards.

    from service.client import Client

    with Client.from_config() as descent:            # flags > env > config file > defaults
        job = descent.submit({"dataset": {"name": "moons"}})       # a JobRead
        for event in descent.events(job.id):        # server-sent events, resumed on reconnect
            if event.event == "epoch":
                print(event.data["epoch"], event.data["metrics"]["val_loss"])
        print(descent.job(job.id).status)

        space = {"optimizer.lr": {"loguniform": [1e-4, 0.1]}}
        sweep = descent.create_sweep({"base": {"dataset": {"name": "digits"}}, "space": space})
        print(descent.wait_sweep(sweep.id).best)    # sweep_events(): follow it live

Every answer is parsed into the API's own response model (``JobRead``, ``JobPage``,
``MetricsRead``, ``SweepRead``, … from ``service/*/schemas.py``), so a script reads typed
attributes. It speaks HTTP only (httpx) and imports nothing of the server: no torch, no
SQLAlchemy, not the API — the schemas it parses with are pydantic models that import
only each other and the spec. Every failure is a :class:`DescentError`: an
:class:`ApiError` for an error answer (with the server's ``status``, ``code``,
``message`` and ``fields``), an :class:`Unreachable` when the server cannot be reached,
a :class:`ConfigError` for a config file that cannot be used.

``settings`` resolves the URL and token, ``sse`` parses event streams, ``api`` holds the
client, ``choices`` the fixed vocabularies (statuses, chart kinds, formats).
:class:`Client` (with httpx and the schemas it parses with) is loaded on first use, so
that ``descent --help`` and the commands' option parsing stay quick.
"""

from typing import TYPE_CHECKING, Any

from service.client.choices import (
    JOB_ENDED,
    SWEEP_ENDED,
    ImageFormat,
    JobKind,
    JobStatus,
    LabPlot,
    SweepKind,
    SweepPlot,
    SweepStatus,
)
from service.client.errors import ApiError, ConfigError, DescentError, FieldProblem, Unreachable
from service.client.settings import (
    DEFAULT_URL,
    ClientConfig,
    config_path,
    is_loopback_url,
    local_token_file,
    read_config,
    resolve_settings,
)
from service.client.sse import Event, ServerSentEvent, parse_sse

if TYPE_CHECKING:
    from service.client.api import Client

__all__ = [
    "DEFAULT_URL",
    "JOB_ENDED",
    "SWEEP_ENDED",
    "ApiError",
    "Client",
    "ClientConfig",
    "ConfigError",
    "DescentError",
    "Event",
    "FieldProblem",
    "ImageFormat",
    "JobKind",
    "JobStatus",
    "LabPlot",
    "ServerSentEvent",
    "SweepKind",
    "SweepPlot",
    "SweepStatus",
    "Unreachable",
    "config_path",
    "is_loopback_url",
    "local_token_file",
    "parse_sse",
    "read_config",
    "resolve_settings",
]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from service.client.api import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
