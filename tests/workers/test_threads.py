"""Torch threads per training process (workers/threads.py): the host's cores shared out
among the training processes on it, and the pool process applying that share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support import ROOT

from workers.threads import default_torch_threads, host_cores, torch_threads


def test_the_cores_are_shared_out_among_worker_processes_and_their_concurrency() -> None:
    assert default_torch_threads(2, 2, 1) == 1  # `descent up --workers 2` on two cores
    assert default_torch_threads(16, 2, 2) == 4
    assert default_torch_threads(16, 3, 1) == 5  # rounded down: never more than the cores
    assert default_torch_threads(2, 4, 1) == 1  # more processes than cores: still one each
    assert default_torch_threads(8, 0, 0) == 8  # unknown counts as one process
    assert torch_threads(3, 64, 4) == 3  # DESCENT_TORCH_THREADS wins
    assert torch_threads(0, 1, 1) == host_cores()


def test_the_pool_process_sets_torch_to_its_share(tmp_path: Path) -> None:
    """What Celery's worker_process_init runs in each pool process, in a process of its
    own (torch's thread count is per process): the share follows
    DESCENT_WORKER_PROCESSES and the worker's concurrency unless DESCENT_TORCH_THREADS is
    set."""
    code = """
import json, os, types
import torch
from service.config import get_settings
from workers import app
seen = []
for processes, concurrency, fixed in ((1, 1, None), (2, 1, None), (1, 64, None), (64, 1, 3)):
    os.environ["DESCENT_WORKER_PROCESSES"] = str(processes)
    if fixed is not None:
        os.environ["DESCENT_TORCH_THREADS"] = str(fixed)
    get_settings.cache_clear()
    app._note_concurrency(sender=types.SimpleNamespace(concurrency=concurrency))
    app._configure_torch()
    seen.append(torch.get_num_threads())
print(json.dumps({"threads": seen, "cores": len(os.sched_getaffinity(0))}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
    env.update(DESCENT_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    cores = got["cores"]
    assert got["threads"] == [cores, max(1, cores // 2), 1, 3]


def test_whoever_starts_several_workers_on_a_host_tells_them_how_many_share_it() -> None:
    from service.cli.server import worker_env
    from workers.__main__ import gpu_env

    assert worker_env(3, {"PATH": "/bin"}) == {"DESCENT_WORKER_PROCESSES": "3", "PATH": "/bin"}
    env = gpu_env(1, 4, {"PATH": "/bin"})
    assert env["DESCENT_WORKER_PROCESSES"] == "4" and env["CUDA_VISIBLE_DEVICES"] == "1"
    # An operator's own count (several `descent worker`s on one host) wins.
    mine = {"DESCENT_WORKER_PROCESSES": "8"}
    assert worker_env(2, mine)["DESCENT_WORKER_PROCESSES"] == "8"
    assert gpu_env(0, 2, mine)["DESCENT_WORKER_PROCESSES"] == "8"
