"""Train example specs in-process, one after another, and print what each run reached.

    .venv/bin/python examples/measure.py examples/optimizers/*.yaml
    .venv/bin/python examples/measure.py examples/regularization/none.yaml --history
    .venv/bin/python examples/measure.py spec.yaml --set training.epochs=10 --set optimizer.lr=0.1

No API, broker or database: each spec is parsed as the API parses it (``JobSpec``, then
``check_job`` against the server's default caps) and trained by the worker's engine
(``workers.engine.train``) on the CPU, with one torch thread unless ``--threads`` says
otherwise, after one untimed warm-up epoch (a worker is warm when a job arrives). A
worker also writes a checkpoint file each epoch; this script does the same (into a
temporary directory, fsynced) so the wall times include that cost, but not the SQL
round trip of each epoch's metrics (a few milliseconds per epoch).

It prints one markdown table row per run: how it ended, the epochs it ran, the best and
final validation figures and the wall time of ``train``, then the total.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.spec import metric_mode  # noqa: E402 - after the path is set


@dataclass
class Run:
    path: Path
    name: str
    task: str
    status: str
    reason: str | None
    epochs: int
    stop_epoch: int | None
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None  # by the early-stopping monitor, else val_loss
    best_value: float | None = None
    n_parameters: int = 0


class MemoryReporter:
    """Keeps each epoch's metrics; writes each checkpoint to a file as a worker would."""

    def __init__(self, checkpoint_path: Path | None) -> None:
        self.history: list[dict[str, float]] = []
        self.checkpoint_path = checkpoint_path

    def report(self, epoch: int, metrics: dict[str, float], checkpoint: Any) -> None:
        self.history.append(dict(metrics))
        if self.checkpoint_path is not None:
            from workers.engine import save_checkpoint

            save_checkpoint(checkpoint, self.checkpoint_path)
            with open(self.checkpoint_path, "rb") as f:
                os.fsync(f.fileno())

    def should_stop(self) -> bool:
        return False


