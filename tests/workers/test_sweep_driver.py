"""The sweep driver (service/sweeps/driver.py) and a trial's side of the worker
(workers/trials.py, workers/runner.py) against a real database — a SQLite file and
PostgreSQL — without Celery: the jobs a driver sends are run in this process with
``workers.runner.run_job``, one after the other, exactly as a worker would run them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from job_results import landscape_record, range_test_record
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from support import IN_PROCESS_WORKER, Backend, wait_for

from service.config import Settings
from service.jobs.models import EpochMetric, Job
from service.jobs.states import JobStatus
from service.spec.results import RangeTestRecord
from service.sweeps import driver
from service.sweeps import service as sweep_service
from service.sweeps.models import Sweep, SweepTrial
from service.sweeps.schemas import AutoBounds
from service.sweeps.spec import ComparisonSpec, SweepSpec
from service.sweeps.states import SweepKind, SweepStatus
from service.sweeps.validate import check_comparison, check_sweep
from workers import runner

BASE: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [16]},
    "training": {"epochs": 3, "batch_size": 64},
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings().model_copy(update=IN_PROCESS_WORKER)


@pytest.fixture
def owner(sessions: sessionmaker[Session]) -> str:
    from service.auth.service import create_user

    with sessions() as s:
        user = create_user(session=s, name="sweeper", role="user")
        s.commit()
        return user.id


class Harness:
    """A sweep's jobs, run in-process in the order their messages were sent."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, owner: str) -> None:
        self.sessions, self.settings, self.owner = sessions, settings, owner
        self.queue: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.max_active: dict[str, int] = {}

    def send(self, job_id: str, dispatch: int, queue: str | None = None) -> None:
        with self.lock:
            self.queue.append((job_id, dispatch))
        with self.sessions() as s:
            sweep_id, recorded = s.execute(
                select(Job.sweep_id, Job.queue).where(Job.id == job_id)
            ).one()
            # Every trial goes to its sweep's queue, recorded with the job.
            assert queue == recorded == self.settings.queue, (queue, recorded)
            active = s.scalar(
                select(func.count(func.distinct(Job.trial_number))).where(
                    Job.sweep_id == sweep_id, Job.status.in_(JobStatus.ACTIVE)
                )
            )
        self.max_active[sweep_id] = max(self.max_active.get(sweep_id, 0), active or 0)

    def create(self, **kw: Any) -> str:
        spec = SweepSpec.model_validate({"base": BASE} | kw)
        with self.sessions() as s:
            stored, task = check_sweep(spec, session=s, settings=self.settings, owner=self.owner)
        return self._store(stored, task, SweepKind.SEARCH)

    def create_comparison(self, **kw: Any) -> str:
        spec = ComparisonSpec.model_validate({"base": BASE} | kw)
        with self.sessions() as s:
            stored, task = check_comparison(
                spec, session=s, settings=self.settings, owner=self.owner
            )
        return self._store(stored, task, SweepKind.COMPARISON)

    def _store(self, stored: dict[str, Any], task: str, kind: str) -> str:
        import uuid

        sweep_id = str(uuid.uuid4())
        with self.sessions() as s, s.begin():
            s.add(
                Sweep(
                    id=sweep_id,
                    owner_id=self.owner,
                    name=stored.get("name", "test sweep"),
                    kind=kind,
                    status=SweepStatus.RUNNING,
                    spec=stored,
                    task=task,
                    max_trials=sweep_service.max_trials_of(kind, stored),
                )
            )
        return sweep_id

    def advance(self, sweep_id: str) -> int:
        return driver.advance(self.sessions, self.settings, sweep_id, self.send)

    def run_next(self) -> str:
        with self.lock:
            job_id, dispatch = self.queue.pop(0)
        # The runner sends the sweep's next trials through ``send``, as a task passes it.
        runner.run_job(job_id, settings=self.settings, dispatch=dispatch, send=self.send)
        return job_id

    def drain(self, limit: int = 100) -> int:
        ran = 0
        while self.queue:
            self.run_next()
            ran += 1
            assert ran <= limit, "the sweep never ends"
        return ran

    # -- reading back -----------------------------------------------------------

    def sweep(self, sweep_id: str) -> Sweep:
        with self.sessions() as s:
            sweep = s.get(Sweep, sweep_id)
            assert sweep is not None
            return sweep

    def jobs(self, sweep_id: str) -> list[Job]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(Job)
                    .where(Job.sweep_id == sweep_id)
                    .order_by(Job.trial_number, Job.repeat)
                )
            )

    def trials(self, sweep_id: str) -> list[SweepTrial]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(SweepTrial)
                    .where(SweepTrial.sweep_id == sweep_id)
                    .order_by(SweepTrial.number)
                )
            )

    def sweep_seqs(self, sweep_id: str) -> list[int | None]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(EpochMetric.sweep_seq)
                    .join(Job, Job.id == EpochMetric.job_id)
                    .where(Job.sweep_id == sweep_id)
                )
            )


