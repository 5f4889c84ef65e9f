"""The Celery app the workers run: ``celery -A workers.app worker``.

Same broker and serializer settings as the API's producer (``service.queue``): JSON
only, late acknowledgement, one message prefetched at a time.
"""

from __future__ import annotations

import logging

from celery.signals import worker_process_init

from service.config import get_settings
from service.queue import make_celery

log = logging.getLogger(__name__)

app = make_celery(get_settings(), name="descent-worker")
app.conf.imports = ("workers.tasks",)
# The pool process imports torch, scikit-learn and the engine at start (below); give it
# longer than Celery's default 4 s before it is declared dead.
app.conf.worker_proc_alive_timeout = 60


@worker_process_init.connect
def _configure_torch(**_: object) -> None:
    """Runs in each pool process: torch is imported here, never in the API.

    Everything a job needs is imported now, so a worker's first job does not pay seconds
    of imports (torch, scikit-learn, and torch._dynamo on the first optimizer)."""
    import torch

    import workers.runner  # noqa: F401  (the engine, scikit-learn)

    threads = get_settings().torch_threads
    if threads:
        torch.set_num_threads(threads)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    log.info(
        "worker process ready: torch %s, %d threads, cuda=%s",
        torch.__version__,
        torch.get_num_threads(),
        torch.cuda.is_available(),
    )
