"""The sweep event stream's contract (order, snapshots, resume, end, 404/422, heartbeats,
Redis wake-ups), on both storage/broker pairs, against a real uvicorn server. The sweep's
progress is written by a stand-in for the workers: the same rows (sweep, trials, jobs,
epochs numbered from the sweep's event counter) and notifications they write."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sse import Collector, Sse, parse, sweep_stream
from support import Backend, bearer, make_backend, make_user, serve, wait_for

from service.db import make_engine, make_sessionmaker, utcnow
from service.jobs.models import EpochMetric, Job
from service.jobs.service import dataset_shape, new_job
from service.live import Notifier
from service.main import create_app
from service.spec import JobSpec
from service.streams import loop as stream_loop
from service.sweeps.models import Sweep, SweepTrial

BASE = {"dataset": {"name": "moons"}, "training": {"epochs": 4}}
OBJECTIVE = {"metric": "val_loss", "direction": "min", "measure": "best"}


# Streams are read from a real uvicorn server; `backend` (tests/conftest.py) is fresh per test.
pytestmark = pytest.mark.server


@contextlib.contextmanager
def server(backend: Backend, **overrides: object) -> Iterator[tuple[httpx.Client, Any, str]]:
    """A served app and a client of a fresh user; yields (client, app, the user's id)."""
    settings = backend.settings().model_copy(update=overrides)
    app = create_app(settings)
    token = make_user(backend, f"u-{time.monotonic_ns()}")
    with serve(app) as url, httpx.Client(base_url=url, headers=bearer(token)) as client:
        yield client, app, client.get("/v1/me").json()["id"]


class FakeSweep:
    """Writes a sweep's progress as the driver and the workers do: commit, then notify."""

    def __init__(self, backend: Backend, owner: str, *, status: str = "running") -> None:
        settings = backend.settings()
        self.engine = make_engine(str(settings.database_url))
        self.sessions = make_sessionmaker(self.engine)
        self.notifier = Notifier(settings.redis_url)
        self.owner = owner
        self.id = str(uuid.uuid4())
        with self.sessions() as s, s.begin():
            s.add(
                Sweep(
                    id=self.id,
                    owner_id=owner,
                    name="test sweep",
                    kind="sweep",
                    status=status,
                    spec={"base": BASE, "objective": OBJECTIVE, "max_trials": 10},
                    task="classification",
                    max_trials=10,
                )
            )
        #: (job_id, epoch) of every epoch recorded, in sweep_seq order (seq = index + 1)
        self.recorded: list[tuple[str, int]] = []

    def trial(self, number: int, params: dict[str, Any], repeats: int = 1) -> list[str]:
        """Create trial ``number`` with ``repeats`` queued jobs; return their ids."""
        spec = JobSpec.model_validate(BASE)
        ids: list[str] = []
        with self.sessions() as s, s.begin():
            sweep = s.get(Sweep, self.id)
            sweep.trials_created = number + 1
            s.add(SweepTrial(sweep_id=self.id, number=number, params=params, optuna={}))
            shape = dataset_shape(session=s, spec=spec, owner=self.owner)
            for repeat in range(repeats):
                job = new_job(
                    spec,
                    shape,
                    self.owner,
                    sweep_id=self.id,
                    trial_number=number,
                    repeat=repeat,
                )
                s.add(job)
                ids.append(job.id)
        for job_id in ids:
            self.notifier.job_changed(job_id)
        return ids

    def _update(self, job_id: str, **values: object) -> None:
        with self.sessions() as s, s.begin():
            job = s.get(Job, job_id)
            for k, v in values.items():
                setattr(job, k, v)
        self.notifier.job_changed(job_id)

    def start(self, job_id: str, attempt: int = 1) -> None:
        self._update(job_id, status="running", attempt=attempt, heartbeat_at=utcnow())

    def epoch(self, job_id: str, epoch: int, val_loss: float | None = None) -> int:
        """Record an epoch with the next sweep event number (returned)."""
        loss = 1.0 / epoch if val_loss is None else val_loss
        with self.sessions() as s, s.begin():
            sweep = s.get(Sweep, self.id, with_for_update=True)
            sweep.event_seq += 1
            seq = sweep.event_seq
            s.add(
                EpochMetric(
                    job_id=job_id,
                    epoch=epoch,
                    values={"train_loss": 2 * loss, "val_loss": loss},
                    sweep_seq=seq,
                )
            )
            job = s.get(Job, job_id)
            job.epochs_completed = epoch
            job.objective = loss if job.objective is None else min(job.objective, loss)
        self.recorded.append((job_id, epoch))
        self.notifier.job_changed(job_id)
        return seq

    def finish(self, job_id: str, status: str = "succeeded", reason: str | None = None) -> None:
        self._update(job_id, status=status, status_reason=reason, finished_at=utcnow())

    def end(self, status: str = "succeeded", reason: str = "done") -> None:
        with self.sessions() as s, s.begin():
            sweep = s.get(Sweep, self.id)
            sweep.status, sweep.status_reason, sweep.finished_at = status, reason, utcnow()
        self.notifier.job_changed(self.id)

    def close(self) -> None:
        self.notifier.close()
        self.engine.dispose()


def epoch_ids(events: list[Sse]) -> list[int]:
    return [e.id for e in events if e.event == "epoch"]  # type: ignore[misc]


def trial_events(events: list[Sse], job_id: str) -> list[str]:
    return [e.data["status"] for e in events if e.event == "trial" and e.data["job_id"] == job_id]


def test_snapshots_then_epochs_in_order_then_changes_and_the_end(backend: Backend):
    with server(backend) as (client, app, owner):
        sweep = FakeSweep(backend, owner)
        (a,) = sweep.trial(0, {"optimizer.lr": 0.1})
        (b,) = sweep.trial(1, {"optimizer.lr": 0.01})
        sweep.start(a)
        sweep.epoch(a, 1)
        sweep.epoch(a, 2)
        reader = Collector(sweep_stream, client, sweep.id)
        reader.wait_for(lambda ev: len(epoch_ids(ev)) == 2, "the history")
        first = list(reader.events)
        # On connect: the sweep, then each job as it is, then the epochs so far.
        assert [e.event for e in first] == ["sweep", "trial", "trial", "epoch", "epoch"]
        snap = first[0].data
        assert snap["status"] == "running" and snap["trials_created"] == 2
        assert snap["counts"] == {
            "queued": 1,
            "running": 1,
            "complete": 0,
            "pruned": 0,
            "failed": 0,
            "cancelled": 0,
        }
        assert snap["best"] is None
        t0, t1 = first[1].data, first[2].data
        assert (t0["trial"], t0["job_id"], t0["status"], t0["trial_state"]) == (
            0,
            a,
            "running",
            "running",
        )
        assert t0["params"] == {"optimizer.lr": 0.1} and t0["epochs"] == 4
        assert (t1["trial"], t1["status"], t1["trial_state"]) == (1, "queued", "queued")
        assert all(e.id == 0 for e in first[:3])
        ep = first[3].data
        assert (ep["trial"], ep["job_id"], ep["epoch"], ep["repeat"]) == (0, a, 1, 0)
        assert ep["objective"] == 1.0 and ep["metrics"]["val_loss"] == 1.0
        assert epoch_ids(first) == [1, 2]

        # Live: b starts (a trial event), epochs of both interleave, a is pruned after its
        # epochs, b succeeds, the sweep ends: the end comes last.
        sweep.start(b)
        reader.wait_for(lambda ev: trial_events(ev, b) == ["queued", "running"], "b running")
        sweep.epoch(b, 1, val_loss=0.5)
        sweep.epoch(a, 3)
        sweep.epoch(b, 2, val_loss=0.2)
        sweep.finish(a, "pruned", "pruned at epoch 3")
        reader.wait_for(lambda ev: trial_events(ev, a)[-1:] == ["pruned"], "a pruned")
        sweep.finish(b)
        sweep.end("succeeded", "2 trials: 1 complete, 1 pruned")
        got = reader.finished()
        sweep.close()
        streams_left = app.state.events.streams

    kinds = [e.event for e in got]
    assert kinds[-1] == "end" and kinds.count("end") == 1
    assert epoch_ids(got) == [1, 2, 3, 4, 5]  # every epoch once, by sweep event number
    assert [(e.data["job_id"], e.data["epoch"]) for e in got if e.event == "epoch"] == (
        sweep.recorded
    )
    ids = [e.id for e in got]
    assert ids == sorted(ids)  # every event's id: the last epoch number sent
    pruned = next(
        i for i, e in enumerate(got) if e.event == "trial" and e.data["status"] == "pruned"
    )
    assert pruned > max(
        i for i, e in enumerate(got) if e.event == "epoch" and e.data["job_id"] == a
    )
    assert got[pruned].data["status_reason"] == "pruned at epoch 3"
    assert trial_events(got, b) == ["queued", "running", "succeeded"]
    end = got[-1].data
    assert end["status"] == "succeeded" and end["status_reason"].startswith("2 trials")
    assert end["counts"]["complete"] == 1 and end["counts"]["pruned"] == 1
    assert end["best"] == {
        "number": 1,
        "label": None,
        "params": {"optimizer.lr": 0.01},
        "value": 0.2,
        "job_ids": [b],
    }
    assert got[-2].event == "sweep" and got[-2].data == end
    assert streams_left == 0


def test_a_reconnect_gets_each_missed_epoch_exactly_once_and_fresh_snapshots(
    backend: Backend,
):
    with server(backend) as (client, _, owner):
        sweep = FakeSweep(backend, owner)
        jobs = sweep.trial(0, {"optimizer.lr": 0.1}, repeats=2)
        for j in jobs:
            sweep.start(j)
        for e in (1, 2):
            for j in jobs:
                sweep.epoch(j, e)
        reader = Collector(sweep_stream, client, sweep.id)
        reader.wait_for(lambda ev: 4 in epoch_ids(ev), "four epochs")
        # Gone after event 3 (its client saw up to there); more epochs meanwhile.
        for j in jobs:
            sweep.epoch(j, 3)
        with client.stream(
            "GET", f"/v1/sweeps/{sweep.id}/events", headers={"Last-Event-ID": "3"}, timeout=60
        ) as r:
            assert r.status_code == 200
            resumed: list[Sse] = []
            for e in parse(r.iter_lines()):
                resumed.append(e)
                if 6 in epoch_ids(resumed):
                    break
        assert [e.event for e in resumed[:3]] == ["sweep", "trial", "trial"]
        assert all(e.id == 3 for e in resumed[:3])
        assert epoch_ids(resumed) == [4, 5, 6]
        # The header wins over ?after=; ?after= alone works as the header does.
        for j in jobs:
            sweep.finish(j)
        sweep.end()
        got = list(sweep_stream(client, sweep.id, headers={"Last-Event-ID": "5"}, after=1))
        assert epoch_ids(got) == [6] and got[-1].event == "end"
        got = list(sweep_stream(client, sweep.id, after=2))
        assert epoch_ids(got) == [3, 4, 5, 6] and got[-1].event == "end"
        assert got[-1].id == 6
        # After the end: the whole history, the jobs as they ended, then the end.
        got = list(sweep_stream(client, sweep.id))
        assert epoch_ids(got) == [1, 2, 3, 4, 5, 6]
        assert [e.event for e in got] == ["sweep", *["epoch"] * 6, "trial", "trial", "end"]
        assert reader.finished()[-1].event == "end"
        sweep.close()


def test_a_long_history_is_replayed_in_batches_and_ends_after_it(backend: Backend, monkeypatch):
    monkeypatch.setattr(stream_loop, "BATCH", 3)
    with server(backend) as (client, _, owner):
        sweep = FakeSweep(backend, owner)
        (a,) = sweep.trial(0, {"x": 1})
        (b,) = sweep.trial(1, {"x": 2})
        sweep.start(a)
        sweep.start(b)
        for e in (1, 2, 3):
            sweep.epoch(a, e)
            sweep.epoch(b, e)
        sweep.finish(a, "pruned")
        reader = Collector(sweep_stream, client, sweep.id)
        reader.wait_for(lambda ev: 6 in epoch_ids(ev), "the history")
        sweep.epoch(b, 4)
        sweep.finish(b)
        sweep.end()
        got = reader.finished()
        sweep.close()
    assert epoch_ids(got) == list(range(1, 8))
    # a's end goes after all of its epochs, though a had ended before the stream opened.
    last_a = max(i for i, e in enumerate(got) if e.event == "epoch" and e.data["job_id"] == a)
    assert trial_events(got[:last_a], a) == [] and trial_events(got, a) == ["pruned"]
    assert trial_events(got[:last_a], b) == ["running"]
    assert got[-1].event == "end"


def test_a_cancelled_sweep_ends_only_when_its_jobs_have_stopped(backend: Backend):
    with server(backend) as (client, _, owner):
        sweep = FakeSweep(backend, owner)
        (a,) = sweep.trial(0, {"x": 1})
        (b,) = sweep.trial(1, {"x": 2})
        sweep.start(a)
        reader = Collector(sweep_stream, client, sweep.id)
        reader.wait_for(lambda ev: len(ev) >= 3, "the snapshots")
        sweep.end("cancelled", "cancelled by request")
        reader.wait_for(
            lambda ev: any(e.event == "sweep" and e.data["status"] == "cancelled" for e in ev),
            "the sweep cancelled",
        )
        sweep.finish(b, "cancelled", "the sweep ended")
        time.sleep(0.6)  # a few polls: a is still running, so no end yet
        assert not reader.done.is_set()
        sweep.epoch(a, 1)
        sweep.finish(a, "cancelled", "cancelled by request")
        got = reader.finished()
        sweep.close()
    assert got[-1].event == "end" and got[-1].data["status"] == "cancelled"
    assert got[-1].data["counts"]["cancelled"] == 2
    assert epoch_ids(got) == [1]
    assert trial_events(got, a)[-1] == "cancelled" and trial_events(got, b)[-1] == "cancelled"


def test_a_new_trial_and_a_new_attempt_are_trial_events(backend: Backend):
    with server(backend) as (client, _, owner):
        sweep = FakeSweep(backend, owner)
        (a,) = sweep.trial(0, {"x": 1})
        sweep.start(a)
        reader = Collector(sweep_stream, client, sweep.id)
        reader.wait_for(lambda ev: trial_events(ev, a) == ["running"], "a running")
        sweep.start(a, attempt=2)  # a lost worker's job resumed by another
        reader.wait_for(lambda ev: trial_events(ev, a) == ["running", "running"], "attempt 2")
        (b,) = sweep.trial(1, {"x": 2})
        reader.wait_for(lambda ev: trial_events(ev, b) == ["queued"], "trial 1 appears")
        reader.wait_for(
            lambda ev: [e.data["trials_created"] for e in ev if e.event == "sweep"] == [1, 2],
            "the sweep's new count",
        )
        sweep.finish(a, "failed", "boom")
        sweep.finish(b, "cancelled")
        sweep.end("failed", "no trial completed")
        got = reader.finished()
        sweep.close()
    attempts = [e.data["attempt"] for e in got if e.event == "trial" and e.data["job_id"] == a]
    assert attempts == [1, 2, 2]
    assert got[-1].data["counts"]["failed"] == 1 and got[-1].data["best"] is None


def test_someone_elses_sweep_or_a_missing_one_is_a_404(backend: Backend):
    with server(backend) as (client, _, owner):
        sweep = FakeSweep(backend, owner)
        other = make_user(backend, f"other-{time.monotonic_ns()}")
        r = client.get(f"/v1/sweeps/{sweep.id}/events", headers=bearer(other))
        assert r.status_code == 404, r.text
        missing = client.get(f"/v1/sweeps/{uuid.uuid4()}/events")
        assert missing.status_code == 404
        assert r.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
        assert client.get("/v1/sweeps/not-an-id/events").status_code == 422
        sweep.close()


def test_a_bad_last_event_id_is_a_422_naming_it(backend: Backend):
    with server(backend) as (client, _, owner):
        sweep = FakeSweep(backend, owner)
        for bad in ("x1", "-3", "1.5", "9" * 12):
            r = client.get(f"/v1/sweeps/{sweep.id}/events", headers={"Last-Event-ID": bad})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["fields"][0]["field"] == "Last-Event-ID"
        r = client.get(f"/v1/sweeps/{sweep.id}/events", params={"after": -1})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "after"
        sweep.close()


# Two 0.2-s heartbeats must fit in a 1.5-s lifetime: not beside a busy neighbour.
@pytest.mark.serial
def test_a_quiet_stream_gets_heartbeats_and_ends_at_its_lifetime_without_an_end(
    backend: Backend,
):
    with server(backend, events_heartbeat_seconds=0.2, events_max_seconds=1.5) as (
        client,
        app,
        owner,
    ):
        sweep = FakeSweep(backend, owner)
        sweep.trial(0, {"x": 1})
        comments: list[str] = []
        got = list(sweep_stream(client, sweep.id, comments=comments))
        sweep.close()
        streams_left = app.state.events.streams
    assert [e.event for e in got] == ["sweep", "trial"]  # closed by its lifetime: no end
    assert len(comments) >= 2 and set(comments) == {": keep-alive"}
    assert streams_left == 0


def test_an_empty_ended_sweep_sends_its_snapshot_and_the_end(backend: Backend):
    with server(backend) as (client, _, owner):
        sweep = FakeSweep(backend, owner, status="failed")
        got = list(sweep_stream(client, sweep.id))
        sweep.close()
    assert [e.event for e in got] == ["sweep", "end"]
    assert got[0].data["trials_created"] == 0 and got[1].id == 0


def test_the_openapi_document_describes_the_four_events(backend: Backend):
    with server(backend) as (client, _, _owner):
        doc = client.get("/openapi.json").json()
    op = doc["paths"]["/v1/sweeps/{sweep_id}/events"]["get"]
    schema = op["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert schema["properties"]["event"]["enum"] == ["sweep", "trial", "epoch", "end"]
    shapes = schema["properties"]["data"]["contentSchema"]["anyOf"]
    assert {s["title"] for s in shapes} == {
        "SweepEpochEvent",
        "TrialEvent",
        "SweepStateEvent",
        "SweepEndEvent",
    }
    assert "$ref" not in str(shapes)  # nothing points outside the document
    assert {p["name"] for p in op["parameters"]} >= {"sweep_id", "after", "Last-Event-ID"}


@pytest.mark.postgres
def test_with_redis_a_workers_notification_wakes_the_stream_without_the_poll(tmp_path: Path):
    backend = make_backend("postgres", tmp_path)
    try:
        # A poll once an hour: only Redis's notifications can deliver these events.
        with server(backend, events_poll_seconds=3600) as (client, app, owner):
            sweep = FakeSweep(backend, owner)
            (a,) = sweep.trial(0, {"x": 1})
            reader = Collector(sweep_stream, client, sweep.id)
            reader.wait_for(lambda ev: len(ev) == 2, "the snapshots")
            wait_for(lambda: app.state.events.listening, 10, 0.05, "the Redis subscription")
            sweep.start(a)
            reader.wait_for(lambda ev: trial_events(ev, a) == ["queued", "running"], "running")
            sweep.epoch(a, 1)
            reader.wait_for(lambda ev: epoch_ids(ev) == [1], "epoch 1 via Redis")
            sweep.finish(a)
            sweep.end()  # the sweep's own notification (descent:job:<sweep id>)
            got = reader.finished()
            sweep.close()
    finally:
        backend.close()
    kinds = [e.event for e in got]
    # queued → running changes the counts: a sweep event; so do the job's and the sweep's end.
    assert kinds == ["sweep", "trial", "trial", "sweep", "epoch", "trial", "sweep", *kinds[7:]]
    assert kinds[-2:] == ["sweep", "end"]
    assert trial_events(got, a) == ["queued", "running", "succeeded"]
