"""How many threads torch may use in a training process.

torch's default is one intra-op thread per core, for each process: two workers on a
two-core host each start two threads, and the same epoch then takes 20 to 40 times as
long as it does alone. So by default the host's cores are shared out among the training
processes on it — worker processes (``DESCENT_WORKER_PROCESSES``, set by whoever starts
several) times each one's concurrency — and ``DESCENT_TORCH_THREADS`` overrides that.
"""

from __future__ import annotations

import os


def host_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_torch_threads(cores: int, processes: int, concurrency: int) -> int:
    """``cores`` ÷ (``processes`` × ``concurrency``), rounded down, at least 1; a count
    of 0 (unknown) counts as 1."""
    sharing = max(1, processes) * max(1, concurrency)
    return max(1, cores // sharing)


def torch_threads(configured: int, processes: int, concurrency: int) -> int:
    """``configured`` (``DESCENT_TORCH_THREADS``) when set, else the default share."""
    if configured:
        return configured
    return default_torch_threads(host_cores(), processes, concurrency)
