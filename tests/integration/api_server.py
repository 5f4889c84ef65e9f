"""Runs the API as one real uvicorn process for tests/integration/test_load.py:
``python api_server.py PORT``, settings from the ``DESCENT_*`` environment.

The app is :func:`service.main.create_app` unchanged, with one route in front of it
that the test reads and the app knows nothing of: ``GET /__probe`` answers how many
connections of the API's pool are checked out (``"idle"`` means none), and how many
requests the app answered 499 (dropped because their client had gone). It imports
``service`` from wherever ``PYTHONPATH`` says first, so the same test runs against
another checkout's code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

from service.main import create_app

app = create_app()
dropped = 0


async def probed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global dropped
    if scope["type"] == "http" and scope["path"] == "/__probe":
        body = json.dumps(
            {"checked_out": app.state.engine.pool.checkedout(), "dropped": dropped}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return

    async def counting(message: dict[str, Any]) -> None:
        global dropped
        if message["type"] == "http.response.start" and message["status"] == 499:
            dropped += 1
        await send(message)

    await app(scope, receive, counting if scope["type"] == "http" else send)


if __name__ == "__main__":
    uvicorn.run(probed, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
