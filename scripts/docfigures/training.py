"""Figures from training runs: the README's digits example and the five comparisons under
``examples/``, each trained in-process by ``examples/measure.py`` (the worker's engine,
one torch thread, a checkpoint file per epoch as a worker writes it).

Float32 training on a CPU is bit-for-bit repeatable on one platform, not across CPU
models: a kernel that rounds one last bit differently (another instruction set, another
BLAS code path) changes a weight, and epochs of training grow that into other figures.
How far they move depends on the run: small, well-conditioned runs repeat their figures
to the digit across the platforms we tried, long runs at high rates do not (the README's
digits example: val_accuracy 0.955 on an AMD EPYC, 0.947 on an Intel Xeon).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scripts.docfigures.core import ROOT, TIMING, Near, Platform, Rule, Source, Value
from scripts.docfigures.examples import measure

Run = Any  # examples/measure.py's Run
Derive = Callable[[dict[str, Run]], dict[str, Value]]

#: Chaotic figures: where a run's late epochs depend on every bit that came before.
CHAOTIC = Platform(
    why="late epochs of a float32 run carry every rounding difference of the kernels; "
    "they moved by up to 0.017 in val_accuracy and 3 epochs in early stopping between an "
    "AMD EPYC and an Intel Xeon"
)


def train(paths: Sequence[Path], overrides: Sequence[str] = ()) -> list[Run]:
    """Each spec trained as ``examples/measure.py`` trains it: one torch thread, after an
    untimed warm-up epoch, with a checkpoint file per epoch."""
    import torch

    m = measure()
    torch.set_num_threads(1)
    m.warm_up(paths[0], list(overrides))
    return [m.measure(p, list(overrides), checkpoints=True, device="cpu") for p in paths]


def at(run: Run, epoch: int, metric: str) -> float:
    """``metric`` of ``run`` at ``epoch`` (from 1)."""
    row = run.history[epoch - 1]
    assert int(row["epoch"]) == epoch
    return float(row[metric])


def series(run: Run, metric: str, first: int = 1) -> list[float]:
    return [float(m[metric]) for m in run.history if int(m["epoch"]) >= first]


# -- the comparisons ---------------------------------------------------------------------


def table_block(figures: dict[str, Value]) -> str:
    """The comparison's table, as examples/measure.py prints it."""
    m = measure()
    keys = ("name", "status", "epochs", "stop_epoch", "best_val_loss", "best_val_loss_epoch")
    keys += ("final_train_loss", "final_val_loss", "best_score", "final_score", "wall_s")
    reach = figures.get("reach_metric")
    rows = []
    for stem in figures["runs"]:
        row = {k: figures[f"{stem}.{k}"] for k in keys}
        if reach is not None:
            row["reach"] = figures[f"{stem}.reach"]
        rows.append(row)
    target = (str(reach), float(figures["reach_value"])) if reach is not None else None
    return m.table(rows, str(figures["score"]), target) + "\n"


def comparison(
    name: str,
    about: str,
    order: Sequence[str],
    *,
    reach: tuple[str, float] | None,
    derive: Derive,
    cheap: bool,
    rules: tuple[tuple[str, Rule], ...] = (),
) -> Source:
    """A source for ``examples/<name>/``: the table of its README (a block) and the
    figures its prose quotes (``derive``)."""
    directory = ROOT / "examples" / name

    def computes() -> dict[str, Value]:
        m = measure()
        runs = train([directory / f"{stem}.yaml" for stem in order])
        score = m.score_metric(runs)
        figures: dict[str, Value] = {"runs": list(order), "score": score}
        if reach is not None:
            figures |= {"reach_metric": reach[0], "reach_value": reach[1]}
        for stem, run in zip(order, runs, strict=True):
            for key, value in m.summary(run, score, reach).items():
                figures[f"{stem}.{key}"] = value
        figures["total_wall_s"] = round(sum(r.seconds for r in runs), 2)
        return figures | derive(dict(zip(order, runs, strict=True)))

    files = " ".join(f"examples/{name}/{stem}.yaml" for stem in order)
    target = f" --reach {reach[0]}={reach[1]:g}" if reach else ""
    return Source(
        name=name,
        about=about,
        command=f".venv/bin/python scripts/docs_check.py regenerate {name} (the table alone: "
        f".venv/bin/python examples/measure.py {files}{target})",
        cheap=cheap,
        computes=computes,
        rules=(
            ("*wall_s", TIMING),
            *rules,
            ("*.name", Rule("exact")),
            ("runs", Rule("exact")),
            ("score", Rule("exact")),
            ("reach_*", Rule("exact")),
            ("*", CHAOTIC),
        ),
        blocks={"table": table_block},
    )


