"""The engine's Reporter for a job that runs under a lease: each epoch's checkpoint and
metrics recorded in one fenced transaction (docs/reliability.md), its resources measured,
a sweep's pruner asked, and a stopping worker's hand-back decided at the epoch's end or
between batches."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from sqlalchemy import select

from service.jobs.models import EpochMetric
from service.live import Notifier
from workers import metrics as worker_metrics
from workers.engine import Checkpoint, save_checkpoint
from workers.handback import HandBack
from workers.lease import Lease, retrying
from workers.stopping import GracefulStop
from workers.trials import Trial

log = logging.getLogger(__name__)

#: A job's last recorded epoch, in its folder; replaced each epoch.
CHECKPOINT = "checkpoint.pt"


class SqlReporter:
    """The engine's Reporter. At the end of each epoch: the checkpoint is written to a
    file of this attempt's own, then one fenced transaction records the epoch's metrics,
    moves the checkpoint into place and advances ``epochs_completed``. Either all of it
    happens or none, and only while this attempt holds the lease."""

    def __init__(
        self,
        lease: Lease,
        job_dir: Path,
        retry_seconds: float,
        notifier: Notifier,
        trial: Trial | None = None,
        finish_seconds: float = 0.0,
    ) -> None:
        self.lease = lease
        self.job_dir = job_dir
        self.retry_seconds = retry_seconds
        self.notifier = notifier
        self.trial = trial  # the job is one of a sweep's trials
        self.reported = 0  # the last row (epoch, step, grid row) reported
        #: What each epoch used, recorded with its row (None: not measured).
        self.meter: worker_metrics.ResourceMeter | None = None
        self.graceful = GracefulStop(finish_seconds)  # a stopping worker (workers/stopping.py)

    def report(self, epoch: int, metrics: dict[str, float], checkpoint: Checkpoint | None) -> None:
        """Record the epoch; then, for a sweep's trial, ask its pruner, which raises
        ``PruneTrial`` to end the run (the epoch is recorded by then)."""
        tmp = None
        if checkpoint is not None:  # the lab's rows come without
            tmp = self.job_dir / f"{CHECKPOINT}.a{self.lease.attempt}.tmp"
            save_checkpoint(checkpoint, tmp)
            fsync(tmp)  # on disk before the database says it is there
        used = self.meter.sample() if self.meter is not None else None
        retrying(
            lambda: self.record(epoch, metrics, tmp, used),
            seconds=self.retry_seconds,
            what=f"job {self.lease.job_id} epoch {epoch}",
        )
        self.notifier.job_changed(self.lease.job_id)
        worker_metrics.epoch_recorded(metrics)
        self.reported = epoch
        # A training epoch (it comes with a checkpoint) is worth a line; the lab's rows,
        # hundreds a job, only at DEBUG.
        log.log(
            logging.INFO if checkpoint is not None else logging.DEBUG,
            "job %s: epoch %d recorded",
            self.lease.job_id,
            epoch,
        )
        if self.trial is not None:
            self.trial.ask_pruner(self.lease.sessions, epoch, self._write)
        if checkpoint is not None:
            self.graceful.epoch_recorded()
            if self.graceful.after_epoch():
                raise HandBack(f"the worker is stopping; handed back after epoch {epoch}")

    def _write(self, values: dict[str, object]) -> None:
        def write() -> None:
            with self.lease.fenced("pruner notes", **values):
                pass

        retrying(write, seconds=self.retry_seconds, what=f"job {self.lease.job_id} pruner notes")

    def record(
        self,
        epoch: int,
        metrics: dict[str, float],
        tmp: Path | None,
        resources: dict[str, object] | None = None,
    ) -> None:
        extra = self.trial.observe(epoch, metrics) if self.trial is not None else {}
        with self.lease.fenced(f"epoch {epoch}", epochs_completed=epoch, **extra) as s:
            # The row can exist only if an earlier attempt recorded this epoch and then
            # died before its checkpoint could follow, or if this very write committed and
            # lost its answer: the first record stands, nothing is written twice.
            exists = s.scalar(
                select(EpochMetric.epoch).where(
                    EpochMetric.job_id == self.lease.job_id, EpochMetric.epoch == epoch
                )
            )
            if exists is None:
                # JSON has no NaN or infinity (PostgreSQL refuses them): stored as null.
                values = {k: v if math.isfinite(v) else None for k, v in metrics.items()}
                seq = self.trial.next_event(s) if self.trial is not None else None
                s.add(
                    EpochMetric(
                        job_id=self.lease.job_id,
                        epoch=epoch,
                        values=values,
                        sweep_seq=seq,
                        resources=resources,
                    )
                )
            if tmp is not None and tmp.exists():
                os.replace(tmp, self.job_dir / CHECKPOINT)

    def should_stop(self) -> bool:
        if self.lease.check():
            return True  # a cancel: it ends the job, stopping worker or not
        if self.graceful.now():
            raise HandBack("the worker is stopping: mid-epoch, from the last checkpoint")
        return False


def fsync(path: Path) -> None:
    """Wait until the bytes of ``path`` are on disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