@pytest.fixture
def harness(sessions: sessionmaker[Session], settings: Settings, owner: str) -> Harness:
    return Harness(sessions, settings, owner)


# -- a sweep from start to end ----------------------------------------------------------


def test_a_sweep_runs_max_trials_with_parallelism_and_ends(harness: Harness) -> None:
    sweep_id = harness.create(
        space={"optimizer.lr": {"loguniform": [1e-3, 1e-1]}},
        sampler={"name": "random", "seed": 3},
        max_trials=4,
        parallelism=2,
        objective={"metric": "val_accuracy"},
    )
    assert harness.advance(sweep_id) == 2  # parallelism, while none has ended
    assert harness.advance(sweep_id) == 0
    assert harness.sweep(sweep_id).trials_created == 2
    assert len(harness.queue) == 2

    assert harness.drain() == 4
    assert harness.max_active[sweep_id] <= 2

    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.SUCCEEDED, sweep.status_reason
    assert sweep.status_reason == "4 trials: 4 complete"
    assert sweep.finished_at is not None
    assert sweep.trials_created == 4
    trials = harness.trials(sweep_id)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    jobs = harness.jobs(sweep_id)
    assert [(j.trial_number, j.repeat) for j in jobs] == [(0, 0), (1, 0), (2, 0), (3, 0)]
    for trial, job in zip(trials, jobs, strict=True):
        assert job.status == JobStatus.SUCCEEDED
        assert job.epochs_completed == 3
        assert job.spec["optimizer"]["lr"] == pytest.approx(trial.params["optimizer.lr"])
        assert job.spec["training"]["seed"] == 0
        assert job.spec["model"]["hidden"] == [16]
        assert set(job.intermediate) == {"1", "2", "3"}
        # objective: the best epoch so far (max for an accuracy)
        assert job.objective == pytest.approx(max(job.intermediate.values()))
        assert 0.0 <= job.objective <= 1.0
    # nothing more happens to an ended sweep
    assert harness.advance(sweep_id) == 0
    assert harness.queue == []

    # events: one per epoch, numbered 1..N in the sweep, and event_seq is N
    seqs = harness.sweep_seqs(sweep_id)
    assert sorted(seqs) == list(range(1, 4 * 3 + 1))
    assert harness.sweep(sweep_id).event_seq == 12


def test_objective_last_follows_the_last_epoch(harness: Harness) -> None:
    sweep_id = harness.create(
        space={"optimizer.lr": {"grid": [0.05]}},
        sampler={"name": "grid"},
        objective={"metric": "val_loss", "measure": "last"},
    )
    harness.advance(sweep_id)
    harness.drain()
    (job,) = harness.jobs(sweep_id)
    assert job.objective == pytest.approx(job.intermediate["3"])
    with harness.sessions() as s:
        last = s.scalars(
            select(EpochMetric.values).where(EpochMetric.job_id == job.id, EpochMetric.epoch == 3)
        ).one()
    assert job.objective == pytest.approx(last["val_loss"])


def test_a_grid_with_repeats_runs_each_point_with_each_seed(harness: Harness) -> None:
    sweep_id = harness.create(
        base=BASE | {"training": {"epochs": 2, "batch_size": 64, "seed": 5}},
        space={
            "optimizer.lr": {"grid": [0.01, 0.1]},
            "optimizer.name": {"choice": ["sgd", "adam"]},
        },
        sampler={"name": "grid"},
        repeats=2,
        parallelism=1,
    )
    assert harness.sweep(sweep_id).spec["max_trials"] == harness.sweep(sweep_id).max_trials == 4
    assert harness.advance(sweep_id) == 1
    assert len(harness.queue) == 2  # one trial, one job per seed
    harness.drain()
    assert harness.max_active[sweep_id] == 1
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.SUCCEEDED, sweep.status_reason
    trials = harness.trials(sweep_id)
    points = sorted((t.params["optimizer.lr"], t.params["optimizer.name"]) for t in trials)
    assert points == [(0.01, "adam"), (0.01, "sgd"), (0.1, "adam"), (0.1, "sgd")]
    jobs = harness.jobs(sweep_id)
    assert len(jobs) == 8
    for t in trials:
        mine = [j for j in jobs if j.trial_number == t.number]
        assert [j.repeat for j in mine] == [0, 1]
        assert [j.spec["training"]["seed"] for j in mine] == [5, 6]
        assert {j.spec["optimizer"]["name"] for j in mine} == {t.params["optimizer.name"]}
        assert all(j.status == JobStatus.SUCCEEDED for j in mine)
    assert sorted(harness.sweep_seqs(sweep_id)) == list(range(1, 8 * 2 + 1))


