"""ASHA against no pruning: the same sweep over the optimizer, its learning rate, weight
decay and dropout on digits, run both ways with the same trials budget, for several sweep
seeds. Records the best objective each reached and the epochs each spent.

    .venv/bin/python benchmarks/sweeps.py [--seeds 5] [--trials 20] [--epochs 20]

Runs ``descent up --workers 2`` (the embedded default: SQLite and the SQL broker) in a
scratch directory and drives it over HTTP, like a user would. Results:
benchmarks/results/sweeps-asha.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.api_latency import EmbeddedStack, Proc, base_env  # noqa: E402
from benchmarks.common import RESULTS_DIR, machine_info, table, write_results  # noqa: E402


class TwoWorkers(EmbeddedStack):
    """``descent up --workers 2``."""

    def start(self) -> dict[str, float]:
        started = time.monotonic()
        up = Proc(
            "descent up",
            [sys.executable, "-m", "service.cli", "up", "--workers", "2",
             "--port", str(self.port), "--data-dir", str(self.workdir / "data")],
            base_env({"DESCENT_TORCH_THREADS": "1"}),
            self.workdir / "up.log",
        )  # fmt: skip
        self.procs = [up]
        self.worker_log = up
        ready = self._wait_ready(started)
        self.token = (self.workdir / "data" / "token").read_text().strip()
        return ready


def sweep_spec(seed: int, pruner: str, trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": f"bench {pruner} seed {seed}",
        "base": {
            "dataset": {"name": "digits"},
            "model": {"kind": "mlp", "hidden": [64]},
            "training": {"epochs": epochs, "batch_size": 64},
        },
        "space": {
            "optimizer.name": {"choice": ["sgd", "adam", "rmsprop"]},
            "optimizer.lr": {"loguniform": [1e-4, 0.3]},
            "optimizer.weight_decay": {"loguniform": [1e-6, 1e-2]},
            "model.dropout": {"uniform": [0.0, 0.5]},
        },
        "sampler": {"name": "random", "seed": seed},
        "pruner": {"name": pruner, "grace": 2, "reduction_factor": 3},
        "objective": {"metric": "val_accuracy", "direction": "max"},
        "max_trials": trials,
        "parallelism": 2,
    }


def run_sweep(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    r = client.post("/v1/sweeps", json=spec)
    r.raise_for_status()
    sweep_id = r.json()["id"]
    while True:
        sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
        if sweep["status"] != "running":
            break
        time.sleep(1.0)
    return {
        "status": sweep["status"],
        "best": sweep["best"]["value"] if sweep["best"] else None,
        "epochs": sweep["epochs_spent"],
        "pruned": sweep["counts"].get("pruned", 0),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="descent-bench-sweeps-") as tmp:
        stack = TwoWorkers(Path(tmp))
        stack.start()
        runs: list[dict[str, Any]] = []
        try:
            with httpx.Client(
                base_url=stack.base_url,
                headers={"Authorization": f"Bearer {stack.token}"},
                timeout=30,
            ) as client:
                for seed in range(args.seeds):
                    for pruner in ("none", "asha"):
                        spec = sweep_spec(seed, pruner, args.trials, args.epochs)
                        result = run_sweep(client, spec)
                        runs.append({"seed": seed, "pruner": pruner, **result})
                        print(runs[-1], flush=True)
        finally:
            stack.stop()

    def of(pruner: str, key: str) -> list[float]:
        return [r[key] for r in runs if r["pruner"] == pruner]

    summary = {
        pruner: {
            "best_mean": round(statistics.fmean(of(pruner, "best")), 4),
            "best_min": round(min(of(pruner, "best")), 4),
            "epochs_mean": round(statistics.fmean(of(pruner, "epochs")), 1),
            "seconds_mean": round(statistics.fmean(of(pruner, "seconds")), 1),
        }
        for pruner in ("none", "asha")
    }
    summary["ratio"] = {
        "epochs_asha_over_none": round(
            summary["asha"]["epochs_mean"] / summary["none"]["epochs_mean"], 3
        ),
        "best_asha_minus_none": round(
            summary["asha"]["best_mean"] - summary["none"]["best_mean"], 4
        ),
    }
    rows = [
        (r["seed"], r["pruner"], r["best"], r["epochs"], r["pruned"], r["seconds"]) for r in runs
    ]
    print(table(["seed", "pruner", "best val_accuracy", "epochs", "pruned", "seconds"], rows))
    print(summary)
    path = write_results(
        RESULTS_DIR / "sweeps-asha.json",
        {
            "benchmark": "sweeps",
            "machine": machine_info(workers=2, torch_threads=1),
            "settings": vars(args),
            "space": sweep_spec(0, "asha", args.trials, args.epochs)["space"],
            "runs": runs,
            "summary": summary,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
