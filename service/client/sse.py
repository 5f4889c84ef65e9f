"""Server-sent events: the wire format's parser, and the decoded events a stream yields."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "ServerSentEvent", "decode_event", "parse_sse"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One event as the wire has it (the SSE spec's fields, before any JSON decoding)."""

    event: str = "message"
    data: str = ""
    id: str | None = None  # the stream's last event id when this event was dispatched
    retry: int | None = None  # milliseconds, when a `retry:` line came with this event


def parse_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Events from the lines of a ``text/event-stream`` (the WHATWG rules): fields
    ``event``, ``data`` (several lines join with newlines), ``id`` (kept across events),
    ``retry``; comment lines start with ``:``; a blank line dispatches; an event cut off by
    the end of the stream is dropped. A ``retry`` with no data is reported on its own."""
    event_type = ""
    data: list[str] = []
    last_id: str | None = None
    retry: int | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event_type or "message", "\n".join(data), last_id, retry)
                retry = None
            elif retry is not None:
                yield ServerSentEvent("retry", "", last_id, retry)
                retry = None
            event_type, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
        # any other field is ignored, as the spec says


@dataclass(frozen=True)
class Event:
    """One event of a job's stream (``status``, ``epoch``, ``end``) or a sweep's
    (``sweep``, ``trial``, ``epoch``, ``end``), with its decoded JSON ``data``: the
    fields of each are in docs/events.md.

    ``id`` is the last epoch (a sweep: its last event number) delivered on the stream so
    far, what a reconnect resumes after; ``None`` when the server sent none."""

    event: str
    id: int | None
    data: dict[str, Any] = field(default_factory=dict)


def decode_event(raw: ServerSentEvent) -> Event:
    """An event with its ``data`` decoded: a JSON object as it is, any other JSON value
    as ``{"value": …}``, text that is not JSON as ``{"text": …}``."""
    try:
        value = json.loads(raw.data)
    except ValueError:
        value = {"text": raw.data}
    if not isinstance(value, dict):
        value = {"value": value}
    try:
        event_id = int(raw.id) if raw.id not in (None, "") else None
    except ValueError:
        event_id = None
    return Event(raw.event, event_id, value)