def test_a_comparison_runs_each_configuration_with_the_same_seeds(harness: Harness) -> None:
    sweep_id = harness.create_comparison(
        base=BASE | {"training": {"epochs": 2, "batch_size": 64}},
        configurations=[
            {"label": "sgd", "set": {"optimizer.name": "sgd", "optimizer.lr": 0.1}},
            {"label": "adam", "set": {"optimizer.name": "adam"}},
        ],
        repeats=2,
        parallelism=2,
    )
    assert harness.advance(sweep_id) == 2
    harness.drain()
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.SUCCEEDED, sweep.status_reason
    trials = harness.trials(sweep_id)
    assert [t.optuna for t in trials] == [{"label": "sgd"}, {"label": "adam"}]
    jobs = harness.jobs(sweep_id)
    assert [(j.trial_number, j.spec["training"]["seed"]) for j in jobs] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert [j.spec["optimizer"]["name"] for j in jobs] == ["sgd", "sgd", "adam", "adam"]
    assert all(j.status == JobStatus.SUCCEEDED and j.objective is not None for j in jobs)


# -- trials that fail or are pruned ------------------------------------------------------


#: Each width alone is fine; hidden [16, 64] has 2,778 parameters, above the cap of 2,000.
NARROW = {"max_parameters": 2000}
WIDTHS = {"model.hidden.0": {"choice": [4, 16]}, "model.hidden.1": {"choice": [4, 64]}}


def test_an_invalid_sampled_combination_fails_its_trial_and_the_sweep_goes_on(
    harness: Harness,
) -> None:
    harness.settings = harness.settings.model_copy(update=NARROW)
    sweep_id = harness.create(
        base=BASE
        | {"model": {"kind": "mlp", "hidden": [4, 4]}, "training": {"epochs": 2, "batch_size": 64}},
        space=WIDTHS,
        sampler={"name": "random", "seed": 1},
        max_trials=8,
        parallelism=2,
    )
    harness.advance(sweep_id)
    harness.drain()
    sweep = harness.sweep(sweep_id)
    assert sweep.trials_created == 8
    trials = {t.number: t for t in harness.trials(sweep_id)}
    jobs = harness.jobs(sweep_id)
    assert len(jobs) == 8
    bad = [
        j
        for j in jobs
        if trials[j.trial_number].params == {"model.hidden.0": 16, "model.hidden.1": 64}
    ]
    good = [j for j in jobs if j not in bad]
    assert bad and good, "pick a sampler seed that draws both kinds of trial"
    for j in bad:
        assert j.status == JobStatus.FAILED
        assert j.status_reason is not None
        assert j.status_reason.startswith("the trial's values make an invalid job:")
        assert "parameters" in j.status_reason
        assert j.epochs_completed == 0 and j.finished_at is not None
    assert all(j.status == JobStatus.SUCCEEDED for j in good)
    assert sweep.status == SweepStatus.SUCCEEDED
    assert f"{len(good)} complete" in (sweep.status_reason or "")
    assert f"{len(bad)} fail" in (sweep.status_reason or "")


def test_a_sweep_whose_every_trial_is_invalid_fails(harness: Harness) -> None:
    harness.settings = harness.settings.model_copy(update=NARROW)
    sweep_id = harness.create(
        base=BASE | {"model": {"kind": "mlp", "hidden": [4, 4]}},
        space={"model.hidden.0": {"choice": [16]}, "model.hidden.1": {"choice": [64]}},
        sampler={"name": "random", "seed": 1},
        max_trials=3,
    )
    assert harness.advance(sweep_id) == 3  # failed at once: they take no room
    assert harness.queue == []
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.FAILED
    assert sweep.status_reason == "no trial completed (3 fail)"
    assert [j.status for j in harness.jobs(sweep_id)] == [JobStatus.FAILED] * 3


