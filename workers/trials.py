"""What a sweep's trial does beyond a plain job: after each epoch it records its
objective (and the pruner's step) with the epoch's metrics, takes the sweep's next event
number, and asks the sweep's pruner whether to go on.

The recording happens inside the epoch's fenced transaction (``SqlReporter.record``), so
the objective, the intermediate value, the metrics and the event number are one write.
The pruner's question comes after the commit, against every trial of the sweep as the
database has them then (service/sweeps/study.py); what it notes is written back, fenced.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.jobs.models import Job
from service.jobs.states import JobStatus
from service.spec import JobSpec
from service.sweeps.driver import load_trials, parse_spec
from service.sweeps.models import Sweep
from service.sweeps.spec import SweepSpec
from service.sweeps.study import JobRow, judge, step_of
from workers.engine.report import PruneTrial

log = logging.getLogger(__name__)


@dataclass
class Trial:
    """One job of a sweep, as its worker sees it."""

    job_id: str
    sweep_id: str
    number: int
    repeat: int
    spec: Any  # SweepSpec | ComparisonSpec
    epochs: int
    warmup: int
    objective: float | None = None
    intermediate: dict[str, float] = field(default_factory=dict)
    pruner_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return self.spec.objective.metric

    def observe(self, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        """Fold the epoch into the objective; the job columns to write with it."""
        value = metrics.get(self.metric)
        if value is not None and math.isfinite(value):
            if self.spec.objective.measure == "last" or self.objective is None:
                self.objective = value
            elif self.spec.objective.mode == "max":
                self.objective = max(self.objective, value)
            else:
                self.objective = min(self.objective, value)
            step = self.step(epoch)
            self.intermediate = self.intermediate | {str(step): self.objective}
        return {"objective": self.objective, "intermediate": dict(self.intermediate)}

    def step(self, epoch: int) -> int:
        measure = getattr(getattr(self.spec, "pruner", None), "measure", "epoch")
        return step_of(measure, epoch, self.epochs)

    def next_event(self, s: Session) -> int:
        """The sweep's next event number. Taking it locks the sweep's row until the
        transaction commits, so numbers become visible in the order they were taken."""
        return s.execute(
            update(Sweep)
            .where(Sweep.id == self.sweep_id)
            .values(event_seq=Sweep.event_seq + 1)
            .returning(Sweep.event_seq)
        ).scalar_one()

    def judged(self, epoch: int) -> bool:
        """Whether the pruner may look at this epoch."""
        if not isinstance(self.spec, SweepSpec) or self.spec.pruner.name == "none":
            return False
        if epoch >= self.epochs:
            return False  # the last epoch: nothing left to save
        if self.spec.pruner.skip_warmup and epoch <= self.warmup:
            return False
        return str(self.step(epoch)) in self.intermediate

    def ask_pruner(
        self,
        sessions: sessionmaker[Session],
        epoch: int,
        write: Callable[[dict[str, Any]], None],
    ) -> None:
        """Ask the sweep's pruner about this epoch; raises ``PruneTrial`` with its reason
        when the trial should stop."""
        if not self.judged(epoch):
            return
        try:
            with sessions() as s:
                trials = load_trials(s, self.sweep_id)
            me = JobRow(
                self.job_id,
                JobStatus.RUNNING,
                self.repeat,
                self.objective,
                dict(self.intermediate),
                dict(self.pruner_attrs),
                epoch,
            )
            verdict = judge(self.sweep_id, self.spec, trials, self.number, me, self.step(epoch))
        except Exception:
            # The pruner is advice: a trial it cannot judge trains on.
            log.exception("job %s: the pruner could not judge epoch %d", self.job_id, epoch)
            return
        if verdict.attrs:
            self.pruner_attrs = self.pruner_attrs | verdict.attrs
            write({"pruner_attrs": dict(self.pruner_attrs)})
        if verdict.prune and verdict.reason is not None:
            raise PruneTrial(verdict.reason)


def load_trial(s: Session, job: Job, spec: JobSpec) -> Trial | None:
    """The job's trial, if it is one (a sweep's range test belongs to it but is none)."""
    if job.sweep_id is None or job.trial_number is None:
        return None
    sweep = s.get(Sweep, job.sweep_id)
    if sweep is None:
        return None
    return Trial(
        job_id=job.id,
        sweep_id=sweep.id,
        number=job.trial_number or 0,
        repeat=job.repeat or 0,
        spec=parse_spec(sweep),
        epochs=spec.training.epochs,
        warmup=spec.schedule.warmup_epochs,
        objective=job.objective,
        intermediate=dict(job.intermediate or {}),
        pruner_attrs=dict(job.pruner_attrs or {}),
    )


def sweep_of(s: Session, job_id: str) -> str | None:
    return s.scalar(select(Job.sweep_id).where(Job.id == job_id))
