"""Run one attempt at a job: claim it, resume from its checkpoint, train (or run the
lab's range test or landscape), and record each epoch (row) and the outcome — every write
fenced by the attempt's lease.

Files of a job live in ``<artifacts>/jobs/<id>/``: ``checkpoint.pt`` (the last recorded
epoch, replaced each epoch), the bundle of a succeeded job (``model.pt``, its weights;
``model.onnx`` and ``model.json``: service/spec/bundle.py) and, with
``training.save_trajectory``, ``trajectory/epoch-N.pt`` (the weights after each epoch,
kept for landscapes). A file is
written under a name of its attempt's own (the bundle: in a folder of its own) and
renamed into place inside the fenced transaction that records it, so a stale attempt can
never replace what the live one wrote, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service import logs
from service.config import Settings
from service.datasets.models import Dataset
from service.db import make_engine, make_sessionmaker, utcnow
from service.jobs import lifecycle
from service.jobs.models import EpochMetric, Job
from service.jobs.states import JobStatus
from service.live import Notifier
from service.queue import Send
from service.spec import JobSpec, metric_mode, monitorable_metrics
from service.spec.bundle import MANIFEST, ONNX, WEIGHTS
from service.spec.lab import RangeTest
from service.spec.results import AutoLrChoice, AutoLrRecord, JobResult
from service.sweeps.driver import advance
from workers import metrics as worker_metrics
from workers.claim import Claimed, claim
from workers.engine import (
    Checkpoint,
    CheckpointError,
    TrainResult,
    is_out_of_memory,
    load_checkpoint,
    train,
)
from workers.engine.bundle import BundleTarget
from workers.engine.landscape import LandscapeResult, landscape
from workers.engine.loop import load_trajectory
from workers.engine.lr_finder import (
    RangeTestCancelled,
    RangeTestResult,
    range_test,
    resolve_auto,
    with_rates,
)
from workers.handback import HandBack, hand_back, pass_on
from workers.lease import Lease, LeaseLost, retrying
from workers.reporter import CHECKPOINT, SqlReporter
from workers.stopping import worker_stopping
from workers.trials import Trial, load_trial, sweep_of

log = logging.getLogger(__name__)

MODEL = WEIGHTS
#: A job with ``training.save_trajectory``: its weights after each epoch, for landscapes.
TRAJECTORY = "trajectory"
#: The bundle's files, in the order they are moved into place: the manifest last, so a
#: manifest found in the job folder never describes files that are not yet there.
BUNDLE_FILES = (WEIGHTS, ONNX, MANIFEST)


@lru_cache
def _sessions(database_url: str) -> sessionmaker[Session]:
    # One engine per process, created after the pool forks.
    return make_sessionmaker(make_engine(database_url))


@lru_cache
def _notifier(redis_url: str | None) -> Notifier:
    # Tells the API's event streams a job changed, after each commit (service/live.py).
    return Notifier(redis_url)


def _resume_point(claimed: Claimed, job_dir: Path) -> Checkpoint | None:
    path = job_dir / CHECKPOINT
    if not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        log.warning("job %s: unusable checkpoint, starting over: %s", claimed.job_id, exc)
        return None
    if ckpt.epoch > claimed.epochs_completed + 1:
        log.warning(
            "job %s: checkpoint at epoch %d is ahead of the recorded %d; starting over",
            claimed.job_id,
            ckpt.epoch,
            claimed.epochs_completed,
        )
        return None
    return ckpt


def _clean_stale_files(job_dir: Path) -> None:
    # Half-written files (and bundle folders) of attempts that died; never the live
    # checkpoint or model.
    for tmp in job_dir.glob("*.tmp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()


def run_job(job_id: str, *, settings: Settings, send: Send, dispatch: int | None = None) -> None:
    """One attempt at the job ``job_id`` for a message of number ``dispatch``; ``send``
    sends the messages of its sweep's next trials when it is one. Every line logged
    meanwhile carries the job's id, the dispatch and, once claimed, the attempt."""
    with logs.bound(job_id=job_id, dispatch=dispatch):
        sessions = _sessions(str(settings.database_url))
        if worker_stopping():
            # Celery may still deliver a message while it stops: pass it on untouched
            # rather than start an attempt only to hand it back.
            pass_on(sessions, job_id=job_id, dispatch=dispatch, send=send)
            return
        claimed = retrying(
            lambda: claim(sessions, settings, job_id, dispatch),
            seconds=settings.db_retry_seconds,
            what=f"claiming job {job_id}",
        )
        notifier = _notifier(settings.redis_url)
        notifier.job_changed(job_id)  # running now, or ended by the claim
        if claimed is None:
            return
        with logs.bound(attempt=claimed.attempt):
            n, done = claimed.attempt, claimed.epochs_completed
            log.info("job %s: attempt %d claimed, from epoch %d", job_id, n, done)
            _run_claimed(job_id, claimed, sessions, settings, notifier, send)


