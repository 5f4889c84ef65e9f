"""The workers' Prometheus metrics, and the resources each epoch used.

Worker processes run in Prometheus multiprocess mode: ``python -m workers`` (or
``descent up``) points ``PROMETHEUS_MULTIPROC_DIR`` at ``DESCENT_METRICS_DIR`` before
Celery starts, so every process — the main one (the reaper) and each pool process (the
training) — writes its values to files there, and whoever serves them merges the files
(service/metrics/multiproc.py): the worker's own port (``DESCENT_WORKER_METRICS_PORT``,
:func:`serve`) and, in the embedded default, the API's ``/metrics``. Without a metrics
folder the values stay in the process, unread, and cost next to nothing.

The per-epoch resources (:class:`ResourceMeter`) go into SQL with each epoch's row
(``epoch_metrics.resources``), where ``GET /v1/jobs/{id}/metrics`` shows them.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

#: Seconds an epoch may take, from a toy's tenth of a second to an hour.
EPOCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

JOBS_RUNNING = Gauge(
    "descent_worker_jobs_running",
    "Attempts at jobs running in worker processes now.",
    multiprocess_mode="livesum",
)
EPOCH_SECONDS = Histogram(
    "descent_worker_epoch_duration_seconds",
    "Wall time of each training epoch recorded (training and validation).",
    buckets=EPOCH_BUCKETS,
)
SAMPLES_PER_SECOND = Gauge(
    "descent_worker_samples_per_second",
    "Training samples per second of the last epoch recorded by a running process.",
    multiprocess_mode="livemostrecent",
)
EPOCHS = Counter("descent_worker_epochs", "Rows (epochs, lab rows) recorded by workers.")
RESUMES = Counter(
    "descent_worker_resumes", "Attempts that took over a job an earlier attempt had begun."
)
FENCED_REFUSED = Counter(
    "descent_worker_fenced_writes_refused",
    "Writes refused because the attempt no longer held the job's lease (LeaseLost).",
)
REAPER_ACTIONS = Counter(
    "descent_worker_reaper_actions",
    "Jobs the reapers recovered, by action (requeued, failed, cancelled, redispatched).",
    ["action"],
)


def attempt_started(attempt: int) -> None:
    JOBS_RUNNING.inc()
    if attempt > 1:
        RESUMES.inc()


def attempt_ended() -> None:
    JOBS_RUNNING.dec()


def epoch_recorded(metrics: dict[str, float]) -> None:
    """Count a recorded row; a training epoch's duration and speed (the engine measures
    them: ``epoch_seconds``, ``samples_per_second``) go into their series too."""
    EPOCHS.inc()
    if (seconds := metrics.get("epoch_seconds")) is not None:
        EPOCH_SECONDS.observe(seconds)
    if (rate := metrics.get("samples_per_second")) is not None:
        SAMPLES_PER_SECOND.set(rate)


def reaped(counts: dict[str, int]) -> None:
    for action, n in counts.items():
        if n:
            REAPER_ACTIONS.labels(action).inc(n)


def serve(port: int, metrics_dir: Path) -> None:
    """Serve the metrics of every worker process of ``metrics_dir`` (and this machine's
    CUDA devices) on ``port``, from a thread of the calling (main) process."""
    # Imported here: the training processes, which import this module, serve nothing.
    from service.metrics.devices import CudaDevices
    from service.metrics.multiproc import WorkerFiles

    registry = CollectorRegistry()
    registry.register(WorkerFiles(metrics_dir))  # type: ignore[arg-type]
    registry.register(CudaDevices())  # type: ignore[arg-type]
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:  # a second worker on the same port: it runs without one
        log.warning("worker metrics: cannot listen on port %d: %s", port, exc)
        return
    log.info("worker metrics on port %d (from %s)", port, metrics_dir)


# -- resources of an epoch -------------------------------------------------------------


class ResourceMeter:
    """What one epoch used, taken at its end: ``device`` (``cpu``, ``cuda:0``),
    ``device_name``, ``rss_peak_bytes`` (the process's peak resident memory since the last
    epoch) and, on CUDA, ``cuda_max_allocated_bytes`` (torch's allocator's peak). Both
    peaks are reset after each reading, so each epoch reports its own."""

    def __init__(self, requested: str) -> None:
        import torch

        from workers.engine.device import resolve_device

        try:
            self.device = resolve_device(requested)
        except Exception:  # the job will fail saying why; its epochs, if any, ran on CPU
            self.device = torch.device("cpu")
        self.cuda = self.device.type == "cuda"
        self.name = _cpu_name()
        if self.cuda:
            # Measuring must never be what fails a job: a device that cannot be asked
            # is left to the training itself to report.
            try:
                if self.device.index is None:  # "cuda": the current device, by number
                    self.device = torch.device("cuda", torch.cuda.current_device())
                self.name = torch.cuda.get_device_name(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            except Exception as exc:
                log.warning("resources: cannot read CUDA device %s: %s", self.device, exc)
                self.cuda = False
        _reset_rss_peak()

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device": str(self.device),
            "device_name": self.name,
            "rss_peak_bytes": _rss_peak(),
        }
        if self.cuda:
            import torch

            try:
                out["cuda_max_allocated_bytes"] = int(torch.cuda.max_memory_allocated(self.device))
                torch.cuda.reset_peak_memory_stats(self.device)
            except Exception as exc:
                log.warning("resources: cannot read CUDA memory: %s", exc)
        _reset_rss_peak()
        return out


def _rss_peak() -> int:
    # Linux keeps the peak since the last reset (VmHWM); elsewhere, the process's peak.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _reset_rss_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


@lru_cache
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine
