"""Figures of the optimization lab (docs/lab.md, examples/lab/, the README, docs/cli.md,
docs/sweeps.md): the range test of examples/lab/range-test.yaml, the default range test
behind the "auto" runs, those runs, and 1cycle against tuned constant rates
(examples/lab/tuned.py); and the README's digits example (examples/digits-adam.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripts.docfigures.core import ROOT, TIMING, Near, Platform, Rule, Source, Value
from scripts.docfigures.examples import load, measure
from scripts.docfigures.training import CHAOTIC, at, train

LAB = ROOT / "examples" / "lab"


def _range_test(path: Path, settings: Any = None) -> Any:
    import torch
    import yaml

    from service.spec import JobSpec
    from service.spec.lab import RangeTest
    from workers.engine.lr_finder import range_test

    torch.set_num_threads(1)
    spec = JobSpec.model_validate(yaml.safe_load(path.read_text()))
    chosen = settings or spec.range_test or RangeTest()
    return range_test(spec, chosen, datasets_dir=ROOT / ".descent" / "datasets", device="cpu")


def _range_figures(prefix: str, result: Any) -> dict[str, Value]:
    best = result.best
    figures: dict[str, Value] = {
        f"{prefix}.steps_run": len(result.points),
        f"{prefix}.stopped": result.stopped.why,
        f"{prefix}.stop_text": result.stopped.text,
        f"{prefix}.stop_step": result.stopped.step,
        f"{prefix}.stop_lr": result.points[-1].lr,
        f"{prefix}.best_step": best.step,
        f"{prefix}.best_lr": best.lr,
        f"{prefix}.best_loss": best.smoothed_loss,
    }
    for s in result.suggestions:
        figures |= {
            f"{prefix}.{s.rule}.lr": s.lr,
            f"{prefix}.{s.rule}.step": s.step,
            f"{prefix}.{s.rule}.explanation": s.explanation,
        }
    return figures


def lab() -> dict[str, Value]:
    from service.spec.lab import RangeTest, round_rate

    figures = _range_figures("example", _range_test(LAB / "range-test.yaml"))
    figures |= _range_figures("default", _range_test(LAB / "one-cycle-auto.yaml", RangeTest()))
    figures["example.sweep_low"] = round_rate(float(figures["example.best_lr"]) / 100)
    figures["example.sweep_high"] = round_rate(float(figures["example.best_lr"]))

    m = measure()
    names = {"one-cycle-auto": "one_cycle", "constant-auto": "constant_auto", "constant": "hand"}
    runs = train([LAB / f"{stem}.yaml" for stem in names])
    for (stem, key), run in zip(names.items(), runs, strict=True):
        accuracy = [r["val_accuracy"] for r in run.history]
        figures |= {
            f"{key}.reach": m.reached(run.history, "val_accuracy", 0.95),
            f"{key}.best": max(accuracy),
            f"{key}.final": accuracy[-1],
            f"{key}.lr": _rate(run.name, LAB / f"{stem}.yaml"),
            f"{key}.wall_s": round(run.seconds, 2),
        }
    # 1cycle with the valley rule's peak instead of min_div_10's: why "auto" takes min_div_10.
    (valley_peak,) = train([LAB / "one-cycle-auto.yaml"], ["range_test.suggestion=valley"])
    figures |= {
        "one_cycle_valley.lr": _rate(valley_peak.name, LAB / "one-cycle-auto.yaml"),
        "one_cycle_valley.final": valley_peak.history[-1]["val_accuracy"],
        "one_cycle_valley.reach": m.reached(valley_peak.history, "val_accuracy", 0.95),
    }

    tuned = load("examples/lab/tuned.py")
    rows = tuned.grid()
    figures["grid"] = list(tuned.GRID)
    for r in rows:
        key = f"{r.schedule}/{r.lr:g}"
        figures |= {f"{key}.reach": r.reach, f"{key}.best": r.best, f"{key}.final": r.final}
    for schedule in ("constant", "one_cycle"):
        winner = tuned.best(rows, schedule)
        figures |= {
            f"tuned_{schedule}.lr": winner.lr,
            f"tuned_{schedule}.reach": winner.reach,
            f"tuned_{schedule}.final": winner.final,
            f"tuned_{schedule}.best": winner.best,
        }
    return figures


def _rate(name: str, path: Path) -> float:
    """The rate a run trained with: what "auto" chose, from measure's run name
    (``… auto → 0.0739, min_div_10)``), else the spec's ``optimizer.lr``."""
    if "→" in name:
        return float(name.split("→", 1)[1].split(",", 1)[0])
    import yaml

    return float(yaml.safe_load(path.read_text())["optimizer"]["lr"])