# -- regularization ----------------------------------------------------------------------


def _regularization(runs: dict[str, Run]) -> dict[str, Value]:
    none, dropout, early = runs["none"], runs["dropout"], runs["early-stopping"]
    best = none.best_epoch or 0
    after_best = [m["val_accuracy"] for m in none.history if int(m["epoch"]) >= best]
    same = [
        {k: v for k, v in m.items() if k not in ("epoch_seconds", "samples_per_second")}
        for m in none.history[: len(early.history)]
    ] == [
        {k: v for k, v in m.items() if k not in ("epoch_seconds", "samples_per_second")}
        for m in early.history
    ]
    return {
        "parameters": none.n_parameters,
        "none.remaining_epochs": none.epochs - best,
        "none.val_loss_at_50": at(none, 50, "val_loss"),
        "none.train_loss_at_best": at(none, best, "train_loss"),
        "none.train_loss_at_50": at(none, 50, "train_loss"),
        "none.val_accuracy_min_after_best": min(after_best),
        "none.val_accuracy_max_after_best": max(after_best),
        "dropout.val_loss_min": min(series(dropout, "val_loss")),
        "dropout.val_loss_max_from_5": max(series(dropout, "val_loss", first=5)),
        "early-stopping.epochs_after_best": (early.stop_epoch or 0) - (early.best_epoch or 0),
        "early-stopping.repeats_none": same,
    }


# -- initialization and scaling ------------------------------------------------------------


def _init_scaling(runs: dict[str, Run]) -> dict[str, Value]:
    he, xavier, default = runs["he"], runs["xavier"], runs["default"]
    he_raw, xavier_raw = runs["he-raw"], runs["xavier-raw"]
    no_clip = train(
        [ROOT / "examples" / "init-scaling" / f"{s}.yaml" for s in ("he-raw", "xavier-raw")],
        ["regularization.grad_clip=null"],
    )
    acc = "val_accuracy"
    figures: dict[str, Value] = {
        "he.val_accuracy_1": at(he, 1, acc),
        "he.val_accuracy_2": at(he, 2, acc),
        "xavier.val_accuracy_1": at(xavier, 1, acc),
        "xavier.val_accuracy_2": at(xavier, 2, acc),
        "xavier.val_accuracy_3": at(xavier, 3, acc),
        "default.val_accuracy_moves": max(series(default, acc)) - min(series(default, acc)),
        "he-raw.first_train_loss": at(he_raw, 1, "train_loss"),
        "he-raw.val_accuracy_min": min(series(he_raw, acc)),
        "he-raw.val_accuracy_max": max(series(he_raw, acc)),
        "xavier-raw.val_accuracy_min": min(series(xavier_raw, acc)),
        "xavier-raw.val_accuracy_max": max(series(xavier_raw, acc)),
        "he-raw-unclipped.status": no_clip[0].status,
        "he-raw-unclipped.reason": no_clip[0].reason or "",
        "xavier-raw-unclipped.status": no_clip[1].status,
        "xavier-raw-unclipped.first_train_loss": at(no_clip[1], 1, "train_loss"),
        "xavier-raw-unclipped.final_val_accuracy": series(no_clip[1], acc)[-1],
    }
    return figures | _data_shape("breast_cancer")


def _data_shape(name: str, path: Path | None = None) -> dict[str, Value]:
    """The split of dataset ``name`` (or of the spec at ``path``), as a job makes it."""
    import torch
    import yaml

    from service.spec import JobSpec
    from workers.engine import load_dataset

    raw = yaml.safe_load(path.read_text()) if path else {"dataset": {"name": name}}
    spec = JobSpec.model_validate(raw)
    cpu = torch.device("cpu")
    data = load_dataset(spec.dataset, datasets_dir=ROOT / ".descent" / "datasets", device=cpu)
    n_train, n_val = len(data.y_train), len(data.y_val)
    # the majority class's share of the validation split: what "predicting one class" scores
    counts = data.y_val.bincount()
    return {
        "data.samples": n_train + n_val,
        "data.features": int(data.x_train.shape[1]),
        "data.train": n_train,
        "data.val": n_val,
        "data.majority_share": float(counts.max()) / n_val,
    }