def test_a_pruned_trial_ends_pruned_before_its_last_epoch(harness: Harness) -> None:
    # The grid's order (seed 5: 0.02, 1e-7, 0.01) puts the hopeless rate after a good
    # one: ASHA with η = 2 keeps only the best at rung 0 while fewer than 4 reached it.
    sweep_id = harness.create(
        base=BASE | {"training": {"epochs": 5, "batch_size": 64}},
        space={"optimizer.lr": {"grid": [0.02, 1e-7, 0.01]}},
        sampler={"name": "grid", "seed": 5},
        pruner={"name": "asha", "grace": 1, "reduction_factor": 2},
        parallelism=1,
    )
    harness.advance(sweep_id)
    harness.drain()
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.SUCCEEDED, sweep.status_reason
    trials = {t.number: t for t in harness.trials(sweep_id)}
    jobs = harness.jobs(sweep_id)
    hopeless = next(j for j in jobs if trials[j.trial_number].params["optimizer.lr"] == 1e-7)
    assert hopeless.trial_number != 0, "pick a grid seed that does not run 1e-7 first"
    assert hopeless.status == JobStatus.PRUNED
    assert hopeless.epochs_completed < 5
    assert hopeless.status_reason is not None
    assert "asha" in hopeless.status_reason and "pruned" in hopeless.status_reason
    assert hopeless.finished_at is not None
    assert hopeless.pruner_attrs and any(
        k.startswith("completed_rung_") for k in hopeless.pruner_attrs
    )
    assert set(hopeless.intermediate) == {str(e) for e in range(1, hopeless.epochs_completed + 1)}
    pruned = [j for j in jobs if j.status == JobStatus.PRUNED]
    assert "pruned" in (sweep.status_reason or "")
    assert f"{len(pruned)} pruned" in (sweep.status_reason or "")
    assert sorted(harness.sweep_seqs(sweep_id)) == list(
        range(1, sum(j.epochs_completed for j in jobs) + 1)
    )


def test_no_trial_is_judged_during_its_warmup(harness: Harness) -> None:
    # As above, with a two-epoch warm-up: the hopeless trial is first judged at epoch 3.
    sweep_id = harness.create(
        base=BASE
        | {
            "training": {"epochs": 5, "batch_size": 64},
            "schedule": {"name": "constant", "warmup_epochs": 2},
        },
        space={"optimizer.lr": {"grid": [0.02, 1e-7]}},
        sampler={"name": "grid", "seed": 5},
        pruner={"name": "asha", "grace": 1, "reduction_factor": 2},
        parallelism=1,
    )
    harness.advance(sweep_id)
    harness.drain()
    trials = {t.number: t for t in harness.trials(sweep_id)}
    assert trials[0].params["optimizer.lr"] == 0.02, "pick a grid seed that runs 0.02 first"
    first, hopeless = harness.jobs(sweep_id)
    assert first.status == JobStatus.SUCCEEDED and first.epochs_completed == 5
    assert hopeless.status == JobStatus.PRUNED, hopeless.status_reason
    assert hopeless.epochs_completed == 3
    assert "at step 3" in (hopeless.status_reason or "")


def test_one_cycle_trials_report_progress_steps(harness: Harness) -> None:
    sweep_id = harness.create(
        base=BASE
        | {"training": {"epochs": 4, "batch_size": 64}, "schedule": {"name": "one_cycle"}},
        space={"optimizer.lr": {"grid": [0.01]}},
        sampler={"name": "grid"},
        pruner={"name": "asha"},
    )
    assert harness.sweep(sweep_id).spec["pruner"]["measure"] == "progress"
    harness.advance(sweep_id)
    harness.drain()
    (job,) = harness.jobs(sweep_id)
    assert job.status == JobStatus.SUCCEEDED
    assert set(job.intermediate) == {"25", "50", "75", "100"}


# -- budgets and cancelling --------------------------------------------------------------


