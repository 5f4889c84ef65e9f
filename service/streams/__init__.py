"""Server-sent event streams: the hub that wakes them and the one loop they all run.

``GET /v1/jobs/{id}/events`` (:mod:`service.jobs.events`) and ``GET /v1/sweeps/{id}/events``
(:mod:`service.sweeps.events`) are each a :class:`Feed` — how a snapshot is read, how it
becomes events, when the stream has ended — run by :func:`follow`
(:mod:`service.streams.loop`), and woken by the process's one :class:`EventHub`
(:mod:`service.streams.hub`), which the app's lifespan starts and stops. The contract
they keep is docs/events.md.
"""

from service.streams.hub import EventHub, VersionReader
from service.streams.loop import Event, Feed, Step, follow, iso

__all__ = ["Event", "EventHub", "Feed", "Step", "VersionReader", "follow", "iso"]