def spikes(run: Run, metric: str = "val_loss", factor: float = 3.0) -> list[int]:
    """Epochs where ``metric`` peaks (above both neighbours) at more than ``factor`` times
    its lowest value so far: the spikes of a curve at too high a rate."""
    v = series(run, metric)
    return [
        e + 1
        for e in range(1, len(v) - 1)
        if v[e] > v[e - 1] and v[e] > v[e + 1] and v[e] > factor * min(v[:e])
    ]


def _extra(directory: str, stem: str, *overrides: str) -> Run:
    (run,) = train([ROOT / "examples" / directory / f"{stem}.yaml"], list(overrides))
    return run


# -- optimizers ------------------------------------------------------------------------------


def _optimizers(runs: dict[str, Run]) -> dict[str, Value]:
    m = measure()
    reach = {k: m.reached(r.history, "val_accuracy", 0.9) for k, r in runs.items()}
    first = [at(r, 1, "val_loss") for r in runs.values()]
    adam_like = [reach[k] for k in ("adam", "adamw", "nadam")]
    sgd_like = [reach[k] for k in ("sgd", "momentum", "nesterov")]
    others = [series(r, "val_accuracy")[-1] for k, r in runs.items() if k != "adamax"]
    adamax = series(runs["adamax"], "val_loss")
    fast_adam = _extra("optimizers", "adam", "optimizer.lr=0.01")
    slow_sgd = _extra("optimizers", "sgd", "optimizer.lr=0.02")
    return {
        "first_val_loss_min": min(first),
        "first_val_loss_max": max(first),
        "adam_like_reach_min": min(x for x in adam_like if x is not None),
        "adam_like_reach_max": max(x for x in adam_like if x is not None),
        "sgd_like_reach_min": min(x for x in sgd_like if x is not None),
        "sgd_like_reach_max": max(x for x in sgd_like if x is not None),
        "sgd.spikes": spikes(runs["sgd"]),
        "adamax.still_falling": adamax[-1] < adamax[-2],
        "others_final_min": min(others),
        "adam_lr_0.01.reach": m.reached(fast_adam.history, "val_accuracy", 0.9),
        "adam_lr_0.01.final_val_loss": series(fast_adam, "val_loss")[-1],
        "sgd_lr_0.02.reach": m.reached(slow_sgd.history, "val_accuracy", 0.9),
        "sgd_lr_0.02.best_val_accuracy": max(series(slow_sgd, "val_accuracy")),
    } | _data_shape("spirals", ROOT / "examples" / "optimizers" / "sgd.yaml")


# -- batch size ------------------------------------------------------------------------------