def grid_block(figures: dict[str, Value]) -> str:
    lines = [
        "| rate | constant: first epoch ≥ 95% | final | 1cycle peak: first epoch ≥ 95% | final |",
        "|---|---|---|---|---|",
    ]
    for lr in figures["grid"]:
        cells = [f"{lr:g}"]
        for schedule in ("constant", "one_cycle"):
            reach, final = figures[f"{schedule}/{lr:g}.reach"], figures[f"{schedule}/{lr:g}.final"]
            bold = lr == figures[f"tuned_{schedule}.lr"]
            text = "never" if reach is None else str(reach)
            cells += [text, f"**{final:.3f}**" if bold else f"{final:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def digits_adam() -> dict[str, Value]:
    path = ROOT / "examples" / "digits-adam.json"
    (run,) = train([path])
    (later,) = train([path], ["regularization.early_stopping.start_from_epoch=8"])
    (eight,) = train([path], ["training.epochs=8"])
    best = run.best_epoch or 0
    figures: dict[str, Value] = {
        "run.epochs": run.epochs,
        "run.stop_epoch": run.stop_epoch,
        "run.best_epoch": best,
        "run.best_value": run.best_value,
        "run.best_epoch_val_accuracy": at(run, best, "val_accuracy"),
        "run.final_val_accuracy": run.history[-1]["val_accuracy"],
        "run.planned_epochs": 20,
        "run.train_loss_1": at(run, 1, "train_loss"),
        "run.val_loss_1": at(run, 1, "val_loss"),
        "start8.epochs": later.epochs,
        "start8.stop_epoch": later.stop_epoch,
        "start8.best_epoch": later.best_epoch,
        "start8.final_val_accuracy": later.history[-1]["val_accuracy"],
        "start8.best_epoch_val_accuracy": at(later, later.best_epoch or 0, "val_accuracy"),
        "epochs8.best_epoch": eight.best_epoch,
    }
    shown = eight.best_epoch or 0  # the follow transcript shows the best epoch's line
    for metric in ("train_loss", "val_loss", "val_accuracy", "lr"):
        figures[f"epochs8.{metric}"] = at(eight, shown, metric)
    return figures


#: A range test's figures: a hundred steps of early training, which repeated to every
#: digit on the platforms we tried. A step index is an argmin/argmax of a noisy curve, so a
#: last-bit difference may move it by a step; each step is a ×1.15 (1e-5 → 10) or ×1.2
#: (1e-7 → 10) rise of the rate.
RANGE_STEP = Near(abs=1, why="one step either way: an argmin over a noisy smoothed curve")
RANGE_RATE = Near(rel=0.21, why="the rate one step away (×1.2 per step of the default test)")
RANGE_LOSS = Near(
    rel=0.01,
    why="a smoothed loss of the first 100 steps; 1% is far above "
    "the 1e-9 the platforms differed by",
)
EARLY = Near(
    abs=0.0084,
    why="three of 359 validation samples: these 10-epoch runs at "
    "moderate rates repeated to the digit across the platforms we tried",
)
EARLY_EPOCH = Near(abs=1, why="the epoch a run first passes 95%: one epoch either way")

SOURCES = [
    Source(
        name="lab",
        about="the range tests, 'auto' runs and tuned baselines of examples/lab on digits",
        command=".venv/bin/python scripts/docs_check.py regenerate lab "
        "(examples/lab/tuned.py prints the grid)",
        cheap=True,
        computes=lab,
        rules=(
            ("*.wall_s", TIMING),
            ("*.explanation", Platform(why="a sentence with the step's figures in it")),
            ("*.stop_text", Platform(why="a sentence with the step's figures in it")),
            ("*.stopped", Rule("exact")),
            ("*step*", RANGE_STEP),
            ("*steps_run", RANGE_STEP),
            ("*.best_loss", RANGE_LOSS),
            ("example.*", RANGE_RATE),
            ("default.*", RANGE_RATE),
            ("*.lr", RANGE_RATE),
            ("grid", Rule("exact")),
            ("*/0.3.*", CHAOTIC),
            ("*/1.*", CHAOTIC),
            ("*.reach", EARLY_EPOCH),
            ("*", EARLY),
        ),
        blocks={"grid": grid_block},
    ),
    Source(
        name="digits-adam",
        about="examples/digits-adam.json as the README submits it, and two variations",
        command=".venv/bin/python scripts/docs_check.py regenerate digits-adam (one run: "
        ".venv/bin/python examples/measure.py examples/digits-adam.json --history)",
        cheap=True,
        computes=digits_adam,
        rules=(
            ("run.planned_epochs", Rule("exact")),
            (
                "run.best_epoch_val_accuracy",
                Near(abs=0.0056, why="two of 360 validation samples, at epoch 4"),
            ),
            (
                "run.*epoch*",
                Near(
                    abs=1,
                    why="an early-stopping verdict compares val_loss values "
                    "a rounding difference can reorder: one epoch either way",
                ),
            ),
            (
                "run.best_value",
                Near(
                    abs=0.005,
                    why="val_loss at epoch 4; the same to 3 digits on the platforms we tried",
                ),
            ),
            ("run.*_1", Near(rel=0.01, why="the first epoch's losses")),
            ("*", CHAOTIC),
        ),
    ),
]


def landscape_speed() -> dict[str, Value]:
    """How long a 21×21 random-direction landscape takes, of an MLP and of a CNN on
    digits, and how close its centre is to the job's final val_loss."""
    import tempfile
    import time

    import torch

    from service.spec import JobSpec
    from workers.engine import ListReporter, landscape, train

    torch.set_num_threads(1)
    figures: dict[str, Value] = {}
    models = {
        "mlp": {"kind": "mlp", "hidden": [64]},
        "cnn": {"kind": "cnn", "channels": [16, 32]},
    }
    for key, model in models.items():
        base = {
            "dataset": {"name": "digits"},
            "model": model,
            "optimizer": {"name": "adam", "lr": 0.003},
            "training": {"epochs": 5, "batch_size": 64, "seed": 0},
        }
        with tempfile.TemporaryDirectory(prefix="descent-figures-") as tmp:
            path = Path(tmp) / "model.pt"
            reporter = ListReporter()
            spec = JobSpec.model_validate(base)
            data_dir = ROOT / ".descent" / "datasets"
            train(spec, reporter=reporter, datasets_dir=data_dir, model_path=path, device="cpu")
            state = torch.load(path, weights_only=True)
        job = JobSpec.model_validate(
            base | {"kind": "landscape", "landscape": {"job_id": "figures", "resolution": 21}}
        )
        started = time.perf_counter()
        result = landscape(
            job, final_state=state, trajectory=None, datasets_dir=data_dir, device="cpu"
        )
        figures[f"{key}.seconds"] = round(time.perf_counter() - started, 2)
        final = reporter.reports[-1][1]["val_loss"]
        figures[f"{key}.centre_minus_final"] = abs(result.centre["loss"] - final)
    return figures


SOURCES.append(
    Source(
        name="landscape-speed",
        about="a 21×21 landscape of an MLP and a CNN on digits (docs/lab.md)",
        command=".venv/bin/python scripts/docs_check.py regenerate landscape-speed",
        computes=landscape_speed,
        rules=(
            ("*.seconds", TIMING),
            ("*", Near(abs=1e-4, why="the documented bound on the centre's difference")),
        ),
    )
)
