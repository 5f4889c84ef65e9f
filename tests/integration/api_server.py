"""Runs the API as one real uvicorn process for tests/integration/test_load.py:
``python api_server.py PORT``, settings from the ``DESCENT_*`` environment.

The app is :func:`service.main.create_app` unchanged, with two routes in front of it
that the test uses and the app knows nothing of: ``GET /__probe`` answers how many
connections of the API's pool are checked out, and how many requests the app answered
499 (dropped because their client had gone); ``GET /__hold?seconds=S`` takes every turn
of the app's database gate for S seconds (answering once it holds them all), so that
requests sent meanwhile wait for a turn whatever the machine's speed. It imports
``service`` from wherever ``PYTHONPATH`` says first, so the same test runs against
another checkout's code.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from service.main import create_app

app = create_app()
dropped = 0
holds: set[asyncio.Task[None]] = set()


async def hold(seconds: float) -> int:
    """Take every turn of the gate for ``seconds``; returns once all are taken."""
    gate = app.state.gate
    for _ in range(gate.capacity):
        task = asyncio.create_task(gate.run(lambda _session: time.sleep(seconds)))
        holds.add(task)
        task.add_done_callback(holds.discard)
    while gate.admitted < gate.capacity:
        await asyncio.sleep(0.01)
    return gate.capacity


async def answer(send: Any, doc: dict[str, Any]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(doc).encode()})


async def probed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global dropped
    if scope["type"] == "http" and scope["path"] == "/__probe":
        await answer(send, {"checked_out": app.state.engine.pool.checkedout(), "dropped": dropped})
        return
    if scope["type"] == "http" and scope["path"] == "/__hold":
        seconds = float(parse_qs(scope["query_string"].decode())["seconds"][0])
        await answer(send, {"held": await hold(seconds)})
        return

    async def counting(message: dict[str, Any]) -> None:
        global dropped
        if message["type"] == "http.response.start" and message["status"] == 499:
            dropped += 1
        await send(message)

    await app(scope, receive, counting if scope["type"] == "http" else send)


if __name__ == "__main__":
    uvicorn.run(probed, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
