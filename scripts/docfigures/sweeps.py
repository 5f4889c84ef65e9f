"""Figures of docs/sweeps.md's "auto" example: examples/sweeps/auto-lr.yaml run by a real
``descent up --workers 2`` (started in a scratch directory, as benchmarks/sweeps.py
starts it), driven over HTTP.

Which trials ASHA prunes depends on which trials end first, so these figures are one
run's: recorded with the machine, never re-run by the check.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from scripts.docfigures.core import ROOT, TIMING, Platform, Source, Value

SPEC = ROOT / "examples" / "sweeps" / "auto-lr.yaml"


def auto_lr_sweep() -> dict[str, Value]:
    import httpx
    import yaml

    from benchmarks.sweeps import TwoWorkers

    spec = yaml.safe_load(SPEC.read_text())
    with tempfile.TemporaryDirectory(prefix="descent-figures-sweep-") as tmp:
        stack = TwoWorkers(Path(tmp))
        stack.start()
        try:
            headers = {"Authorization": f"Bearer {stack.token}"}
            with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as client:
                started = time.monotonic()
                r = client.post("/v1/sweeps", json=spec)
                r.raise_for_status()
                sweep_id = r.json()["id"]
                while (sweep := client.get(f"/v1/sweeps/{sweep_id}").json())["status"] == (
                    "running"
                ):
                    time.sleep(1.0)
                seconds = time.monotonic() - started
        finally:
            stack.stop()
    bounds = sweep["auto_bounds"]
    best = sweep["best"]
    return {
        "status": sweep["status"],
        "workers": 2,
        "trials": sweep["trials_created"],
        "complete": sweep["counts"].get("complete", 0),
        "pruned": sweep["counts"].get("pruned", 0),
        "epochs": sweep["epochs_spent"],
        "lr_at_minimum": bounds["lr_at_minimum"],
        "low": bounds["bounds"]["optimizer.lr"][0],
        "high": bounds["bounds"]["optimizer.lr"][1],
        "best_value": best["value"] if best else None,
        "best_lr": best["params"]["optimizer.lr"] if best else None,
        "seconds": round(seconds, 1),
    }


SOURCES = [
    Source(
        name="auto-lr-sweep",
        about="examples/sweeps/auto-lr.yaml on descent up --workers 2 (docs/sweeps.md)",
        command=".venv/bin/python scripts/docs_check.py regenerate auto-lr-sweep",
        computes=auto_lr_sweep,
        rules=(
            ("seconds", TIMING),
            ("*", Platform(why="ASHA's verdicts depend on which trials end first")),
        ),
    ),
]
