"""Checkpoints: everything a run needs to continue exactly where an epoch ended.

The loop builds one ``Checkpoint`` per completed epoch and hands it to the reporter,
which decides where it goes (the worker writes it to the artifact store). Resuming from
it gives, on the same CPU, the very metrics and weights an uninterrupted run gives.

A checkpoint file holds only what ``torch.load(weights_only=True)`` accepts: tensors,
numbers, strings, lists, tuples, dicts and None. No pickled classes, so a checkpoint
can be loaded without trusting whoever wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: Bumped when the layout of ``state`` changes in a way an older loop cannot read.
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, or does not fit the job resuming from it."""


@dataclass
class Checkpoint:
    """The state of a run after ``epoch`` completed epochs (epochs are 1-based).

    ``metrics`` is that epoch's report. ``state`` holds, as the loop writes it:

    - ``model``, ``optimizer``: their ``state_dict``s (batch-norm statistics included);
    - ``schedule``: ``Schedule.state_dict()`` (reduce_on_plateau's counters; {} else);
    - ``early_stopping``: ``EarlyStopping.state_dict()`` (best value, epoch and
      that epoch's metrics, bad epochs, the best weights when they are to be restored);
    - ``rng``: ``rng_state()`` (global CPU, CUDA and shuffle generators);
    - ``stop_epoch``: the epoch early stopping ended the run at, else None;
    - ``elapsed_seconds``: seconds spent in ``train`` so far, over all attempts.

    Its tensors are CPU copies, so a checkpoint stays as it was while training goes on.
    """

    epoch: int
    metrics: dict[str, float]
    state: dict[str, Any]


def save_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    """Write ``ckpt`` to exactly ``path``, creating its parents.

    The caller picks the name: to replace a checkpoint atomically, save to a temporary
    name beside it and ``os.replace`` it over the old one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "epoch": ckpt.epoch,
        "metrics": ckpt.metrics,
        "state": ckpt.state,
    }
    torch.save(payload, path)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; its tensors land on the CPU.

    Raises ``CheckpointError`` naming the file when it is missing, truncated, not a
    checkpoint, holds anything but plain data, or was written in another format.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {path} does not exist") from exc
    except MemoryError:
        raise  # the worker's trouble, not the file's
    except Exception as exc:
        # What a bad file raises depends on where it breaks: a truncated zip gives
        # RuntimeError or OSError, an empty file EOFError, stray bytes KeyError, a pickle
        # of some class UnpicklingError (weights_only refuses it). All mean the same.
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(
            f"checkpoint {path} is unreadable or corrupt ({type(exc).__name__}: {first_line})"
        ) from exc
    if not isinstance(payload, dict) or not {"format", "epoch", "metrics", "state"} <= set(payload):
        raise CheckpointError(f"checkpoint {path} is not a Descent checkpoint")
    if payload["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {payload['format']!r}; this worker reads "
            f"format {FORMAT_VERSION} only"
        )
    epoch, metrics, state = payload["epoch"], payload["metrics"], payload["state"]
    if not isinstance(epoch, int) or epoch < 1:
        raise CheckpointError(f"checkpoint {path} has an invalid epoch {epoch!r}")
    if not isinstance(metrics, dict) or not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a Descent checkpoint")
    return Checkpoint(epoch=epoch, metrics=metrics, state=state)


def cpu_copy(value: Any) -> Any:
    """``value`` with every tensor copied to the CPU and every dict and list rebuilt.

    An optimizer's ``state_dict`` shares its tensors (and their dicts) with the live
    optimizer, which updates them in place at the next step; a checkpoint needs a copy.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cpu_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(cpu_copy(v) for v in value)
    return value


def rng_state(device: torch.device, shuffle: torch.Generator) -> dict[str, Any]:
    """The random streams a run draws from: torch's global CPU generator (weight init,
    dropout on the CPU), the device's CUDA generator (dropout on a GPU) and the
    generator that shuffles the batches."""
    return {
        "device": device.type,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "shuffle": shuffle.get_state(),
    }


def set_rng_state(
    state: dict[str, Any], device: torch.device, shuffle: torch.Generator, *, reseed: int
) -> bool:
    """Put the streams of ``rng_state`` back; False when they could not all be restored.

    A CPU generator's state means nothing to a CUDA one (and the reverse), so a run
    resumed on another kind of device reseeds the device's streams with ``reseed``: it
    goes on sensibly, though no longer bit for bit like an uninterrupted run.
    """
    torch.set_rng_state(state["torch"])
    if state["device"] == device.type:
        if device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], device)
        shuffle.set_state(state["shuffle"])
        return True
    if device.type == "cuda":
        torch.cuda.manual_seed_all(reseed)
    shuffle.manual_seed(reseed)
    return False
