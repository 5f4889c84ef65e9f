"""`descent up`'s worker supervisor (service/cli/server.py): its restart back-off, with
real child processes standing in for workers, and the arithmetic of its delays."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from support import wait_for

from service.cli.server import Backoff, WorkerSupervisor


def test_the_delay_doubles_while_a_worker_dies_young_and_resets_after_a_stable_run() -> None:
    backoff = Backoff(first=1.0, cap=8.0, stable_seconds=60.0)
    young = [backoff.after_death(5.0) for _ in range(5)]
    assert young == [1.0, 2.0, 4.0, 8.0, 8.0]  # capped
    # Deaths two minutes apart: each worker had run for longer than the stable period.
    assert [backoff.after_death(120.0) for _ in range(3)] == [1.0, 1.0, 1.0]
    assert backoff.after_death(1.0) == 2.0  # young again: doubling from the reset
    assert backoff.after_death(60.0) == 1.0  # exactly the stable period counts as stable


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_a_supervised_worker_that_ran_long_enough_restarts_after_the_first_delay(
    tmp_path: Path,
) -> None:
    """Real processes: starts 1-3 and 5 exit at once (dying young), start 4 runs past the
    stable period before it exits. The delays chosen follow from how long each ran,
    whatever the machine's speed: short deaths double, the long run resets."""
    starts = tmp_path / "starts"
    script = (
        'echo start >> "$STARTS"; n=$(wc -l < "$STARTS"); '
        'if [ "$n" -eq 4 ]; then sleep 2; fi; exit 3'
    )
    supervisor = WorkerSupervisor(
        1,
        {**os.environ, "STARTS": str(starts)},
        command=("sh", "-c", script),
        backoff=lambda: Backoff(first=0.05, cap=10.0, stable_seconds=1.0),
        poll_seconds=0.02,
    )
    supervisor.start()
    try:
        wait_for(lambda: len(supervisor.restart_delays) >= 5, 60, what="five restarts")
    finally:
        supervisor.stop(timeout=5)
    assert supervisor.restart_delays[:5] == [0.05, 0.1, 0.2, 0.05, 0.1]
    assert starts.read_text().count("start") >= 5


def test_stop_ends_a_worker_that_ignores_sigterm_within_its_bound(tmp_path: Path) -> None:
    """A worker that does not stop on SIGTERM (a job that never reaches a batch boundary)
    is killed, with its process group, once the stop's timeout is up."""
    ready = tmp_path / "ready"
    code = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(600)"
    )
    supervisor = WorkerSupervisor(1, dict(os.environ), command=(sys.executable, "-c", code))
    supervisor.start()
    wait_for(ready.exists, 60, what="the stubborn worker to start")
    supervisor.stop(timeout=0.5)
    proc = supervisor.procs[0]
    assert proc is not None and proc.returncode is not None
    assert proc.returncode < 0  # killed by a signal: it did not exit by itself
    assert supervisor.restart_delays == []  # stopping is not a death to restart from
