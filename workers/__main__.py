"""``python -m workers`` (what ``descent worker`` runs): start Celery worker processes.

With several GPUs visible, one worker process per GPU, each seeing only its own
(``CUDA_VISIBLE_DEVICES``); otherwise a single worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from service.config import Settings, get_settings
from service.metrics.multiproc import ENV as MULTIPROC_ENV
from service.metrics.multiproc import prepare as prepare_metrics_dir


def count_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    # Ask in a child process: initialising CUDA here would break the forked pool.
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return int(probe.stdout.strip() or 0)
    except ValueError:
        return 0


def celery_argv(args: argparse.Namespace, hostname: str) -> list[str]:
    settings = get_settings()
    # Celery prints its banner to stdout, outside logging: not in a stream of JSON lines.
    quiet = ["--quiet"] if settings.log_format == "json" else []
    return [
        sys.executable, "-m", "celery", "-A", "workers.app", *quiet, "worker",
        "--queues", settings.queue,
        "--concurrency", str(args.concurrency),
        "--pool", "prefork",
        "--loglevel", args.loglevel,
        "--hostname", hostname,
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def export_metrics_dir(settings: Settings) -> Path | None:
    """Point every worker process at the metrics folder (Prometheus multiprocess mode),
    emptied first, before Celery (and with it prometheus_client) starts. A folder
    prepared by ``descent up``, which shares it among its workers, is left as it is.
    Serving on a port without a folder set takes one in the temporary directory, named
    by the port (emptied and reused by the next start, so none pile up)."""
    if MULTIPROC_ENV in os.environ:
        return Path(os.environ[MULTIPROC_ENV])
    folder = settings.metrics_dir
    if folder is None and settings.worker_metrics_port:
        folder = Path(tempfile.gettempdir()) / f"descent-metrics-{settings.worker_metrics_port}"
    if folder is None:
        return None
    prepare_metrics_dir(folder)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def gpu_env(gpu: int, n_gpus: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of the worker process for GPU ``gpu`` of ``n_gpus``: it sees that
    GPU only, and its torch threads share this host's cores with the others
    (workers/threads.py) unless ``DESCENT_WORKER_PROCESSES`` says how many share them."""
    return {"DESCENT_WORKER_PROCESSES": str(n_gpus), **environ, "CUDA_VISIBLE_DEVICES": str(gpu)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="descent worker", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=1, help="Jobs at once per process.")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--gpus", default="auto", help="auto: one process per visible GPU; 0: one process."
    )
    args = parser.parse_args(argv)
    n_gpus = count_gpus() if args.gpus == "auto" else int(args.gpus)
    export_metrics_dir(get_settings())

    if n_gpus <= 1:
        os.execv(sys.executable, celery_argv(args, "descent@%h"))

    children = []
    for i in range(n_gpus):
        env = gpu_env(i, n_gpus, os.environ)
        if i:  # they share one metrics folder, which the first serves for all
            env["DESCENT_WORKER_METRICS_PORT"] = "0"
        children.append(subprocess.Popen(celery_argv(args, f"descent-gpu{i}@%h"), env=env))

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)


if __name__ == "__main__":
    sys.exit(main())
