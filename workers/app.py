"""The Celery app the workers run: ``celery -A workers.app worker``.

Same broker and serializer settings as the API's producer (``service.queue``): JSON
only, late acknowledgement, one message prefetched at a time.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from celery.signals import (
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from service import logs
from service.config import get_settings
from service.queue import TRAIN_JOB, make_celery, sender
from workers import fleet, stopping
from workers.threads import torch_threads

log = logging.getLogger(__name__)

app = make_celery(get_settings(), name="descent-worker")
app.conf.imports = ("workers.tasks",)
# The pool process imports torch, scikit-learn and the engine at start (below); give it
# longer than Celery's default 4 s before it is declared dead.
app.conf.worker_proc_alive_timeout = 60


@setup_logging.connect
def _setup_logging(loglevel: int | str | None = None, **_: object) -> None:
    """Celery's own lines go through the API's redacting handler, in DESCENT_LOG_FORMAT
    (with a receiver here, Celery configures no logging of its own). DESCENT_LOG_LEVEL
    wins over ``--loglevel``."""
    settings = get_settings()
    level = settings.log_level or (
        logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    )
    logs.setup(settings.log_format, str(level or "INFO"))
    if settings.log_format == "json":
        # The worker's signal handlers write their notes ("worker: Warm shutdown") to the
        # terminal directly, outside logging: in a stream of JSON lines, they are lines too.
        import celery.apps.worker

        celery.apps.worker.safe_say = _say
    # Celery's "Task … received" line (the main process) names the job only in its
    # arguments: give it the job's fields like every other line about the job.
    logging.getLogger("celery.worker.strategy").addFilter(_received_job)


def _say(msg: str, f: object = None) -> None:
    logging.getLogger("celery.apps.worker").info(msg)


@celeryd_init.connect
def _early_logging(options: dict[str, object] | None = None, **_: object) -> None:
    """The worker warns (running as root, for one) before it sets its logging up: set it
    up first, so that those lines are in DESCENT_LOG_FORMAT too."""
    _setup_logging((options or {}).get("loglevel"))


def _received_job(record: logging.LogRecord) -> bool:
    data = getattr(record, "data", None)
    if isinstance(data, dict) and data.get("name") == TRAIN_JOB:
        job_id, dispatch = _job_args(data.get("args"))
        record.__dict__.update(job_id=job_id, dispatch=dispatch)
    return True


def _job_args(argsrepr: object) -> tuple[str | None, int | None]:
    """The job id and dispatch number in a ``train_job`` message's ``argsrepr``
    (``"['<id>', 3]"``); Nones when it is anything else."""
    import ast

    if not isinstance(argsrepr, str) or len(argsrepr) > 200:
        return None, None
    try:
        args = ast.literal_eval(argsrepr)
    except (ValueError, SyntaxError):
        return None, None
    if not isinstance(args, list | tuple) or not args or not isinstance(args[0], str):
        return None, None
    dispatch = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    return args[0], dispatch


@task_prerun.connect
def _bind_job(task: object = None, args: object = None, **kwargs: object) -> None:
    """Celery's own lines about a job (its "succeeded in" too, written after the task
    returns) carry the job's fields; the runner adds the attempt once it has one."""
    if getattr(task, "name", None) != TRAIN_JOB:
        return
    params = kwargs.get("kwargs")
    params = params if isinstance(params, dict) else {}
    positional = list(args) if isinstance(args, list | tuple) else []
    logs.JOB_ID.set(positional[0] if positional else params.get("job_id"))
    logs.DISPATCH.set(positional[1] if len(positional) > 1 else params.get("dispatch"))


@task_postrun.connect
def _unbind_job(**_: object) -> None:
    for var in (logs.JOB_ID, logs.ATTEMPT, logs.DISPATCH):
        var.set(None)


def _cap_memory(megabytes: int, *, cuda: bool) -> None:
    """Cap the pool process's address space: past it, torch's allocator raises (and the
    job fails as out of memory) where the kernel's OOM killer would kill the worker."""
    if not megabytes:
        return
    if cuda:
        # A CUDA context maps far more address space than it uses: a cap would break it.
        log.warning("DESCENT_WORKER_MAX_MEMORY_MB is ignored on a CUDA worker")
        return
    import resource

    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    log.info("training process address space capped at %d MiB", megabytes)