def test_the_epochs_budget_stops_new_trials(harness: Harness) -> None:
    sweep_id = harness.create(
        space={"optimizer.lr": {"loguniform": [1e-3, 1e-1]}},
        sampler={"name": "random", "seed": 2},
        max_trials=10,
        parallelism=1,
        budget={"epochs": 5},
    )
    harness.advance(sweep_id)
    harness.drain()
    sweep = harness.sweep(sweep_id)
    assert sweep.trials_created == 2  # 3 epochs < 5, then 6 >= 5
    assert sweep.status == SweepStatus.SUCCEEDED
    assert "stopped at its budget of 5 epochs" in (sweep.status_reason or "")
    assert sum(j.epochs_completed for j in harness.jobs(sweep_id)) == 6


def test_the_time_budget_ends_the_sweep(harness: Harness) -> None:
    sweep_id = harness.create(
        space={"optimizer.lr": {"loguniform": [1e-3, 1e-1]}},
        sampler={"name": "random", "seed": 2},
        budget={"seconds": 0.001},
    )
    import time

    time.sleep(0.01)
    assert harness.advance(sweep_id) == 0
    sweep = harness.sweep(sweep_id)
    # Out of time before any trial completed: nothing to show for it.
    assert sweep.status == "failed"
    assert "time budget" in (sweep.status_reason or "")
    assert sweep.trials_created == 0


def test_cancel_stops_queued_jobs_and_creates_nothing_more(harness: Harness) -> None:
    sweep_id = harness.create(
        space={"optimizer.lr": {"loguniform": [1e-3, 1e-1]}},
        sampler={"name": "random", "seed": 2},
        max_trials=6,
        parallelism=2,
    )
    assert harness.advance(sweep_id) == 2
    first = harness.run_next()  # its end creates trial 2
    assert harness.sweep(sweep_id).trials_created == 3
    notified: list[str] = []
    assert driver.end(
        harness.sessions,
        sweep_id,
        SweepStatus.CANCELLED,
        "cancelled by request",
        cancel_requested=True,
        notify=notified.append,
    )
    assert not driver.end(harness.sessions, sweep_id, SweepStatus.CANCELLED, "again")
    harness.drain()  # the queued messages find their jobs cancelled
    assert harness.advance(sweep_id) == 0
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.CANCELLED
    assert sweep.status_reason == "cancelled by request"
    assert sweep.cancel_requested
    assert sweep.trials_created == 3
    jobs = harness.jobs(sweep_id)
    assert [j.status for j in jobs] == [
        JobStatus.SUCCEEDED,
        JobStatus.CANCELLED,
        JobStatus.CANCELLED,
    ]
    assert jobs[0].id == first
    for j in jobs[1:]:
        assert j.status_reason == "the sweep ended: cancelled by request"
        assert j.epochs_completed == 0
        assert j.id in notified


def test_cancel_stops_a_running_trial(harness: Harness) -> None:
    sweep_id = harness.create(
        base=BASE | {"training": {"epochs": 400, "batch_size": 64}},
        space={"optimizer.lr": {"loguniform": [1e-3, 1e-1]}},
        sampler={"name": "random", "seed": 2},
        max_trials=3,
        parallelism=1,
    )
    assert harness.advance(sweep_id) == 1
    thread = threading.Thread(target=harness.run_next)
    thread.start()
    try:

        def started() -> bool:
            (job,) = harness.jobs(sweep_id)
            return job.epochs_completed >= 1

        wait_for(started, 30, what="the trial's first epoch")
        assert driver.end(
            harness.sessions, sweep_id, SweepStatus.CANCELLED, "stop", cancel_requested=True
        )
    finally:
        thread.join(60)
    assert not thread.is_alive()
    (job,) = harness.jobs(sweep_id)
    assert job.status == JobStatus.CANCELLED
    assert job.epochs_completed < 400
    assert harness.queue == []  # its end created no trial
    assert harness.sweep(sweep_id).trials_created == 1


# -- many drivers at once -----------------------------------------------------------------


#: What advance() raises when another driver commits a trial between its read of the
#: sweep row and its read of the trials (see test_a_trial_created_between_advances_reads).
RACE = "would be Optuna's"