def _run_claimed(
    job_id: str,
    claimed: Claimed,
    sessions: sessionmaker[Session],
    settings: Settings,
    notifier: Notifier,
    send: Send,
) -> None:
    lease = Lease(
        sessions,
        job_id,
        claimed.attempt,
        heartbeat_seconds=settings.heartbeat_seconds,
        poll_seconds=settings.cancel_poll_seconds,
        retry_seconds=settings.db_retry_seconds,
    )
    lease.start()
    worker_metrics.attempt_started(claimed.attempt)
    try:
        _run_attempt(claimed, lease, sessions, settings, notifier)
        _advance_sweep(sessions, settings, notifier, job_id, send)
    except HandBack:
        hand_back(
            sessions,
            job_id=job_id,
            attempt=claimed.attempt,
            send=send,
            retry_seconds=settings.db_retry_seconds,
        )
        notifier.job_changed(job_id)
    except LeaseLost as exc:
        log.warning("job %s attempt %d stopped: %s", job_id, claimed.attempt, exc)
        _end_attempt(sessions, claimed, lifecycle.SUPERSEDED)
    finally:
        lease.stop()
        worker_metrics.attempt_ended()
        _release_device_memory()


def _run_attempt(
    claimed: Claimed,
    lease: Lease,
    sessions: sessionmaker[Session],
    settings: Settings,
    notifier: Notifier,
) -> None:
    job_id = claimed.job_id
    job_dir = settings.jobs_dir / job_id
    job_dir.mkdir(parents=True, exist_ok=True)

    def read_job() -> tuple[JobSpec, Trial | None, BundleTarget, str]:
        with sessions() as s:
            job = s.get(Job, job_id)
            assert job is not None  # claimed: it exists
            spec = JobSpec.model_validate(job.spec)
            bundle_dir = job_dir / f"bundle.a{claimed.attempt}.tmp"
            target = _bundle_target(s, job, bundle_dir)
            return spec, load_trial(s, job, spec), target, job.task

    try:
        spec, trial, target, task = retrying(
            read_job, seconds=settings.db_retry_seconds, what=f"job {job_id}"
        )
    except Exception as exc:
        log.exception("job %s: cannot read its spec", job_id)
        _finish(
            lease,
            notifier,
            job_dir,
            JobStatus.FAILED,
            None,
            status_reason=f"{type(exc).__name__}: {exc}",
        )
        return
    reporter = SqlReporter(
        lease,
        job_dir,
        settings.db_retry_seconds,
        notifier,
        trial,
        finish_seconds=settings.worker_stop_seconds / 2,
    )
    reporter.meter = worker_metrics.ResourceMeter(spec.training.device)
    # A training job's rows are epochs: its outcome records each metric's best too.
    epochs_of = task if spec.kind == "train" else None

    try:
        _clean_stale_files(job_dir)
        if spec.kind == "train":
            status, bundle_tmp, values = _train(
                claimed, lease, sessions, settings, spec, reporter, target
            )
        else:
            (status, values), bundle_tmp = _lab(settings, spec, reporter), None
    except (LeaseLost, HandBack):
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            reason = (
                f"out of memory: {str(exc).splitlines()[0][:300]} — try a smaller model, "
                "batch size or dataset"
            )
        else:
            reason = f"{type(exc).__name__}: {exc}"
        log.exception("job %s failed", job_id)
        _finish(
            lease, notifier, job_dir, JobStatus.FAILED, None, task=epochs_of, status_reason=reason
        )
        return
    _finish(lease, notifier, job_dir, status, bundle_tmp, task=epochs_of, **values)
    log.info("job %s %s after %s rows", job_id, status, values.get("epochs_completed"))


#: The engine's outcome → the job's status.
STATUSES: dict[str, JobStatus] = {
    "succeeded": JobStatus.SUCCEEDED,
    "diverged": JobStatus.DIVERGED,
    "cancelled": JobStatus.CANCELLED,
    "timed_out": JobStatus.FAILED,
    "pruned": JobStatus.PRUNED,
}


