"""The Celery app the workers run: ``celery -A workers.app worker``.

Same broker and serializer settings as the API's producer (``service.queue``): JSON
only, late acknowledgement, one message prefetched at a time.
"""

from __future__ import annotations

import logging

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from service.config import get_settings
from service.queue import make_celery, sender
from workers import fleet

log = logging.getLogger(__name__)

app = make_celery(get_settings(), name="descent-worker")
app.conf.imports = ("workers.tasks",)
# The pool process imports torch, scikit-learn and the engine at start (below); give it
# longer than Celery's default 4 s before it is declared dead.
app.conf.worker_proc_alive_timeout = 60


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


@worker_process_init.connect
def _configure_torch(**_: object) -> None:
    """Runs in each pool process: torch is imported here, never in the API.

    Everything a job needs is imported now, so a worker's first job does not pay seconds
    of imports (torch, scikit-learn, and torch._dynamo on the first optimizer)."""
    import torch

    import workers.runner  # noqa: F401  (the engine, scikit-learn)

    settings = get_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    _cap_memory(settings.worker_max_memory_mb, cuda=torch.cuda.is_available())
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    log.info(
        "worker process ready: torch %s, %d threads, cuda=%s",
        torch.__version__,
        torch.get_num_threads(),
        torch.cuda.is_available(),
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


@worker_shutdown.connect
def _stop_reaper(**_: object) -> None:
    if _reaper is not None:
        _reaper.stop()


# The worker's row in the fleet registry (workers/fleet.py): after the handlers above, so
# a pool process reports torch's settings once they are made.
fleet.install()
