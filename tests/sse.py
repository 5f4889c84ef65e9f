"""Reading server-sent events in tests: a plain parser, independent of the client's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Sse:
    event: str
    id: int | None
    data: dict[str, Any]
    received: float = field(default_factory=time.time)  # wall clock, as recorded_at is


def parse(lines: Iterator[str], comments: list[str] | None = None) -> Iterator[Sse]:
    """Events from the lines of a stream; comments (``: …``) go to ``comments``."""
    event, event_id, data = "message", None, []
    for line in lines:
        if line == "":
            if data:
                yield Sse(event, event_id, json.loads("\n".join(data)))
            event, data = "message", []
            continue
        if line.startswith(":"):
            if comments is not None:
                comments.append(line)
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "id":
            event_id = int(value)
        elif name == "data":
            data.append(value)


def stream(
    client: httpx.Client, job_id: str, *, headers: dict[str, str] | None = None, **params: Any
) -> Iterator[Sse]:
    """Events of ``GET /v1/jobs/{job_id}/events`` until the server closes the stream."""
    with client.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers=headers, params=params, timeout=60
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield from parse(r.iter_lines())


def epochs(events: list[Sse]) -> list[int]:
    return [e.data["epoch"] for e in events if e.event == "epoch"]