def _train(
    claimed: Claimed,
    lease: Lease,
    sessions: sessionmaker[Session],
    settings: Settings,
    spec: JobSpec,
    reporter: SqlReporter,
    target: BundleTarget,
) -> tuple[JobStatus, Path | None, dict[str, object]]:
    """Train (resuming from the checkpoint when there is one): the status, the folder
    whose bundle to move into place, and the columns to record."""
    job_id = claimed.job_id
    job_dir = settings.jobs_dir / job_id
    extra: dict[str, object] = {}
    if spec.auto_lr:
        try:
            spec, record = _resolve_auto(claimed, lease, sessions, settings, spec, reporter)
        except RangeTestCancelled as exc:
            return JobStatus.CANCELLED, None, {"status_reason": str(exc)}
        extra["result"] = AutoLrRecord(auto_lr=record)
    resume = _resume_point(claimed, job_dir)
    if resume is not None:
        log.info(
            "job %s attempt %d: resuming after epoch %d", job_id, claimed.attempt, resume.epoch
        )
        _note_resume(sessions, claimed, resume.epoch)
        if resume.epoch == claimed.epochs_completed + 1:
            # Its checkpoint was moved into place but the record of it was not: the
            # epoch's metrics travel in the checkpoint, so record them now.
            reporter.record(resume.epoch, resume.metrics, None)

    def run(start: Checkpoint | None) -> TrainResult:
        return train(
            spec,
            reporter=reporter,
            datasets_dir=settings.datasets_dir,
            resume=start,
            time_limit_seconds=_time_limit(spec, settings),
            trajectory_dir=job_dir / TRAJECTORY,
            bundle=target,
        )

    try:
        result = run(resume)
    except CheckpointError as exc:
        if resume is None:
            raise
        # It loaded but does not fit this job: train again from the start. Epochs
        # already recorded keep their first record (SqlReporter.record).
        log.warning("job %s: checkpoint does not fit, starting over: %s", job_id, exc)
        result = run(None)
    status = STATUSES[result.status]
    succeeded = status == JobStatus.SUCCEEDED and (target.dir / WEIGHTS).is_file()
    return (
        status,
        target.dir if succeeded else None,
        {
            "status_reason": result.reason,
            "epochs_completed": result.epochs_completed,
            "stop_epoch": result.stop_epoch,
            "best_epoch": result.best_epoch,
            "best_value": result.best_value,
            "final_metrics": result.final_metrics or None,
            "device": result.device,
            "saved_epoch": result.saved_epoch if succeeded else None,
            "saved_metrics": _finite(result.saved_metrics) if succeeded else None,
            **extra,
        },
    )


def _bundle_target(s: Session, job: Job, bundle_dir: Path) -> BundleTarget:
    """Where this attempt writes its bundle, and the names an uploaded dataset's row
    holds (uploads from before bundles keep them nowhere else)."""
    names = labels = None
    if job.dataset_id is not None:
        dataset = s.get(Dataset, job.dataset_id)
        if dataset is not None:
            names, labels = list(dataset.feature_names), dataset.classes
    return BundleTarget(
        dir=bundle_dir,
        job_id=job.id,
        job_name=job.name,
        feature_names=names,
        class_labels=list(labels) if labels else None,
    )


def _finite(metrics: dict[str, float] | None) -> dict[str, float | None] | None:
    # JSON has no NaN or infinity (PostgreSQL refuses them): stored as null.
    if metrics is None:
        return None
    return {k: v if v is not None and math.isfinite(v) else None for k, v in metrics.items()}


def _resolve_auto(
    claimed: Claimed,
    lease: Lease,
    sessions: sessionmaker[Session],
    settings: Settings,
    spec: JobSpec,
    reporter: SqlReporter,
) -> tuple[JobSpec, AutoLrChoice]:
    """The spec with its ``"auto"`` rates set. The first attempt runs the range test and
    records its choice (fenced) before training starts; a later attempt (the first lost
    its worker) takes that record instead of testing again, so a resumed job trains on
    with the very rate it began with."""
    with sessions() as s:
        done = s.scalar(select(Job.result).where(Job.id == claimed.job_id))
    if isinstance(done, AutoLrRecord):
        return with_rates(spec, done.auto_lr.fields, done.auto_lr.value), done.auto_lr
    resolved, record = resolve_auto(spec, datasets_dir=settings.datasets_dir, reporter=reporter)
    assert record is not None  # spec.auto_lr is not empty
    retrying(
        lambda: _write_result(lease, AutoLrRecord(auto_lr=record)),
        seconds=settings.db_retry_seconds,
        what=f"job {claimed.job_id} auto lr",
    )
    return resolved, record


def _write_result(lease: Lease, result: JobResult) -> None:
    with lease.fenced("result", result=result):
        pass


def _lab(
    settings: Settings, spec: JobSpec, reporter: SqlReporter
) -> tuple[JobStatus, dict[str, object]]:
    """Run a lab job (a range test, a landscape) from its start: they keep no
    checkpoints, and rows an earlier attempt recorded keep their first record."""
    import torch

    outcome: RangeTestResult | LandscapeResult
    if spec.kind == "lr_range_test":
        outcome = range_test(
            spec,
            spec.range_test or RangeTest(),
            datasets_dir=settings.datasets_dir,
            reporter=reporter,
        )
    else:
        assert spec.landscape is not None
        source_dir = settings.jobs_dir / spec.landscape.job_id
        outcome = landscape(
            spec,
            final_state=torch.load(source_dir / MODEL, map_location="cpu", weights_only=True),
            trajectory=(
                load_trajectory(source_dir / TRAJECTORY)
                if spec.landscape.directions == "pca"
                else None
            ),
            datasets_dir=settings.datasets_dir,
            reporter=reporter,
        )
    return STATUSES[outcome.status], {
        "status_reason": outcome.reason,
        "epochs_completed": reporter.reported,
        "result": outcome.record(),
        "device": outcome.device,
    }


