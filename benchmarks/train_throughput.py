"""Training throughput of the engine, in-process: ``workers.engine.train`` with a ListReporter.

Each configuration is a job spec trained for a fixed number of epochs (no early
stopping), once untimed to warm up, then ``--repeats`` times; the figures are medians
over those runs. Per configuration and device it reports the wall time of a whole
``train`` call, the engine's own ``epoch_seconds`` and ``samples_per_second`` metrics,
optimizer steps per second, and the final validation metric, so a speed-up that breaks
training shows. A "bare" loop (the same data, model and optimizer; forward, loss,
backward, step and nothing else) gives the ceiling the engine's per-step extras
(divergence check, gradient norm, running totals, cancel polling) are measured against.

    .venv/bin/python benchmarks/train_throughput.py                  # CPU (+ CUDA if present)
    .venv/bin/python benchmarks/train_throughput.py --threads 1,2    # one pass per thread count
    .venv/bin/python benchmarks/train_throughput.py --quick          # smoke run, seconds

Writes ``benchmarks/results/train_throughput.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    machine_info,
    median,
    table,
    write_results,
)
from service.spec import JobSpec  # noqa: E402
from workers.engine import ListReporter, build_model, build_optimizer, load_dataset, train  # noqa: E402
from workers.engine.loop import batch_bounds  # noqa: E402
from workers.engine.metrics import LOSSES  # noqa: E402
from workers.engine.models import has_batch_norm  # noqa: E402

NO_DATASETS_DIR = Path("/nonexistent")  # built-in and synthetic datasets only


@dataclass(frozen=True)
class Config:
    """One benchmarked job: a spec, its epochs for a full and a quick run."""

    name: str
    what: str
    spec: dict[str, Any]
    epochs: int
    quick_epochs: int | None  # None: left out of --quick

    def job(self, epochs: int) -> JobSpec:
        spec = dict(self.spec)
        spec["training"] = {**spec.get("training", {}), "epochs": epochs, "seed": 0}
        return JobSpec.model_validate(spec)


DIGITS = {"name": "digits"}
MLP_128_64 = {"kind": "mlp", "hidden": [128, 64]}

CONFIGS: list[Config] = [
    Config(
        "digits-mlp-b32",
        "digits, MLP [128,64], adam 1e-3, batch 32",
        {
            "dataset": DIGITS,
            "model": MLP_128_64,
            "optimizer": {"name": "adam", "lr": 1e-3},
            "training": {"batch_size": 32},
        },
        epochs=10,
        quick_epochs=2,
    ),
    Config(
        "digits-mlp-full",
        'digits, MLP [128,64], sgd 0.5, batch "full" (full-batch GD)',
        {
            "dataset": DIGITS,
            "model": MLP_128_64,
            "optimizer": {"name": "sgd", "lr": 0.5},
            "training": {"batch_size": "full"},
        },
        epochs=200,
        quick_epochs=20,
    ),
    Config(
        "digits-mlp-b1",
        "digits, MLP [128,64], sgd 1e-2, batch 1 (classic SGD)",
        {
            "dataset": DIGITS,
            "model": MLP_128_64,
            "optimizer": {"name": "sgd", "lr": 1e-2},
            "training": {"batch_size": 1},
        },
        epochs=2,
        quick_epochs=None,
    ),
    Config(
        "digits-cnn",
        "digits, CNN channels [16,32] + [64], adam 1e-3, batch 32",
        {
            "dataset": DIGITS,
            "model": {"kind": "cnn", "channels": [16, 32]},
            "optimizer": {"name": "adam", "lr": 1e-3},
            "training": {"batch_size": 32},
        },
        epochs=5,
        quick_epochs=1,
    ),
    Config(
        "moons-20k-mlp-b256",
        "moons n_samples 20000, MLP [64,64], adam 1e-3, batch 256",
        {
            "dataset": {"name": "moons", "n_samples": 20000},
            "model": {"kind": "mlp", "hidden": [64, 64]},
            "optimizer": {"name": "adam", "lr": 1e-3},
            "training": {"batch_size": 256},
        },
        epochs=10,
        quick_epochs=None,
    ),
    Config(
        "diabetes-mlp-regression",
        "diabetes (regression), MLP [64,64], adam 3e-2, batch 32",
        {
            "dataset": {"name": "diabetes"},
            "model": {"kind": "mlp", "hidden": [64, 64]},
            "optimizer": {"name": "adam", "lr": 3e-2},
            "training": {"batch_size": 32},
        },
        epochs=50,
        quick_epochs=5,
    ),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _val_metric(task: str) -> str:
    return "val_accuracy" if task == "classification" else "val_r2"


def run_engine(spec: JobSpec, device: torch.device) -> dict[str, Any]:
    """One ``train`` call: its wall time and the per-epoch metrics it reported."""
    reporter = ListReporter()
    gc.collect()
    _sync(device)
    started = time.perf_counter()
    result = train(spec, reporter=reporter, datasets_dir=NO_DATASETS_DIR, device=str(device))
    _sync(device)
    wall = time.perf_counter() - started
    if result.status != "succeeded":
        raise RuntimeError(f"{spec.name or spec.default_name()}: {result.status}: {result.reason}")
    return {"wall": wall, "history": reporter.history, "final": result.final_metrics}


def run_bare(spec: JobSpec, device: torch.device) -> float:
    """The same data, model and optimizer in the plainest loop; seconds spent stepping."""
    torch.manual_seed(spec.training.seed)
    data = load_dataset(spec.dataset, datasets_dir=NO_DATASETS_DIR, device=device)
    model = build_model(spec.model, data.shape).to(device)
    optimizer = build_optimizer(spec.optimizer, model.parameters())
    loss_fn = LOSSES[data.task]
    n_train = len(data.y_train)
    size = min(spec.training.resolve_batch_size(n_train), n_train)
    bounds = batch_bounds(n_train, size, has_batch_norm(model))
    shuffle = torch.Generator(device=device)
    shuffle.manual_seed(spec.training.seed)
    gc.collect()
    _sync(device)
    started = time.perf_counter()
    model.train()
    for _ in range(spec.training.epochs):
        order = torch.randperm(n_train, generator=shuffle, device=device)
        for lo, hi in bounds:
            idx = order[lo:hi]
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _sync(device)
    return time.perf_counter() - started


def bench_config(
    config: Config, device: torch.device, *, epochs: int, repeats: int, bare: bool
) -> dict[str, Any]:
    spec = config.job(epochs)
    shape = spec.dataset.known_shape()
    n_train, n_val = spec.dataset.split_sizes(shape.n_samples)
    batch_size = min(spec.training.resolve_batch_size(n_train), n_train)
    steps_per_epoch = len(batch_bounds(n_train, batch_size, batch_norm=False))

    warmup = run_engine(spec, device)  # imports, allocator, kernels: not counted
    runs: list[dict[str, Any]] = []
    bare_runs: list[float] = []
    for _ in range(repeats):
        # Alternated, so a slow patch of a shared machine hits both alike.
        runs.append(run_engine(spec, device))
        if bare:
            bare_runs.append(run_bare(spec, device))

    walls = [r["wall"] for r in runs]
    epochs_all = [m for r in runs for m in r["history"]]
    epoch_seconds = [m["epoch_seconds"] for m in epochs_all]
    samples_per_second = [m["samples_per_second"] for m in epochs_all]
    # samples_per_second times the training steps only (no validation): steps likewise.
    steps_per_second = [steps_per_epoch * sps / n_train for sps in samples_per_second]
    metric = _val_metric(shape.task)
    finals = [r["final"][metric] for r in runs]
    out: dict[str, Any] = {
        "config": config.name,
        "what": config.what,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "epochs": epochs,
        "repeats": repeats,
        "n_train": n_train,
        "n_val": n_val,
        "batch_size": batch_size,
        "steps_per_epoch": steps_per_epoch,
        "warmup_wall_seconds": round(warmup["wall"], 4),
        "wall_seconds_median": round(median(walls), 4),
        "wall_seconds_all": [round(w, 4) for w in walls],
        "epoch_seconds_median": round(median(epoch_seconds), 5),
        "samples_per_second_median": round(median(samples_per_second), 1),
        "steps_per_second_median": round(median(steps_per_second), 1),
        "wall_steps_per_second": round(steps_per_epoch * epochs / median(walls), 1),
        "final_metric": metric,
        "final_value": round(median(finals), 6),
        "final_train_loss": round(runs[-1]["final"]["train_loss"], 6),
        # On the CPU the same spec and seed give the same metrics every run.
        "final_identical_across_runs": len(set(finals)) == 1,
    }
    if bare:
        bare_seconds = median(bare_runs)
        bare_sps = steps_per_epoch * epochs / bare_seconds
        train_seconds = median(
            [sum(n_train / m["samples_per_second"] for m in r["history"]) for r in runs]
        )
        out["bare_steps_per_second"] = round(bare_sps, 1)
        # The share of the engine's training time (validation excluded) spent beyond the
        # bare loop's forward/backward/step.
        out["engine_overhead_fraction"] = round(1 - bare_seconds / train_seconds, 3)
    return out


def parse_threads(text: str) -> list[int]:
    """``"1,2"`` → [1, 2]: the values --threads takes."""
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("takes positive integers, e.g. 1 or 1,2")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=parse_threads,
        default=None,
        help="torch.set_num_threads before measuring; a comma-separated list runs one pass "
        "per value (default: torch's own choice).",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="Timed runs per config (default 3; 1 quick)."
    )
    parser.add_argument("--quick", action="store_true", help="Fewer configs and epochs.")
    parser.add_argument(
        "--devices",
        default=None,
        help="Comma-separated devices (default: cpu, and cuda when available).",
    )
    parser.add_argument("--only", default=None, help="Comma-separated config names to run.")
    parser.add_argument("--no-bare", action="store_true", help="Skip the bare-loop reference.")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "train_throughput.json")
    args = parser.parse_args(argv)

    threads: list[int | None] = list(args.threads) if args.threads else [None]
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.devices:
        devices = [torch.device(d.strip()) for d in args.devices.split(",") if d.strip()]
    else:
        devices = [torch.device("cpu")]
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
    configs = [c for c in CONFIGS if not args.quick or c.quick_epochs is not None]
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        unknown = wanted - {c.name for c in CONFIGS}
        if unknown:
            parser.error(f"unknown config(s) {sorted(unknown)}; known: {[c.name for c in CONFIGS]}")
        configs = [c for c in configs if c.name in wanted]

    default_threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    machine = machine_info(  # before the run: the load average is the machine's, not ours
        torch_default_threads=default_threads,
        cuda_available=torch.cuda.is_available(),
        gpu=gpu,
    )
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    for n_threads in threads:
        torch.set_num_threads(n_threads or default_threads)
        for device in devices:
            for config in configs:
                epochs = config.quick_epochs if args.quick else config.epochs
                assert epochs is not None
                row = bench_config(
                    config, device, epochs=epochs, repeats=repeats, bare=not args.no_bare
                )
                results.append(row)
                print(
                    f"  {config.name:<24} {device.type:<4} threads={row['torch_threads']} "
                    f"{row['wall_seconds_median']:.3f}s/run {row['steps_per_second_median']:,.0f} "
                    f"steps/s {row['final_metric']}={row['final_value']:.4f}",
                    file=sys.stderr,
                )
    elapsed = time.perf_counter() - started

    payload = {
        "benchmark": "train_throughput",
        "machine": machine,
        "options": {
            "threads": [t or default_threads for t in threads],
            "repeats": repeats,
            "quick": args.quick,
            "devices": [str(d) for d in devices],
            "bare_loop": not args.no_bare,
        },
        "elapsed_seconds": round(elapsed, 1),
        "results": results,
    }
    path = write_results(args.out, payload)

    print(
        table(
            [
                "config",
                "dev",
                "thr",
                "epochs",
                "wall s/run",
                "epoch s",
                "samples/s",
                "steps/s",
                "bare steps/s",
                "overhead",
                "final val",
            ],
            [
                [
                    r["config"],
                    r["device"],
                    r["torch_threads"],
                    r["epochs"],
                    r["wall_seconds_median"],
                    r["epoch_seconds_median"],
                    r["samples_per_second_median"],
                    r["steps_per_second_median"],
                    r.get("bare_steps_per_second"),
                    _pct(r.get("engine_overhead_fraction")),
                    f"{r['final_metric']}={r['final_value']:.4f}",
                ]
                for r in results
            ],
        )
    )
    print(f"\n{len(results)} rows in {elapsed:.0f}s; medians of {repeats} run(s). Wrote {path}")
    return 0


def _pct(fraction: float | None) -> str | None:
    return None if fraction is None or math.isnan(fraction) else f"{fraction:.0%}"


if __name__ == "__main__":
    sys.exit(main())