@pytest.mark.parametrize(("parallelism", "expected"), [(8, 8), (3, 3)])
def test_concurrent_advances_never_create_a_trial_twice(
    harness: Harness, parallelism: int, expected: int
) -> None:
    sweep_id = harness.create(
        space={"optimizer.lr": {"loguniform": [1e-3, 1e-1]}},
        sampler={"name": "random", "seed": 9},
        max_trials=8,
        parallelism=parallelism,
    )
    created: list[int] = []
    errors: list[BaseException] = []
    races: list[BaseException] = []
    barrier = threading.Barrier(6)

    def drive() -> None:
        barrier.wait()
        for _ in range(3):
            try:
                created.append(harness.advance(sweep_id))
            except RuntimeError as exc:
                if RACE in str(exc):  # the known race, tested on its own below
                    races.append(exc)
                else:
                    errors.append(exc)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=drive) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    created.append(harness.advance(sweep_id))  # as the next tick would, after the race
    # an advance that raised after creating trials could not count them
    assert sum(created) == expected if not races else sum(created) <= expected
    sweep = harness.sweep(sweep_id)
    assert sweep.trials_created == expected
    assert [t.number for t in harness.trials(sweep_id)] == list(range(expected))
    jobs = harness.jobs(sweep_id)
    assert sorted(j.trial_number for j in jobs) == list(range(expected))
    assert sorted(j for j, _ in harness.queue) == sorted(j.id for j in jobs)
    assert harness.max_active[sweep_id] <= parallelism


