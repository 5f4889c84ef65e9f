"""Reading what worker processes wrote in Prometheus multiprocess mode.

Each worker process (Celery's main process and every pool process) writes its metrics to
memory-mapped files in one folder (``DESCENT_METRICS_DIR``, exported to them as
``PROMETHEUS_MULTIPROC_DIR`` by ``python -m workers`` or ``descent up`` before
``prometheus_client`` is imported). Whoever serves them merges the files at scrape time:
the worker's own metrics port, and in the embedded default the API's ``/metrics``.

Counters and histograms of processes that have ended stay in the sums (a pool process
recycled or killed does not take its epochs with it); a gauge of "live" mode (jobs
running now) must not: files of processes that no longer exist are dropped before each
merge. That check needs the processes on this machine (the same PID namespace), which is
true of both servers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["ENV", "WorkerFiles", "pid_alive", "prepare"]

#: The variable prometheus_client reads, at import, to switch to multiprocess mode.
ENV = "PROMETHEUS_MULTIPROC_DIR"

_LIVE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")
#: The files prometheus_client writes (type, gauge mode, pid): nothing else is removed.
_METRIC_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")


def prepare(path: Path) -> Path:
    """Create ``path`` and remove the files of an earlier run: a fresh run's counters start
    at zero, and a stale "live" gauge of a PID reused since cannot linger."""
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        if _METRIC_FILE.match(old.name):
            old.unlink(missing_ok=True)
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class WorkerFiles:
    """A collector of the metrics in ``path``: the worker processes' files, merged."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        if not self.path.is_dir():
            return []
        for name in os.listdir(self.path):
            match = _LIVE_FILE.match(name)
            if match and not pid_alive(int(match.group(1))):
                mark_process_dead(int(match.group(1)), str(self.path))
        return MultiProcessCollector(None, path=str(self.path)).collect()