#: Jobs at once per worker process (``--concurrency``), read in the main process before
#: the pool forks, so each pool process knows how many share the cores with it.
_concurrency = 1


@worker_init.connect
def _note_concurrency(sender: object = None, **_: object) -> None:
    global _concurrency
    concurrency = getattr(sender, "concurrency", None)
    _concurrency = concurrency if isinstance(concurrency, int) and concurrency > 0 else 1


@worker_process_init.connect
def _configure_torch(**_: object) -> None:
    """Runs in each pool process: torch is imported here, never in the API.

    Everything a job needs is imported now, so a worker's first job does not pay seconds
    of imports (torch, scikit-learn, and torch._dynamo on the first optimizer)."""
    import torch

    import workers.runner  # noqa: F401  (the engine, scikit-learn)

    settings = get_settings()
    torch.set_num_threads(
        torch_threads(settings.torch_threads, settings.worker_processes, _concurrency)
    )
    _cap_memory(settings.worker_max_memory_mb, cuda=torch.cuda.is_available())
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    log.info(
        "worker process ready: torch %s, %d threads, cuda=%s (%s)",
        torch.__version__,
        torch.get_num_threads(),
        torch.cuda.is_available(),
        "DESCENT_TORCH_THREADS"
        if settings.torch_threads
        else f"this host's cores shared by {max(1, settings.worker_processes)} worker "
        f"process(es) × concurrency {_concurrency}",
    )


_reaper = None


@worker_ready.connect
def _start_reaper(**_: object) -> None:
    """The main process (never the pool) recovers jobs whose worker was lost."""
    global _reaper
    from service.db import make_engine, make_sessionmaker
    from workers.reaper import Reaper

    settings = get_settings()
    sessions = make_sessionmaker(make_engine(str(settings.database_url)))
    _reaper = Reaper(sessions, settings, sender(app, settings.queue), broker=app)
    _reaper.start()
    log.info(
        "reaper started: leases of %.0fs, at most %d restarts per job",
        settings.lease_seconds,
        settings.max_restarts,
    )


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    """The main process serves every worker process's metrics (workers/metrics.py)."""
    import os
    from pathlib import Path

    from service.metrics.multiproc import ENV

    settings = get_settings()
    if not settings.worker_metrics_port:
        return
    if ENV not in os.environ:
        log.warning(
            "DESCENT_WORKER_METRICS_PORT is set but the worker was not started by "
            "`python -m workers` (`descent worker`), which sets up the metrics folder: "
            "no metrics served"
        )
        return
    from workers.metrics import serve

    serve(settings.worker_metrics_port, Path(os.environ[ENV]))


@worker_shutdown.connect
def _stop_reaper(**_: object) -> None:
    if _reaper is not None:
        _reaper.stop()


@worker_shutting_down.connect
def _stop_gracefully(**_: object) -> None:
    """SIGTERM (or Ctrl-C) reached the main process: Celery's warm shutdown waits for the
    running jobs, which hand themselves back at their next batch boundary
    (workers/stopping.py); past ``DESCENT_WORKER_STOP_SECONDS`` a cold shutdown ends
    them. Runs in a signal handler: it only sets the shared flag and arms a timer."""
    if stopping.worker_stopping():
        return  # a second signal: the timer is armed already
    stopping.set_worker_stopping()
    seconds = get_settings().worker_stop_seconds
    timer = threading.Timer(seconds, _cold_shutdown, args=(seconds,))
    timer.daemon = True
    timer.start()


def _cold_shutdown(seconds: float) -> None:
    log.warning(
        "running jobs did not hand themselves back within %.0fs "
        "(DESCENT_WORKER_STOP_SECONDS); ending them (they resume when their lease expires)",
        seconds,
    )
    os.kill(os.getpid(), signal.SIGQUIT)


# The worker's row in the fleet registry (workers/fleet.py): after the handlers above, so
# a pool process reports torch's settings once they are made.
fleet.install()
