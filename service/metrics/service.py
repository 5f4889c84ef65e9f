"""The service's state as Prometheus gauges, read from SQL and the broker at scrape time.

Nothing here is counted as it happens: every number is read when Prometheus asks, from
the tables that are the truth (jobs, sweeps, epochs, workers) and from the broker, so
any number of API processes report the same values and a restart loses nothing. The
reads run on an engine of their own (one connection), as ``/healthz``'s do, so a
saturated request gate (service/gate.py) cannot stall a scrape, nor a scrape a request.

A part that cannot be read is reported as down rather than failing the scrape:
``descent_database_up`` and ``descent_broker_up`` are 0 and that part's gauges are left
out, so the alert can say which.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from service.db import make_engine, utcnow
from service.fleet.liveness import shown_state
from service.fleet.models import Worker
from service.jobs.models import EpochMetric, Job
from service.jobs.states import JobKind, JobStatus
from service.queue import Producer
from service.sweeps.models import Sweep
from service.sweeps.states import SweepKind, SweepStatus

__all__ = ["EPOCH_WINDOW_SECONDS", "Live", "ServiceState"]

log = logging.getLogger(__name__)

#: The window ``descent_epochs_recorded_per_second`` averages over.
EPOCH_WINDOW_SECONDS = 60
#: How a worker row is shown: its stored state, or ``lost`` when its heartbeat is stale.
WORKER_STATES = ("starting", "ready", "stopping", "stopped", "lost")


@dataclass(frozen=True)
class Live:
    """What the API process knows of itself, read on its event loop before the scrape."""

    streams: dict[str, int]  # open event streams by source
    gate_admitted: int
    gate_waiting: int
    gate_capacity: int


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class ServiceState:
    """Reads the gauges; one per app, :meth:`close` with it. :meth:`collect` blocks (SQL,
    the broker): call it from a thread."""

    def __init__(self, database_url: str, producer: Producer, request_engine: Engine) -> None:
        self.engine = make_engine(database_url, pool_size=1, pool_timeout=5)
        self.producer = producer
        self.request_engine = request_engine
        self.lease_seconds = producer.settings.lease_seconds

    def close(self) -> None:
        self.engine.dispose()

    def collect(self, live: Live) -> Iterable[Metric]:
        up = _gauge("descent_database_up", "1 when the metrics' database reads succeeded.")
        queues = {self.producer.settings.queue}
        try:
            with Session(self.engine) as s:
                families, found = self._database(s)
            queues |= found
            up.add_metric([], 1)
        except Exception as exc:
            log.warning("metrics: the database could not be read: %s", exc)
            families = []
            up.add_metric([], 0)
        yield up
        yield from families
        yield from self._broker(sorted(queues))
        yield from self._process(live)

    # -- SQL ---------------------------------------------------------------------------

    def _database(self, s: Session) -> tuple[list[Metric], set[str]]:
        now = utcnow()
        jobs = _gauge("descent_jobs", "Jobs by status and kind.", ["status", "kind"])
        counts = {(st.value, k.value): 0 for st in JobStatus for k in JobKind}
        by_queue = _gauge(
            "descent_queue_jobs",
            "Jobs queued or running, by the queue they are sent to (SQL's view; compare "
            "descent_queue_depth, the broker's).",
            ["queue", "status"],
        )
        queued: dict[tuple[str, str], int] = {}
        queues = {self.producer.settings.queue}
        rows = s.execute(
            select(Job.status, Job.kind, Job.queue, func.count()).group_by(
                Job.status, Job.kind, Job.queue
            )
        ).all()
        for status, kind, queue, n in rows:
            key = (str(status), str(kind))
            counts[key] = counts.get(key, 0) + n
            # No queue recorded: a job sent before queues were, to the deployment's own.
            queue = queue or self.producer.settings.queue
            queues.add(queue)
            if status in (JobStatus.QUEUED, JobStatus.RUNNING):
                q = (queue, str(status))
                queued[q] = queued.get(q, 0) + n
        for (job_status, job_kind), n in sorted(counts.items()):
            jobs.add_metric([job_status, job_kind], n)
        for queue in sorted(queues):
            for status in (JobStatus.QUEUED, JobStatus.RUNNING):
                by_queue.add_metric([queue, status.value], queued.get((queue, status.value), 0))

        oldest = _gauge(
            "descent_oldest_queued_job_age_seconds",
            "Seconds since the oldest queued job was submitted (0: none waits).",
        )
        first = s.scalar(select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED))
        oldest.add_metric([], max(0.0, (now - first).total_seconds()) if first else 0.0)

        # Only the jobs written to within the window can have rows in it: their fenced
        # writes renew heartbeat_at, their outcome sets finished_at. The rows are then
        # found through the primary key (job_id, epoch), not a scan of every epoch.
        since = now - timedelta(seconds=EPOCH_WINDOW_SECONDS)
        recent = select(Job.id).where(or_(Job.heartbeat_at >= since, Job.finished_at >= since))
        epochs = s.scalar(
            select(func.count()).where(
                EpochMetric.job_id.in_(recent), EpochMetric.recorded_at >= since
            )
        )
        rate = _gauge(
            "descent_epochs_recorded_per_second",
            f"Epochs (and lab rows) recorded per second over the last {EPOCH_WINDOW_SECONDS} s.",
        )
        rate.add_metric([], (epochs or 0) / EPOCH_WINDOW_SECONDS)

        sweeps = _gauge("descent_sweeps", "Sweeps by status and kind.", ["status", "kind"])
        sweep_counts = {(st.value, k.value): 0 for st in SweepStatus for k in SweepKind}
        for sweep_status, sweep_kind, n in s.execute(
            select(Sweep.status, Sweep.kind, func.count()).group_by(Sweep.status, Sweep.kind)
        ).all():
            sweep_counts[(str(sweep_status), str(sweep_kind))] = n
        for (shown_status, shown_kind), n in sorted(sweep_counts.items()):
            sweeps.add_metric([shown_status, shown_kind], n)
        trials = _gauge(
            "descent_sweep_trial_jobs", "Jobs of sweeps' trials, by status.", ["status"]
        )
        trial_counts = {st.value: 0 for st in JobStatus}
        for trial_status, n in s.execute(
            select(Job.status, func.count()).where(Job.sweep_id.is_not(None)).group_by(Job.status)
        ).all():
            trial_counts[str(trial_status)] = n
        for shown, n in sorted(trial_counts.items()):
            trials.add_metric([shown], n)

        workers = _gauge(
            "descent_workers",
            "Worker processes by state; lost: no heartbeat for a lease period, not stopped.",
            ["state"],
        )
        states = dict.fromkeys(WORKER_STATES, 0)
        for state, heartbeat_at in s.execute(select(Worker.state, Worker.heartbeat_at)).all():
            shown = shown_state(state, heartbeat_at, now, self.lease_seconds)
            states[shown] = states.get(shown, 0) + 1
        for state, n in states.items():
            workers.add_metric([state], n)
        return [jobs, by_queue, oldest, rate, sweeps, trials, workers], queues

    # -- the broker --------------------------------------------------------------------

    def _broker(self, queues: list[str]) -> Iterable[Metric]:
        up = _gauge("descent_broker_up", "1 when the broker answered the queue-depth reads.")
        depth = _gauge(
            "descent_queue_depth",
            "Messages waiting in the broker's queue (not yet taken by a worker).",
            ["queue"],
        )
        try:
            for queue in queues:
                depth.add_metric([queue], self.producer.queue_depth(queue))
            up.add_metric([], 1)
        except Exception as exc:  # one failure is enough: each would wait its timeout
            log.warning("metrics: the broker could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        yield up
        yield depth

    # -- this process ------------------------------------------------------------------

    def _process(self, live: Live) -> Iterable[Metric]:
        streams = _gauge(
            "descent_event_streams", "Event streams open on this API process.", ["source"]
        )
        for source, n in sorted(live.streams.items()):
            streams.add_metric([source], n)
        yield streams
        pool = self.request_engine.pool
        checked_out = _gauge(
            "descent_db_pool_checked_out",
            "Database connections of this API process in use now (requests and streams).",
        )
        size = _gauge("descent_db_pool_size", "Database connections this API process keeps.")
        checked_out.add_metric([], float(getattr(pool, "checkedout", lambda: 0)()))
        size.add_metric([], float(getattr(pool, "size", lambda: 0)()))
        yield checked_out
        yield size
        gate = _gauge(
            "descent_db_gate_requests",
            "Requests of this API process holding a turn at the database (admitted) or "
            "waiting for one (waiting); capacity: DESCENT_DB_POOL_SIZE.",
            ["state"],
        )
        gate.add_metric(["admitted"], live.gate_admitted)
        gate.add_metric(["waiting"], live.gate_waiting)
        gate.add_metric(["capacity"], live.gate_capacity)
        yield gate
