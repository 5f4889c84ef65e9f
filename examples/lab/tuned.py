"""1cycle against *tuned* constant rates on digits, as Smith & Topin compare them.

    .venv/bin/python examples/lab/tuned.py

The lab's one-cycle-auto.yaml (1cycle, max_lr from a range test) beats the hand-picked
constant rate of constant.yaml, 0.01, by five epochs to 95% validation accuracy. That
rate is seven times below 1cycle's peak, though: a fair baseline is the best constant
rate of a grid. This trains constant.yaml and one-cycle-auto.yaml at each rate of a
half-decade grid (0.001 … 1, SGD with momentum 0.9, 10 epochs, the same seed), picks
each schedule's best rate by its final val_accuracy, and prints, for every run, the
first epoch at 95%, the best and the final val_accuracy. In-process, one torch thread,
through examples/measure.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import measure  # noqa: E402 - examples/measure.py, after the path is set

#: Half a decade apart, from well below the range test's valley to past its minimum.
GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
TARGET = 0.95


@dataclass(frozen=True)
class Row:
    schedule: str  # "constant" or "one_cycle"
    lr: float  # the constant rate, or 1cycle's peak
    reach: int | None  # the first epoch with val_accuracy >= TARGET
    best: float
    final: float


def row(schedule: str, lr: float, run: measure.Run) -> Row:
    accuracy = [m["val_accuracy"] for m in run.history]
    reach = measure.reached(run.history, "val_accuracy", TARGET)
    return Row(schedule, lr, reach, max(accuracy), accuracy[-1])


def grid(rates: tuple[float, ...] = GRID) -> list[Row]:
    """Each schedule at each rate of ``rates``, constant ones first."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for lr in rates:
        run = measure.measure(
            HERE / "constant.yaml", [f"optimizer.lr={lr}"], checkpoints=False, device="cpu"
        )
        rows.append(row("constant", lr, run))
    for lr in rates:
        run = measure.measure(
            HERE / "one-cycle-auto.yaml", [f"schedule.max_lr={lr}"], checkpoints=False, device="cpu"
        )
        rows.append(row("one_cycle", lr, run))
    return rows


def best(rows: list[Row], schedule: str) -> Row:
    """The schedule's best rate: highest final val_accuracy, the lower rate on a tie."""
    mine = [r for r in rows if r.schedule == schedule]
    return max(mine, key=lambda r: (r.final, -r.lr))


def main() -> int:
    rows = grid()
    winners = {best(rows, "constant"), best(rows, "one_cycle")}
    print(f"| schedule | rate | first epoch val_accuracy ≥ {TARGET} | best | final |")
    print("|---|---|---|---|---|")
    for r in rows:
        mark = " (best)" if r in winners else ""
        reach = "never" if r.reach is None else str(r.reach)
        print(f"| {r.schedule}{mark} | {r.lr:g} | {reach} | {r.best:.3f} | {r.final:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
