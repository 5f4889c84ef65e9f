"""Acceptance: a real worker trains a 20-epoch job while clients follow its event stream
over HTTP from a real server, on both storage/broker pairs; one of them drops and
reconnects with ``Last-Event-ID: 7`` while the job runs."""

from __future__ import annotations

import threading

import httpx
import pytest
from sse import Sse, epochs, parse, stream
from support import BACKENDS, bearer, make_backend, make_user, serve, start_worker

from service.main import create_app

pytestmark = [pytest.mark.integration, pytest.mark.server]

EPOCHS = 20
SPEC = {
    "name": "live",
    "dataset": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [256, 256]},
    "optimizer": {"name": "adam", "lr": 0.001},
    # Slow enough per epoch (a fraction of a second) to reconnect while it runs.
    "training": {"epochs": EPOCHS, "batch_size": 16},
}


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_live_job_streams_every_epoch_and_a_reconnect_resumes_exactly(kind, tmp_path):
    backend = make_backend(kind, tmp_path)
    worker = start_worker(backend, tmp_path / "worker.log")
    try:
        token = make_user(backend, "watcher")
        with (
            serve(create_app(backend.settings())) as url,
            httpx.Client(base_url=url, headers=bearer(token)) as client,
        ):
            r = client.post("/v1/jobs", json=SPEC)
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]

            full: list[Sse] = []
            reader = threading.Thread(target=lambda: full.extend(stream(client, job_id)))
            reader.start()

            # A second client reads up to epoch 7 and drops...
            with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=120) as r:
                for event in parse(r.iter_lines()):
                    if event.event == "epoch" and event.data["epoch"] == 7:
                        break
            # ...and reconnects while the job still runs.
            assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
            resumed = list(stream(client, job_id, headers={"Last-Event-ID": "7"}))
            reader.join(180)
            assert not reader.is_alive(), "the first stream did not end"
            job = client.get(f"/v1/jobs/{job_id}").json()
            stored = client.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.output()[-3000:]}") from None
    finally:
        worker.stop()
        backend.close()

    assert job["status"] == "succeeded", job
    assert epochs(full) == list(range(1, EPOCHS + 1))
    assert [e.event for e in full][:2] == ["status", "status"]  # queued, then running
    assert full[1].data["status"] == "running"
    assert [e.event for e in full][-2:] == ["status", "end"]
    assert full[-1].data["status"] == "succeeded" and full[-1].id == EPOCHS
    # As they happen: epoch 1 reached the client before epoch 20 was even recorded.
    first = next(e for e in full if e.event == "epoch")
    last = [e for e in full if e.event == "epoch"][-1]
    assert first.received < _timestamp(last.data["recorded_at"])
    # The metrics streamed are the metrics stored.
    assert set(first.data["metrics"]) >= {"train_loss", "val_loss", "val_accuracy", "lr"}
    streamed = [{"epoch": e.data["epoch"], **e.data["metrics"]} for e in full if e.event == "epoch"]
    assert streamed == [{k: v for k, v in row.items() if v is not None} for row in stored]

    assert epochs(resumed) == list(range(8, EPOCHS + 1))
    assert resumed[-1].event == "end" and resumed[-1].data["status"] == "succeeded"


def _timestamp(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