def _scalar(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``--set a.b=value``: value read as YAML (``0.1``, ``true``, ``[64, 64]``, ``full``)."""
    for item in overrides:
        path, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected path=value")
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = _scalar(value)
    return raw


def load_spec(path: Path, overrides: list[str]):  # noqa: ANN201 - JobSpec, imported lazily
    import yaml

    from service.config import Settings
    from service.spec import JobSpec, Limits, check_job

    raw = yaml.safe_load(path.read_text())
    spec = JobSpec.model_validate(apply_overrides(raw, overrides))
    known_shape = getattr(spec.dataset, "known_shape", None)  # uploaded ones have none
    if known_shape is not None:
        shape = known_shape()
        s = Settings()
        limits = Limits(s.max_epochs, s.max_parameters, s.max_synthetic_samples)
        errors = check_job(spec, shape, limits)
        if errors:
            raise SystemExit(f"{path}: " + "; ".join(f"{e.field}: {e.message}" for e in errors))
    return spec


def measure(path: Path, overrides: list[str], *, checkpoints: bool, device: str) -> Run:
    from service.config import Settings
    from workers.engine import train
    from workers.engine.lr_finder import resolve_auto

    spec = load_spec(path, overrides)
    name = spec.name or spec.default_name()
    # "auto" rates: the range test runs first, as on a worker (workers/runner.py).
    spec, auto = resolve_auto(spec, datasets_dir=Settings().datasets_dir, device=device)
    if auto:
        name += f" ({', '.join(auto.fields)} auto → {auto.value:g}, {auto.rule})"
    with tempfile.TemporaryDirectory(prefix="descent-measure-") as tmp:
        reporter = MemoryReporter(Path(tmp) / "checkpoint.pt" if checkpoints else None)
        started = time.perf_counter()
        result = train(
            spec,
            reporter=reporter,
            datasets_dir=Settings().datasets_dir,  # uploads of the local `descent up`
            model_path=Path(tmp) / "model.pt",
            device=device,
        )
        seconds = time.perf_counter() - started
    history = reporter.history
    known_shape = getattr(spec.dataset, "known_shape", None)
    if known_shape is not None:
        task = known_shape().task
    else:  # an uploaded dataset: tell by what was recorded
        task = "classification" if history and "val_accuracy" in history[-1] else "regression"
    return Run(
        path=path,
        name=name,
        task=task,
        status=result.status,
        reason=result.reason,
        epochs=result.epochs_completed,
        stop_epoch=result.stop_epoch,
        seconds=seconds,
        history=history,
        best_epoch=result.best_epoch,
        best_value=result.best_value,
        n_parameters=result.n_parameters,
    )


def warm_up(path: Path, overrides: list[str], *, device: str = "cpu") -> None:
    """Train ``path`` for one untimed epoch. A worker process is warm when a job arrives:
    this pays the one-time costs (lazy imports, torch's first kernels) so that the first
    timed run is not charged for them. A spec that cannot run for one epoch (a warm-up
    longer than that) just skips it."""
    with contextlib.suppress(SystemExit, ValueError):
        measure(path, [*overrides, "training.epochs=1"], checkpoints=False, device=device)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _best(history: list[dict[str, float]], metric: str, mode: str) -> tuple[float | None, int]:
    values = [(m[metric], int(m["epoch"])) for m in history if metric in m]
    if not values:
        return None, 0
    pick = min if mode == "min" else max
    return pick(values, key=lambda v: v[0])


def reached(history: list[dict[str, float]], metric: str, target: float) -> int | None:
    """The first epoch whose ``metric`` is at least as good as ``target``; None: never."""
    better = (lambda v: v >= target) if metric_mode(metric) == "max" else (lambda v: v <= target)
    for m in history:
        if metric in m and better(m[metric]):
            return int(m["epoch"])
    return None


def score_metric(runs: list[Run]) -> str:
    """The quality metric a table shows: accuracy when every run classifies, else r2."""
    return "val_accuracy" if all(r.task == "classification" for r in runs) else "val_r2"


def summary(run: Run, score: str, reach: tuple[str, float] | None = None) -> dict[str, Any]:
    """One table row's figures (``reach``: the first epoch it reached, or None)."""
    last = run.history[-1] if run.history else {}
    best_loss, best_epoch = _best(run.history, "val_loss", "min")
    best_score, _ = _best(run.history, score, "max")
    row: dict[str, Any] = {
        "name": run.name,
        "status": run.status,
        "epochs": run.epochs,
        "stop_epoch": run.stop_epoch,
        "best_val_loss": best_loss,
        "best_val_loss_epoch": best_epoch,
        "final_train_loss": last.get("train_loss"),
        "final_val_loss": last.get("val_loss"),
        "best_score": best_score,
        "final_score": last.get(score),
        "wall_s": round(run.seconds, 2),
    }
    if reach is not None:
        row["reach"] = reached(run.history, *reach)
    return row


def table(rows: list[dict[str, Any]], score: str, reach: tuple[str, float] | None = None) -> str:
    """The markdown table of ``summary`` rows, with their total wall time."""
    head = (
        "| run | status | epochs | best val_loss (epoch) | final train_loss | final val_loss "
        f"| best {score} | final {score} |"
    )
    if reach is not None:
        sign = "≥" if metric_mode(reach[0]) == "max" else "≤"
        head += f" first epoch {reach[0]} {sign} {reach[1]:g} |"
    lines = [head + " wall s |", "|---" * head.count("|") + "|"]
    for r in rows:
        epochs = str(r["epochs"]) + (f" (stopped at {r['stop_epoch']})" if r["stop_epoch"] else "")
        first = r.get("reach")
        lines.append(
            f"| {r['name']} | {r['status']} | {epochs} "
            f"| {_fmt(r['best_val_loss'])} ({r['best_val_loss_epoch']}) "
            f"| {_fmt(r['final_train_loss'])} | {_fmt(r['final_val_loss'])} "
            f"| {_fmt(r['best_score'])} | {_fmt(r['final_score'])} |"
            + (f" {'never' if first is None else first} |" if reach is not None else "")
            + f" {r['wall_s']:.1f} |"
        )
    total = sum(r["wall_s"] for r in rows)
    lines.append("| **total** |" + " |" * (head.count("|") - 2) + f" **{total:.1f}** |")
    return "\n".join(lines)


def history_table(run: Run, metrics: list[str]) -> str:
    lines = [f"{run.name}: " + ", ".join(metrics)]
    for m in run.history:
        lines.append("  " + "  ".join(_fmt(m.get(k), 4) for k in ["epoch", *metrics]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", type=Path, help="YAML or JSON job specs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=V")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--no-checkpoints", action="store_true", help="skip the per-epoch checkpoint file"
    )
    parser.add_argument("--history", action="store_true", help="print every epoch's metrics")
    parser.add_argument(
        "--reach",
        metavar="METRIC=VALUE",
        help="add a column: the first epoch METRIC reached VALUE (e.g. val_accuracy=0.9)",
    )
    args = parser.parse_args(argv)
    reach = None
    if args.reach:
        metric, _, value = args.reach.partition("=")
        try:
            reach = (metric, float(value))
        except ValueError:
            parser.error(f"--reach {args.reach!r}: expected METRIC=NUMBER")

    import torch

    torch.set_num_threads(args.threads)
    warm_up(args.specs[0], args.overrides, device=args.device)
    runs = []
    for path in args.specs:
        run = measure(path, args.overrides, checkpoints=not args.no_checkpoints, device=args.device)
        runs.append(run)
        note = f" ({run.reason})" if run.reason and run.status != "succeeded" else ""
        print(f"{path}: {run.status}{note}, {run.epochs} epochs, {run.seconds:.1f} s", flush=True)
        if args.history:
            classifies = run.task == "classification"
            score = ["train_accuracy", "val_accuracy"] if classifies else ["val_r2"]
            print(history_table(run, ["train_loss", "val_loss", *score, "lr"]))
    print()
    score = score_metric(runs)
    print(table([summary(r, score, reach) for r in runs], score, reach))
    return 0


if __name__ == "__main__":
    sys.exit(main())