def _advance_sweep(
    sessions: sessionmaker[Session],
    settings: Settings,
    notifier: Notifier,
    job_id: str,
    send: Send,
) -> None:
    """A trial ended: start the sweep's next one now rather than at the next tick of a
    reaper. Any failure here only delays the sweep until that tick."""
    try:
        with sessions() as s:
            sweep_id = sweep_of(s, job_id)
        if sweep_id is not None:
            advance(
                sessions,
                settings,
                sweep_id,
                send,
                notifier.job_changed,
                notifier.job_changed,  # sweep streams listen on the sweep's id too
            )
    except Exception:
        log.exception("job %s: could not advance its sweep", job_id)


def _time_limit(spec: JobSpec, settings: Settings) -> float:
    asked = getattr(spec.training, "time_limit_seconds", None)
    return min(asked or math.inf, settings.max_job_seconds)


def _finish(
    lease: Lease,
    notifier: Notifier,
    job_dir: Path,
    status: JobStatus,
    bundle_tmp: Path | None,
    *,
    task: str | None = None,
    **values: object,
) -> None:
    """Record the outcome — and move the bundle's files into place — only while holding
    the lease, then tell the event streams. With ``task`` (a training job: its rows are
    epochs) the best value of each metric is recorded too, and the saved epoch's metrics
    are taken from its row. The checkpoint goes afterwards: an ended job is never
    resumed."""
    has_model = bundle_tmp is not None and (bundle_tmp / WEIGHTS).is_file()
    has_bundle = has_model and bundle_tmp is not None and (bundle_tmp / MANIFEST).is_file()

    def write() -> None:
        more: dict[str, object] = {}
        if task is not None:
            # Read before the fenced transaction, whose first statement must be the fence:
            # only this attempt, while it holds the lease, records epochs, and the fence
            # refuses the outcome if it no longer does, so the rows cannot have changed.
            more = _epoch_summary(lease, task, values.get("saved_epoch"))
        with lease.finishing(status, has_model=has_model, has_bundle=has_bundle, **(values | more)):
            if bundle_tmp is not None:
                for name in BUNDLE_FILES:
                    if (bundle_tmp / name).exists():
                        os.replace(bundle_tmp / name, job_dir / name)

    retrying(write, seconds=lease.retry_seconds, what=f"job {lease.job_id} outcome")
    notifier.job_changed(lease.job_id)
    for name in (CHECKPOINT,):
        with contextlib.suppress(OSError):
            (job_dir / name).unlink()
    _clean_stale_files(job_dir)


def _epoch_summary(lease: Lease, task: str, saved_epoch: object) -> dict[str, object]:
    """``best_metrics``: per metric early stopping could watch, its best value over the
    recorded epochs (service.spec.metric_mode); and ``saved_metrics`` from the saved
    epoch's row when there is one (the record, as ``GET …/metrics`` shows it)."""
    with lease.sessions() as s:
        rows = s.execute(
            select(EpochMetric.epoch, EpochMetric.values).where(EpochMetric.job_id == lease.job_id)
        ).all()
    best: dict[str, float | None] = {}
    for name in monitorable_metrics(task):
        seen = [v[name] for _, v in rows if isinstance((v or {}).get(name), int | float)]
        if seen:
            best[name] = max(seen) if metric_mode(name) == "max" else min(seen)
    summary: dict[str, object] = {"best_metrics": best or None}
    saved = next((dict(v) for e, v in rows if e == saved_epoch and v), None)
    if saved is not None:
        summary["saved_metrics"] = saved
    return summary


def _note_resume(sessions: sessionmaker[Session], claimed: Claimed, epoch: int) -> None:
    with sessions() as s, s.begin():
        lifecycle.note_resume(s, job_id=claimed.job_id, attempt=claimed.attempt, epoch=epoch)


def _end_attempt(sessions: sessionmaker[Session], claimed: Claimed, outcome: str) -> None:
    # Best effort: the row only tells how a superseded attempt ended.
    with contextlib.suppress(Exception), sessions() as s, s.begin():
        lifecycle.end_attempt(
            s, job_id=claimed.job_id, attempt=claimed.attempt, outcome=outcome, now=utcnow()
        )


def _release_device_memory() -> None:
    # After a CUDA out-of-memory failure the next job must start with the memory free.
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