def test_a_trial_created_between_advances_reads(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driver A reads the sweep row (trials_created = 0); driver B creates the trials
    there is room for; A then reads the trials and finds them. A must look again and
    create nothing, not raise. (Seen for real with six threads advancing one sweep.)"""
    sweep_id = harness.create(
        space={"optimizer.lr": {"loguniform": [1e-3, 1e-1]}},
        sampler={"name": "random", "seed": 9},
        max_trials=2,
        parallelism=4,
    )
    real = driver.load_trials
    raced: list[int] = []

    def racing_load_trials(session: Session, sid: str) -> Any:
        if not raced:  # A, between its two reads: B runs, and its own reads are plain
            raced.append(-1)
            raced[0] = driver.advance(harness.sessions, harness.settings, sid, harness.send)
        return real(session, sid)

    monkeypatch.setattr(driver, "load_trials", racing_load_trials)
    try:
        created = harness.advance(sweep_id)
    except RuntimeError as exc:
        pytest.fail(
            "BUG service/sweeps/driver.py advance(): it reads the sweep row and then the "
            "trials in separate statements (no common snapshot: SQLite's autocommit reads, "
            "PostgreSQL's READ COMMITTED), so a trial another driver commits in between "
            f"makes sample() raise instead of the driver looking again: {exc}"
        )
    assert raced == [2]  # B made both trials (max_trials = 2)
    assert created == 0
    assert harness.sweep(sweep_id).trials_created == 2


# -- the reaper's tick ---------------------------------------------------------------------


def test_tick_starts_new_sweeps(harness: Harness) -> None:
    a = harness.create(space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, parallelism=2)
    b = harness.create(space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, parallelism=1)
    driver.tick(harness.sessions, harness.settings, harness.send)
    assert harness.sweep(a).trials_created == 2
    assert harness.sweep(b).trials_created == 1
    driver.tick(harness.sessions, harness.settings, harness.send)
    assert len(harness.queue) == 3


def test_tick_finishes_stopping_the_trials_of_a_sweep_ended_half_way(harness: Harness) -> None:
    sweep_id = harness.create(
        space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, max_trials=5, parallelism=2
    )
    assert harness.advance(sweep_id) == 2
    queued, running = harness.jobs(sweep_id)
    with harness.sessions() as s, s.begin():
        # a worker holds the second; then the end's first transaction, and a crash
        s.execute(
            update(Job).where(Job.id == running.id).values(status=JobStatus.RUNNING, attempt=1)
        )
        s.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id)
            .values(status=SweepStatus.CANCELLED, status_reason="cancelled by request")
        )
    notified: list[str] = []
    driver.tick(harness.sessions, harness.settings, harness.send, notified.append)
    after = {j.id: j for j in harness.jobs(sweep_id)}
    assert after[queued.id].status == JobStatus.CANCELLED
    assert after[queued.id].status_reason == "the sweep has ended"
    assert after[running.id].status == JobStatus.RUNNING
    assert after[running.id].cancel_requested  # its worker stops it
    assert set(notified) == {queued.id, running.id}
    assert harness.sweep(sweep_id).trials_created == 2  # nothing new
    # once done, the next tick has nothing to do
    notified.clear()
    driver.tick(harness.sessions, harness.settings, harness.send, notified.append)
    assert notified == []


def test_tick_survives_a_sweep_it_cannot_advance(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = harness.create(space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, parallelism=1)
    b = harness.create(space={"optimizer.lr": {"uniform": [0.01, 0.1]}}, parallelism=1)
    real: Callable[..., int] = driver.advance

    def flaky(sessions: Any, settings: Any, sweep_id: str, *args: Any) -> int:
        if sweep_id == a:
            raise RuntimeError("boom")
        return real(sessions, settings, sweep_id, *args)

    monkeypatch.setattr(driver, "advance", flaky)
    driver.tick(harness.sessions, harness.settings, harness.send)
    assert harness.sweep(a).trials_created == 0
    assert harness.sweep(b).trials_created == 1


def test_load_trials_and_parse_spec(harness: Harness) -> None:
    sweep_id = harness.create(
        space={"optimizer.lr": {"grid": [0.01, 0.1]}}, sampler={"name": "grid"}, parallelism=2
    )
    harness.advance(sweep_id)
    spec = driver.parse_spec(harness.sweep(sweep_id))
    assert isinstance(spec, SweepSpec) and spec.max_trials == 2
    with harness.sessions() as s:
        rows = driver.load_trials(s, sweep_id)
    assert [r.number for r in rows] == [0, 1]
    assert all(r.active and r.outcome() == ("running", None) for r in rows)
    assert all(len(r.jobs) == 1 and r.jobs[0].status == JobStatus.QUEUED for r in rows)


# -- "auto" ends: a range test before the first trial -------------------------------------


def _create_auto(harness: Harness, **kw: Any) -> str:
    """A sweep created as POST /v1/sweeps creates it: with its range-test job, whose
    message goes to the harness's queue."""

    class Producer:
        def enqueue_training(self, job_id: str, dispatch: int, queue: str | None = None) -> None:
            harness.send(job_id, dispatch, queue)

    body = {
        "base": BASE,
        "space": {"optimizer.lr": {"loguniform": ["auto", "auto"]}},
        "sampler": {"name": "random", "seed": 3},
        "range_test": {"steps": 40, "lr_min": 1e-5, "lr_max": 10.0},
        "max_trials": 3,
        "parallelism": 1,
    } | kw
    with harness.sessions() as s:
        sweep = sweep_service.create(
            session=s,
            settings=harness.settings,
            spec=SweepSpec.model_validate(body),
            owner=harness.owner,
            producer=Producer(),  # type: ignore[arg-type]
        )
        return sweep.id


def _range_test_job(harness: Harness, sweep_id: str) -> Job:
    jobs = [j for j in harness.jobs(sweep_id) if j.trial_number is None]
    assert len(jobs) == 1
    return jobs[0]


def test_auto_ends_come_from_the_range_test_before_any_trial(harness: Harness) -> None:
    sweep_id = _create_auto(harness)
    test = _range_test_job(harness, sweep_id)
    assert test.kind == "lr_range_test" and test.status == JobStatus.QUEUED
    assert harness.queue == [(test.id, test.dispatch)]
    assert harness.sweep(sweep_id).auto_bounds == AutoBounds(paths=["optimizer.lr"], job_id=test.id)
    assert "auto_bounds" not in harness.sweep(sweep_id).spec  # the spec is as sent
    # No trial while the test has not run: advancing waits.
    assert harness.advance(sweep_id) == 0
    assert harness.sweep(sweep_id).trials_created == 0

    assert harness.run_next() == test.id  # its end sets the ends and starts trial 0
    test = _range_test_job(harness, sweep_id)
    assert test.status == JobStatus.SUCCEEDED, test.status_reason
    assert isinstance(test.result, RangeTestRecord) and test.result.best is not None
    best_lr = test.result.best.lr
    sweep = harness.sweep(sweep_id)
    record = sweep.auto_bounds
    assert record is not None
    high = float(f"{best_lr:.3g}")
    low = float(f"{high / 100:.3g}")
    assert record.bounds == {"optimizer.lr": [low, high]}
    assert record.lr_at_minimum == high
    assert record.why is not None and f"lr {high:g}" in record.why
    # The stored spec keeps "auto" as it was sent; the trials sample the resolved ends.
    assert sweep.spec["space"]["optimizer.lr"] == {"loguniform": ["auto", "auto"]}
    assert driver.parse_spec(sweep).space["optimizer.lr"].loguniform == (low, high)
    assert sweep.trials_created == 1

    harness.drain()
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.SUCCEEDED, sweep.status_reason
    assert sweep.status_reason == "3 trials: 3 complete"
    trials = harness.trials(sweep_id)
    assert len(trials) == 3
    assert all(low <= t.params["optimizer.lr"] <= high for t in trials)
    # The range test is the sweep's job but no trial: not judged, not in its event stream.
    with harness.sessions() as s:
        seqs = s.scalars(select(EpochMetric.sweep_seq).where(EpochMetric.job_id == test.id)).all()
        assert len(seqs) == test.epochs_completed > 0 and set(seqs) == {None}
        assert [t.number for t in driver.load_trials(s, sweep_id)] == [0, 1, 2]


def _end_test(harness: Harness, job_id: str, **values: Any) -> None:
    with harness.sessions() as s, s.begin():
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def test_a_failed_range_test_fails_the_sweep_with_its_reason(harness: Harness) -> None:
    sweep_id = _create_auto(harness)
    test = _range_test_job(harness, sweep_id)
    _end_test(harness, test.id, status=JobStatus.FAILED, status_reason="RuntimeError: boom")
    assert harness.advance(sweep_id) == 0
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.FAILED
    assert sweep.status_reason == f"its range test (job {test.id}) failed: RuntimeError: boom"
    assert sweep.trials_created == 0
    assert sweep.auto_bounds is not None and sweep.auto_bounds.bounds is None


def test_a_range_test_whose_loss_never_fell_fails_the_sweep(harness: Harness) -> None:
    sweep_id = _create_auto(harness)
    test = _range_test_job(harness, sweep_id)
    flat = range_test_record(step=1, lr=1e-5)
    _end_test(harness, test.id, status=JobStatus.SUCCEEDED, result=flat)
    harness.advance(sweep_id)
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.FAILED
    assert "never fell" in sweep.status_reason and "numeric bounds" in sweep.status_reason


def test_a_numeric_end_the_test_crosses_fails_the_sweep(harness: Harness) -> None:
    sweep_id = _create_auto(harness, space={"optimizer.lr": {"uniform": [0.5, "auto"]}})
    test = _range_test_job(harness, sweep_id)
    _end_test(
        harness, test.id, status=JobStatus.SUCCEEDED, result=range_test_record(step=30, lr=0.2)
    )
    harness.advance(sweep_id)
    sweep = harness.sweep(sweep_id)
    assert sweep.status == SweepStatus.FAILED
    assert sweep.status_reason.startswith("space.optimizer.lr:")
    assert "[0.5, 0.2]" in sweep.status_reason


def test_one_auto_end_keeps_the_other(harness: Harness) -> None:
    sweep_id = _create_auto(
        harness, space={"optimizer.lr": {"uniform": [1e-4, "auto"]}}, max_trials=1
    )
    test = _range_test_job(harness, sweep_id)
    _end_test(
        harness,
        test.id,
        status=JobStatus.SUCCEEDED,
        result=range_test_record(step=30, lr=0.123456),
    )
    assert harness.advance(sweep_id) == 1
    sweep = harness.sweep(sweep_id)
    assert sweep.spec["space"]["optimizer.lr"] == {"uniform": [1e-4, "auto"]}
    assert sweep.auto_bounds is not None
    assert sweep.auto_bounds.bounds == {"optimizer.lr": [1e-4, 0.123]}
    assert driver.parse_spec(sweep).space["optimizer.lr"].uniform == (1e-4, 0.123)


def test_cancelling_a_sweep_cancels_its_range_test(harness: Harness) -> None:
    sweep_id = _create_auto(harness)
    assert driver.end(
        harness.sessions,
        sweep_id,
        SweepStatus.CANCELLED,
        "cancelled by request",
        cancel_requested=True,
    )
    harness.drain()  # the message finds its job cancelled
    test = _range_test_job(harness, sweep_id)
    assert test.status == JobStatus.CANCELLED and test.epochs_completed == 0
    assert harness.advance(sweep_id) == 0
    assert harness.sweep(sweep_id).trials_created == 0


def test_auto_ends_from_a_result() -> None:
    low, high, why = driver.auto_ends(range_test_record(step=57, lr=0.31622776))
    assert (low, high) == (0.00316, 0.316)
    assert "step 57" in why
    no_best = range_test_record(step=2, lr=0.1).model_copy(update={"best": None})
    not_a_range_test = landscape_record()
    for result in (None, no_best, range_test_record(step=1, lr=0.1), not_a_range_test):
        with pytest.raises(ValueError, match="never fell"):
            driver.auto_ends(result)
