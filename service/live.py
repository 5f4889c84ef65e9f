"""Live notifications: "job X changed" — a hint, never the data.

Whoever changes a job (a worker recording an epoch or an outcome, the reaper, the API
cancelling) commits to SQL first and then calls :meth:`Notifier.job_changed`. With Redis
as the broker that publishes on ``descent:job:<id>``, and every API process streaming
that job reads SQL again at once. A lost notification (Redis down, a process killed
between the commit and the publish) only delays a stream until the API's next database
poll (``DESCENT_EVENTS_POLL_SECONDS``): SQL stays the single source of truth. The embedded
default has no Redis; its streams rely on the poll alone.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "descent:job:"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*"


def channel(job_id: str) -> str:
    return CHANNEL_PREFIX + job_id


def job_of(channel_name: str | bytes) -> str | None:
    name = channel_name.decode() if isinstance(channel_name, bytes) else channel_name
    return name.removeprefix(CHANNEL_PREFIX) if name.startswith(CHANNEL_PREFIX) else None


class Notifier:
    """Publishes job changes (thread-safe; one per process). Never raises and never
    blocks for long: after a failure it stays quiet for ``backoff`` seconds, so a Redis
    outage costs a training loop one short timeout, not one per epoch."""

    def __init__(self, redis_url: str | None, *, timeout: float = 0.5, backoff: float = 5.0):
        self.redis_url = redis_url
        self.timeout = timeout
        self.backoff = backoff
        self._client: redis.Redis | None = None
        self._quiet_until = 0.0

    def _redis(self) -> redis.Redis:
        if self._client is None:
            import redis

            assert self.redis_url is not None
            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return self._client

    def job_changed(self, job_id: str) -> None:
        if self.redis_url is None or time.monotonic() < self._quiet_until:
            return
        try:
            self._redis().publish(channel(job_id), b"1")
        except Exception as exc:
            self._quiet_until = time.monotonic() + self.backoff
            log.warning(
                "could not publish a change of job %s (streams fall back to polling the "
                "database for %.0fs): %s",
                job_id,
                self.backoff,
                exc,
            )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
