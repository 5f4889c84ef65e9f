"""Event-stream latency: from the end of an epoch to a client holding its event.

Starts a real server the way a user does (``descent up``; or, with ``--database-url`` and
``--broker-url``, ``descent api`` + ``descent worker`` on PostgreSQL and Redis — the same
stacks as ``api_latency.py``), then:

* epoch latency: ``--jobs`` jobs of ``--epochs`` epochs each, one after another, each
  followed from submission by one ``GET /v1/jobs/{id}/events`` stream. For every epoch
  event, latency = the client's clock when the event arrived − the ``recorded_at`` the
  worker stamped on the epoch just before committing it (same machine, same clock). It
  spans the commit, the notification (Redis pub/sub; in the embedded mode the API's
  database poll, every 0.25 s, so about half of that on average) and the API's read.
* streams vs the API: ``--streams`` idle streams held open on a queued job while
  ``GET /v1/jobs/{id}`` is timed ``--requests`` times, against the same without them.

    .venv/bin/python benchmarks/events_latency.py
    .venv/bin/python benchmarks/events_latency.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ \\
        --broker-url redis://127.0.0.1:6379/0

Writes ``benchmarks/results/events_latency-embedded.json`` (or ``-postgres-redis.json``;
``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from benchmarks.api_latency import EmbeddedStack, FullStack, Stack, raise_exit  # noqa: E402
from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    machine_info,
    summarize_ms,
    table,
    write_results,
)

#: About 0.1-0.3 s an epoch on one thread: slow enough that epochs do not bunch up.
SPEC = {
    "name": "events-bench",
    "dataset": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [128]},
    "optimizer": {"name": "adam", "lr": 0.001},
    "training": {"epochs": 30, "batch_size": 32},
}


def _timestamp(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def follow(client: httpx.AsyncClient, job_id: str) -> tuple[list[float], str]:
    """Latencies (s) of the job's epoch events, and the status the stream ended with."""
    latencies: list[float] = []
    status = "?"
    event = ""
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=300) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                arrived = time.time()
                data = json.loads(line.removeprefix("data: "))
                if event == "epoch":
                    latencies.append(arrived - _timestamp(data["recorded_at"]))
                elif event == "end":
                    status = data["status"]
    return latencies, status


async def epoch_latency(client: httpx.AsyncClient, jobs: int, epochs: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses = []
    for _ in range(jobs):
        spec = {**SPEC, "training": {**SPEC["training"], "epochs": epochs}}
        r = await client.post("/v1/jobs", json=spec)
        r.raise_for_status()
        got, status = await follow(client, r.json()["id"])
        latencies += got
        statuses.append(status)
    return {"statuses": statuses, "epoch_to_client": summarize_ms(latencies)}


async def api_under_streams(
    client: httpx.AsyncClient, streams: int, requests: int
) -> dict[str, Any]:
    # A long job keeps the worker busy, so the held one stays queued: its streams idle.
    long = {**SPEC, "name": "blocker", "training": {**SPEC["training"], "epochs": 1000}}
    r = await client.post("/v1/jobs", json=long)
    r.raise_for_status()
    blocker = r.json()["id"]
    r = await client.post("/v1/jobs", json={**SPEC, "name": "held"})
    r.raise_for_status()
    job_id = r.json()["id"]

    async def timed() -> list[float]:
        out = []
        for _ in range(requests):
            t = time.perf_counter()
            (await client.get(f"/v1/jobs/{job_id}")).raise_for_status()
            out.append(time.perf_counter() - t)
        return out

    alone = await timed()
    opened = asyncio.Event()
    count = 0

    async def hold() -> None:
        nonlocal count
        async with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=600) as r:
            async for _ in r.aiter_lines():
                count += 1
                if count >= streams:
                    opened.set()
                await asyncio.sleep(3600)

    tasks = [asyncio.create_task(hold()) for _ in range(streams)]
    await asyncio.wait_for(opened.wait(), 120)
    beside = await timed()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for held in (job_id, blocker):
        (await client.post(f"/v1/jobs/{held}/cancel")).raise_for_status()
    return {
        "streams_open": streams,
        "get_job_alone": summarize_ms(alone),
        "get_job_beside_streams": summarize_ms(beside),
    }


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.streams + 20)
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, limits=limits) as c:
        epochs = await epoch_latency(c, args.jobs, args.epochs)
        under = await api_under_streams(c, args.streams, args.requests)
    return {**epochs, **under}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3, help="Jobs followed one after another.")
    parser.add_argument("--epochs", type=int, default=30, help="Epochs per job.")
    parser.add_argument("--streams", type=int, default=200, help="Idle streams held open.")
    parser.add_argument("--requests", type=int, default=100, help="Timed GETs per case.")
    parser.add_argument("--database-url", help="Full stack: PostgreSQL (as api_latency.py).")
    parser.add_argument("--broker-url", help="Full stack: Redis (with --database-url).")
    parser.add_argument("--out", type=Path, default=None, help="Results file.")
    args = parser.parse_args(argv)
    if bool(args.database_url) != bool(args.broker_url):
        parser.error("--database-url and --broker-url go together")

    signal.signal(signal.SIGTERM, raise_exit)
    machine = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="descent-bench-"))
    stack: Stack = (
        FullStack(workdir, args.database_url, args.broker_url)
        if args.database_url
        else EmbeddedStack(workdir)
    )
    started = time.perf_counter()
    try:
        stack.start()
        results = asyncio.run(measure(stack, args))
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    payload = {
        "benchmark": "events_latency",
        "mode": stack.mode,
        "machine": machine,
        "options": {
            "jobs": args.jobs,
            "epochs": args.epochs,
            "streams": args.streams,
            "requests": args.requests,
            "spec": SPEC,
            "notification": "redis pub/sub" if args.broker_url else "database poll (0.25 s)",
        },
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    path = write_results(args.out or RESULTS_DIR / f"events_latency-{stack.mode}.json", payload)
    e, a, b = (
        results["epoch_to_client"],
        results["get_job_alone"],
        results["get_job_beside_streams"],
    )
    print(
        table(
            ["figure", "n", "p50 ms", "p95 ms", "max ms"],
            [
                ["epoch end → client", e["n"], e["p50_ms"], e["p95_ms"], e["max_ms"]],
                ["GET job, no streams", a["n"], a["p50_ms"], a["p95_ms"], a["max_ms"]],
                [
                    f"GET job, {args.streams} streams open",
                    b["n"],
                    b["p50_ms"],
                    b["p95_ms"],
                    b["max_ms"],
                ],
            ],
        )
    )
    print(f"\n{stack.mode}: jobs ended {results['statuses']}. Wrote {path}")
    return 0 if all(s == "succeeded" for s in results["statuses"]) else 1


if __name__ == "__main__":
    sys.exit(main())
