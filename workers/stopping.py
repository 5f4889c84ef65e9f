"""A worker's graceful stop: on SIGTERM each running attempt ends at a batch boundary and
hands its job back to the queue, and the next worker resumes it at once from its last
checkpoint instead of waiting out the lease (``DESCENT_LEASE_SECONDS``).

How the signal reaches the training loop: Celery's warm shutdown (SIGTERM or Ctrl-C to a
worker's main process) stops taking messages (a last poll may still deliver some: they
are passed on) and waits for the running tasks however long they take, and sends its
pool processes nothing. So the main process, in its
``worker_shutting_down`` handler (workers/app.py), raises a flag it shares with its pool
processes — one byte of an anonymous shared mapping, made when this module is imported,
which is before the pool forks — and the runner's reporter reads it at every batch
boundary, where it already reads the cancel flag: a memory read, no system call. The
main process also arms a bound: after ``DESCENT_WORKER_STOP_SECONDS`` it turns the warm
shutdown into Celery's cold one (SIGQUIT), which ends the tasks still running; their jobs
then resume the old way, once their lease expires.

Where an attempt stops (``GracefulStop``): checkpoints exist only at epoch ends, and only
they resume exactly. So an epoch expected to end within ``finish_seconds`` is finished,
recorded and then the job handed back; otherwise the attempt stops at once and the partial
epoch is discarded — the next attempt runs it again from the last checkpoint, exactly as
an uninterrupted run would have. The lab's kinds (range test, landscape) keep no
checkpoints and start over whatever happens, so they stop at once. The hand back itself
is workers/handback.py's. This module imports nothing heavy: the Celery main process
imports it (torch stays in the pool processes).
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Callable

# MAP_SHARED and anonymous: the pool processes forked after this import see the byte the
# main process writes (a module global would be each process's own copy).
_FLAG = mmap.mmap(-1, 1)


def set_worker_stopping() -> None:
    """Ask every attempt of this worker (its pool processes) to hand its job back."""
    _FLAG[0] = 1


def worker_stopping() -> bool:
    return _FLAG[0] == 1


def clear_worker_stopping() -> None:
    """For tests that run attempts in their own process."""
    _FLAG[0] = 0


class GracefulStop:
    """Decides, once the worker is stopping, where its attempt ends: at this batch
    boundary (``now``) or after recording the epoch in progress (``after_epoch``)."""

    def __init__(
        self,
        finish_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        stopping: Callable[[], bool] = worker_stopping,
    ) -> None:
        self.finish_seconds = finish_seconds
        self.clock = clock
        self.stopping = stopping
        self.epoch_started = clock()
        self.last_epoch_seconds: float | None = None  # unknown until an epoch is recorded
        self.seen_at: float | None = None

    def epoch_recorded(self) -> None:
        """An epoch (with its checkpoint) is recorded: the next one starts now."""
        now = self.clock()
        self.last_epoch_seconds = now - self.epoch_started
        self.epoch_started = now

    def now(self) -> bool:
        """At a batch boundary: hand back now? Not while the epoch in progress should end
        within ``finish_seconds`` of the stop (by the last epoch's length), nor past
        that however wrong the guess was."""
        if not self.stopping():
            return False
        now = self.clock()
        if self.seen_at is None:
            self.seen_at = now
        if self.last_epoch_seconds is None:
            return True
        expected_end = self.epoch_started + self.last_epoch_seconds
        waited = now - self.seen_at
        return expected_end - self.seen_at > self.finish_seconds or waited > self.finish_seconds

    def after_epoch(self) -> bool:
        """An epoch was just recorded: hand back before the next one?"""
        return self.stopping()