def _batch_size(runs: dict[str, Run]) -> dict[str, Value]:
    import statistics

    full, one, mini = runs["full-batch"], runs["stochastic"], runs["mini-batch"]
    more = _extra("batch-size", "full-batch", "training.epochs=650")
    late = [(v, e + 1) for e, v in enumerate(series(one, "val_loss")) if e + 1 > 10]
    peak, peak_epoch = max(late)
    seconds = {k: statistics.median(series(r, "epoch_seconds")) for k, r in runs.items()}
    shape = _data_shape("moons", ROOT / "examples" / "batch-size" / "full-batch.yaml")
    n_train = int(shape["data.train"])
    return {
        "stochastic.late_peak_val_loss": peak,
        "stochastic.late_peak_epoch": peak_epoch,
        "stochastic.epoch_seconds_ratio": seconds["stochastic"] / seconds["mini-batch"],
        "mini-batch.steps_per_epoch": -(-n_train // 32),
        "mini-batch.steps": -(-n_train // 32) * mini.epochs,
        "stochastic.steps": n_train * one.epochs,
        "full-650.final_val_loss": series(more, "val_loss")[-1],
        "full-650.final_val_accuracy": series(more, "val_accuracy")[-1],
        "full-650.wall_s": round(more.seconds, 2),
        "full-batch.final_val_accuracy_min": min(series(full, "val_accuracy", first=40)),
        "full-batch.final_val_accuracy_max": max(series(full, "val_accuracy", first=40)),
    } | shape


# -- schedules -------------------------------------------------------------------------------


def _schedules(runs: dict[str, Run]) -> dict[str, Value]:
    m = measure()
    constant = runs["constant"]
    decaying = {k: r for k, r in runs.items() if k != "constant"}
    finals = {k: r.history[-1] for k, r in decaying.items()}
    reach = [m.reached(r.history, "val_loss", 0.05) for r in decaying.values()]
    cycle_lr = series(runs["one-cycle"], "lr")
    plateau_lr = series(runs["plateau"], "lr")
    after = series(constant, "val_loss", first=11)
    return {
        "constant.val_loss_min_after_10": min(after),
        "constant.val_loss_max_after_10": max(after),
        "constant.spikes": spikes(constant),
        "decaying.final_val_loss_min": min(f["val_loss"] for f in finals.values()),
        "decaying.final_val_loss_max": max(f["val_loss"] for f in finals.values()),
        "decaying.final_train_loss_min": min(f["train_loss"] for f in finals.values()),
        "decaying.final_train_loss_max": max(f["train_loss"] for f in finals.values()),
        "decaying.reach_min": min(r for r in reach if r is not None),
        "decaying.reach_max": max(r for r in reach if r is not None),
        "decaying.all_reach": all(r is not None for r in reach),
        "exponential.last_lr": series(runs["exponential"], "lr")[-1],
        "time-based.last_lr": series(runs["time-based"], "lr")[-1],
        "one-cycle.first_lr": cycle_lr[0],
        "one-cycle.peak_epoch": cycle_lr.index(max(cycle_lr)) + 1,
        "plateau.cuts": [e for e in range(1, len(plateau_lr)) if plateau_lr[e] < plateau_lr[e - 1]],
        "highest_last_lr": max(decaying, key=lambda k: series(decaying[k], "lr")[-1]),
        "lowest_final_val_loss": min(decaying, key=lambda k: finals[k]["val_loss"]),
    }


def steady(accuracy: float, why: str) -> tuple[tuple[str, Rule], ...]:
    """Rules for runs whose figures moved only in their last bits between platforms (about
    1e-7 of a loss between torch's AVX-512 and AVX2 kernels): epochs ±1, an accuracy by
    ``accuracy`` (one validation sample), a loss by 1%."""
    return (
        ("*epoch*", Near(abs=1, why=f"{why}; a crossing can move by an epoch")),
        ("*remaining_epochs", Near(abs=1, why=f"{why}; a crossing can move by an epoch")),
        ("*.reach", Near(abs=1, why=f"{why}; a crossing can move by an epoch")),
        ("*accuracy*", Near(abs=accuracy, why=f"{why}; one validation sample")),
        ("*score*", Near(abs=accuracy, why=f"{why}; one validation sample")),
        ("*loss*", Near(rel=0.01, why=f"{why}; 1% of a loss")),
    )


# -- the sources ----------------------------------------------------------------------------

SOURCES = [
    comparison(
        "regularization",
        "examples/regularization: an over-fitting network and four regularizers",
        ["none", "l2", "dropout", "batch-norm", "early-stopping"],
        reach=None,
        derive=_regularization,
        cheap=True,
        rules=(
            ("parameters", Rule("exact")),
            ("*.repeats_none", Rule("exact")),
            ("*.status", Rule("exact")),
            *steady(0.011, "these runs differed in their last bits between platforms"),
        ),
    ),
    comparison(
        "optimizers",
        "examples/optimizers: nine optimizers leaving the same plateau",
        ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adamax"],
        reach=("val_accuracy", 0.9),
        derive=_optimizers,
        cheap=False,
        rules=(("data.*", Rule("exact")),),
    ),
    comparison(
        "batch-size",
        "examples/batch-size: full-batch GD, SGD and mini-batches",
        ["full-batch", "stochastic", "mini-batch"],
        reach=("val_accuracy", 0.9),
        derive=_batch_size,
        cheap=False,
        rules=(
            ("*epoch_seconds_ratio", TIMING),
            ("data.*", Rule("exact")),
            ("*steps*", Rule("exact")),
        ),
    ),
    comparison(
        "schedules",
        "examples/schedules: seven schedules from the same SGD and rate",
        ["constant", "step", "exponential", "time-based", "cosine", "one-cycle", "plateau"],
        reach=("val_loss", 0.05),
        derive=_schedules,
        cheap=False,
        rules=(("*.first_lr", Rule("exact")),),
    ),
    comparison(
        "init-scaling",
        "examples/init-scaling: initializations and feature scaling in a deep ReLU network",
        ["he", "xavier", "default", "he-raw", "xavier-raw"],
        reach=("val_accuracy", 0.9),
        derive=_init_scaling,
        cheap=True,
        rules=(
            ("data.*", Rule("exact")),
            ("*.first_train_loss", Near(rel=0.01, why="the first epoch's loss: 1%")),
            ("*-raw*", CHAOTIC),  # huge steps on raw features: kernels change the path
            ("*.status", Rule("exact")),
            *steady(0.0088, "the standardized runs differed in their last bits between platforms"),
        ),
    ),
]
