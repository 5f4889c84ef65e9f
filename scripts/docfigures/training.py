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

from scripts.docfigures.core import ROOT, TIMING, Platform, Rule, Source, Value
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
        command=f".venv/bin/python examples/measure.py {files}{target}",
        cheap=cheap,
        computes=computes,
        rules=(("*wall_s", TIMING), *rules, ("*.name", Rule("exact")), ("*", CHAOTIC)),
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


def _data_shape(name: str) -> dict[str, Value]:
    import torch

    from service.spec import JobSpec
    from workers.engine import load_dataset

    spec = JobSpec.model_validate({"dataset": {"name": name}})
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


# -- the sources ----------------------------------------------------------------------------

SOURCES = [
    comparison(
        "regularization",
        "examples/regularization: an over-fitting network and four regularizers",
        ["none", "l2", "dropout", "batch-norm", "early-stopping"],
        reach=None,
        derive=_regularization,
        cheap=True,
        rules=(("parameters", Rule("exact")), ("*.repeats_none", Rule("exact"))),
    ),
    comparison(
        "init-scaling",
        "examples/init-scaling: initializations and feature scaling in a deep ReLU network",
        ["he", "xavier", "default", "he-raw", "xavier-raw"],
        reach=("val_accuracy", 0.9),
        derive=_init_scaling,
        cheap=True,
        rules=(("data.*", Rule("exact")),),
    ),
]
