"""Reading server-sent events in tests: a plain parser, independent of the client's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from support import wait_for


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


def read_stream(
    client: httpx.Client,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    comments: list[str] | None = None,
    **params: Any,
) -> Iterator[Sse]:
    """Events of the stream at ``path`` until the server closes it."""
    with client.stream("GET", path, headers=headers, params=params, timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        yield from parse(r.iter_lines(), comments)


def stream(client: httpx.Client, job_id: str, **kw: Any) -> Iterator[Sse]:
    """Events of ``GET /v1/jobs/{job_id}/events``."""
    return read_stream(client, f"/v1/jobs/{job_id}/events", **kw)


def sweep_stream(client: httpx.Client, sweep_id: str, **kw: Any) -> Iterator[Sse]:
    """Events of ``GET /v1/sweeps/{sweep_id}/events``."""
    return read_stream(client, f"/v1/sweeps/{sweep_id}/events", **kw)


class Collector:
    """Reads a stream (``read(*args, **kw)``) in a thread; ``events`` fills as they
    arrive."""

    def __init__(self, read: Callable[..., Iterator[Sse]], *args: Any, **kw: Any) -> None:
        self.events: list[Sse] = []
        self.done = threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                for e in read(*args, **kw):
                    self.events.append(e)
            except BaseException as exc:  # reported by the test
                self.error = exc
            finally:
                self.done.set()

        threading.Thread(target=run, daemon=True).start()

    def wait_for(self, predicate: Callable[[list[Sse]], Any], what: str) -> None:
        wait_for(lambda: predicate(self.events) or self.error, 30, 0.02, what)
        assert self.error is None, self.error

    def finished(self) -> list[Sse]:
        assert self.done.wait(30), "the stream did not end"
        assert self.error is None, self.error
        return self.events


def epochs(events: list[Sse]) -> list[int]:
    return [e.data["epoch"] for e in events if e.event == "epoch"]
