"""Checkpoints and exact resume: a run stopped after any epoch and resumed from its
checkpoint ends exactly like a run that never stopped (on the CPU, timings aside)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from service.spec import TIMING_METRICS, JobSpec
from workers.engine import (
    Checkpoint,
    CheckpointError,
    ListReporter,
    StopTraining,
    TrainResult,
    load_checkpoint,
    save_checkpoint,
    train,
)
from workers.engine.checkpoint import rng_state, set_rng_state
from workers.engine.data import load_dataset

NO_DIR = Path("/nonexistent")
MOONS = {"name": "moons", "n_samples": 200, "noise": 0.3}

SPECS: dict[str, dict[str, Any]] = {
    # Adam's moments and step count, and one_cycle cycling β1 step by step.
    "adam_one_cycle": {
        "dataset": MOONS,
        "model": {"kind": "mlp", "hidden": [16, 16]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": {"name": "one_cycle"},
        "regularization": {"l2": 1e-3, "weight_decay": 0.01, "grad_clip": {"max_norm": 1.0}},
        "training": {"epochs": 4, "batch_size": 32},
    },
    # Momentum buffers, and reduce_on_plateau's counters: it halves the rate after
    # epochs 2, 4 and 7 of this run, each decision resting on the epochs before it.
    "sgd_plateau": {
        "dataset": MOONS,
        "model": {"kind": "mlp", "hidden": [16, 16]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"name": "reduce_on_plateau", "patience": 0, "factor": 0.5},
        "training": {"epochs": 8, "batch_size": 16},
    },
    # Dropout masks from the global generator, batch norm's running statistics.
    "dropout_batch_norm": {
        "dataset": MOONS,
        "model": {"kind": "mlp", "hidden": [16, 16], "dropout": 0.3, "batch_norm": True},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "training": {"epochs": 4, "batch_size": 32},
    },
    # Best epoch 5, stopped at 7: resumes before the best, at it, after it and at the stop.
    "early_stopping": {
        "dataset": MOONS,
        "model": {"kind": "mlp", "hidden": [64, 64]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "regularization": {"early_stopping": {"patience": 2, "restore_best_weights": True}},
        "training": {"epochs": 20, "batch_size": 16},
    },
    "cnn": {
        "dataset": {"name": "digits"},
        "model": {"kind": "cnn", "channels": [4, 8], "hidden": [16], "batch_norm": True},
        "training": {"epochs": 3},
    },
    # Standardised targets (the default) and dropout, under an epoch-stepped schedule.
    "scaled_regression": {
        "dataset": {"name": "diabetes"},
        "model": {"kind": "mlp", "hidden": [16], "dropout": 0.1},
        "schedule": {"name": "cosine"},
        "training": {"epochs": 4},
    },
}


def spec_of(name: str) -> JobSpec:
    return JobSpec.model_validate(SPECS[name])


def without_timings(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in m.items() if k not in TIMING_METRICS} for m in history]


class Run:
    """One call of ``train``: its result, its reports and the model it saved."""

    def __init__(self, spec: JobSpec, model_path: Path, **kwargs: Any) -> None:
        self.reporter = kwargs.pop("reporter", None) or ListReporter()
        self.model_path = model_path
        self.result = train(
            spec, reporter=self.reporter, datasets_dir=NO_DIR, model_path=model_path, **kwargs
        )

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        return torch.load(self.model_path, weights_only=True)


def through_file(ckpt: Checkpoint, path: Path) -> Checkpoint:
    """The checkpoint as another process would find it: saved, then loaded."""
    save_checkpoint(ckpt, path)
    return load_checkpoint(path)


def outcome(result: TrainResult) -> tuple[Any, ...]:
    final = without_timings([result.final_metrics])[0]
    return (
        result.status,
        result.epochs_completed,
        result.stop_epoch,
        result.best_epoch,
        result.best_value,
        final,
    )


def assert_resumed_exactly(straight: Run, resumed: Run, after: int) -> None:
    assert [e for e, _ in resumed.reporter.reports] == [e for e, _ in straight.reporter.reports][
        after:
    ]
    assert without_timings(resumed.reporter.history) == without_timings(
        straight.reporter.history[after:]
    )
    assert outcome(resumed.result) == outcome(straight.result)
    expected, got = straight.weights, resumed.weights
    assert set(got) == set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected), after


@pytest.fixture(scope="module")
def straight_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Each spec trained once without interruption: the reference for its resumes."""
    root = tmp_path_factory.mktemp("straight")
    return {name: Run(spec_of(name), root / f"{name}.pt") for name in SPECS}


@pytest.mark.parametrize("name", ["adam_one_cycle", "sgd_plateau", "early_stopping"])
def test_resuming_after_any_epoch_gives_the_uninterrupted_run(
    name: str, straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    straight = straight_runs[name]
    checkpoints = straight.reporter.checkpoints
    assert [c.epoch for c in checkpoints] == [e for e, _ in straight.reporter.reports]
    for ckpt in checkpoints:  # the last one included: nothing is left to train
        resumed = Run(
            spec_of(name),
            tmp_path / f"resumed-{ckpt.epoch}.pt",
            resume=through_file(ckpt, tmp_path / f"epoch-{ckpt.epoch}.ckpt"),
        )
        assert_resumed_exactly(straight, resumed, after=ckpt.epoch)


@pytest.mark.parametrize(("name", "after"), [("dropout_batch_norm", 2), ("cnn", 1)])
def test_resuming_mid_run_gives_the_uninterrupted_run(
    name: str, after: int, straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    straight = straight_runs[name]
    ckpt = through_file(straight.reporter.checkpoints[after - 1], tmp_path / "ckpt")
    resumed = Run(spec_of(name), tmp_path / "resumed.pt", resume=ckpt)
    assert_resumed_exactly(straight, resumed, after=after)


def test_scaled_regression_resumes_exactly_and_keeps_its_target_keys(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    straight = straight_runs["scaled_regression"]
    ckpt = through_file(straight.reporter.checkpoints[1], tmp_path / "ckpt")
    resumed = Run(spec_of("scaled_regression"), tmp_path / "resumed.pt", resume=ckpt)
    assert_resumed_exactly(straight, resumed, after=2)
    assert {"target_shift", "target_scale"} <= set(resumed.weights)


def test_the_cases_really_exercise_the_state_they_claim(straight_runs: dict[str, Run]) -> None:
    plateau = straight_runs["sgd_plateau"].reporter
    assert [m["lr"] for m in plateau.history] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125]
    assert plateau.checkpoints[2].state["schedule"]["current_lr"] == 0.05
    early = straight_runs["early_stopping"].result
    assert (early.best_epoch, early.stop_epoch) == (5, 7)
    best = straight_runs["early_stopping"].reporter.checkpoints[4]
    assert best.state["early_stopping"]["best_epoch"] == 5
    assert best.state["early_stopping"]["best_state"] is not None
    assert "beta1" in straight_runs["adam_one_cycle"].reporter.history[0]


def test_resuming_at_an_early_stop_finishes_at_once_with_the_best_weights(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    straight = straight_runs["early_stopping"]
    last = straight.reporter.checkpoints[-1]
    assert last.epoch == 7 and last.state["stop_epoch"] == 7
    resumed = Run(spec_of("early_stopping"), tmp_path / "m.pt", resume=last)
    assert resumed.reporter.reports == [] and resumed.reporter.stop_checks == 0
    assert outcome(resumed.result) == outcome(straight.result)
    best_weights = last.state["early_stopping"]["best_state"]
    assert all(torch.equal(resumed.weights[k], v) for k, v in best_weights.items())


def test_a_checkpoint_past_the_last_epoch_finishes_at_once(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    # A checkpoint beyond the job's last epoch (epoch 4 of a 3-epoch job): just finish.
    straight = straight_runs["adam_one_cycle"]
    shorter = JobSpec.model_validate(SPECS["adam_one_cycle"] | {"training": {"epochs": 3}})
    resumed = Run(shorter, tmp_path / "m.pt", resume=straight.reporter.checkpoints[-1])
    assert resumed.result.status == "succeeded" and resumed.result.epochs_completed == 4
    assert resumed.reporter.reports == []
    assert all(torch.equal(resumed.weights[k], v) for k, v in straight.weights.items())


def test_checkpoints_are_snapshots_and_resuming_leaves_them_untouched(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    straight = straight_runs["adam_one_cycle"]
    first, second = straight.reporter.checkpoints[:2]
    # Taken after epochs 1 and 2: training went on without changing the first one.
    assert not torch.equal(first.state["model"]["0.weight"], second.state["model"]["0.weight"])
    assert first.state["optimizer"]["state"][0]["step"].item() == 160 / 32
    assert first.metrics == straight.reporter.history[0]
    # The optimizer updates its state in place: resuming must not do that to the input.
    before = Checkpoint(first.epoch, dict(first.metrics), _clone(first.state))
    for attempt in range(2):
        resumed = Run(spec_of("adam_one_cycle"), tmp_path / f"m{attempt}.pt", resume=first)
        assert_resumed_exactly(straight, resumed, after=1)
    assert _equal(first.state, before.state)


def test_a_checkpoint_holds_plain_cpu_data_that_loads_with_weights_only(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    ckpt = straight_runs["early_stopping"].reporter.checkpoints[4]
    assert set(ckpt.state) == {
        "model",
        "optimizer",
        "schedule",
        "early_stopping",
        "rng",
        "stop_epoch",
        "elapsed_seconds",
    }
    assert set(ckpt.state["rng"]) == {"device", "torch", "cuda", "shuffle"}
    _assert_plain(ckpt.state)
    path = tmp_path / "deep" / "er" / "epoch.ckpt"
    save_checkpoint(ckpt, path)
    assert [p.name for p in path.parent.iterdir()] == ["epoch.ckpt"]  # exactly there
    raw = torch.load(path, weights_only=True)  # no custom classes: loads as plain data
    assert raw["epoch"] == 5 and raw["metrics"] == ckpt.metrics
    loaded = load_checkpoint(path)
    assert (loaded.epoch, loaded.metrics) == (ckpt.epoch, ckpt.metrics)
    assert _equal(loaded.state, ckpt.state)


def test_elapsed_seconds_accumulate_across_resumes(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    straight = straight_runs["sgd_plateau"]
    spent = [c.state["elapsed_seconds"] for c in straight.reporter.checkpoints]
    assert spent == sorted(spent) and spent[0] > 0
    # Pretend the first attempt took an hour: the resumed run counts on from there.
    ckpt = straight.reporter.checkpoints[2]
    hour = replace(ckpt, state=ckpt.state | {"elapsed_seconds": 3600.0})
    resumed = Run(spec_of("sgd_plateau"), tmp_path / "m.pt", resume=hour)
    assert all(c.state["elapsed_seconds"] > 3600 for c in resumed.reporter.checkpoints)


def test_time_limit_ends_the_run_as_timed_out(tmp_path: Path) -> None:
    run = Run(spec_of("adam_one_cycle"), tmp_path / "m.pt", time_limit_seconds=0)
    assert run.result.status == "timed_out"
    assert run.result.reason == "exceeded the time limit of 0 s after 0 epoch(s)"
    assert run.reporter.reports == [] and not (tmp_path / "m.pt").exists()


def test_time_limit_counts_the_time_of_earlier_attempts(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    ckpt = straight_runs["adam_one_cycle"].reporter.checkpoints[1]
    spent = replace(ckpt, state=ckpt.state | {"elapsed_seconds": 100.0})
    run = Run(spec_of("adam_one_cycle"), tmp_path / "m.pt", resume=spent, time_limit_seconds=99.5)
    assert run.result.status == "timed_out"
    assert run.result.reason == "exceeded the time limit of 99.5 s after 2 epoch(s)"
    assert run.result.epochs_completed == 2 and run.result.final_metrics == ckpt.metrics
    assert run.reporter.reports == [] and not (tmp_path / "m.pt").exists()
    # A limit the run stays within changes nothing.
    within = Run(spec_of("adam_one_cycle"), tmp_path / "w.pt", resume=ckpt, time_limit_seconds=1e6)
    assert_resumed_exactly(straight_runs["adam_one_cycle"], within, after=2)


class StoppingReporter(ListReporter):
    """Says its lease was taken over at ``epoch``, from report or from should_stop."""

    def __init__(self, epoch: int, where: str) -> None:
        super().__init__()
        self.epoch, self.where = epoch, where

    def report(self, epoch: int, metrics: dict[str, float], checkpoint: Checkpoint) -> None:
        super().report(epoch, metrics, checkpoint)
        if self.where == "report" and epoch == self.epoch:
            raise StopTraining("lease taken over by attempt 2")

    def should_stop(self) -> bool:
        if self.where == "should_stop" and len(self.reports) == self.epoch:
            raise StopTraining("lease taken over by attempt 2")
        return super().should_stop()


@pytest.mark.parametrize("where", ["report", "should_stop"])
def test_stop_training_from_the_reporter_propagates(where: str, tmp_path: Path) -> None:
    reporter = StoppingReporter(2, where)
    with pytest.raises(StopTraining, match="lease taken over by attempt 2") as raised:
        train(
            spec_of("adam_one_cycle"),
            reporter=reporter,
            datasets_dir=NO_DIR,
            model_path=tmp_path / "m.pt",
        )
    assert raised.value.reason == "lease taken over by attempt 2"
    assert [e for e, _ in reporter.reports] == [1, 2]
    assert not (tmp_path / "m.pt").exists()


def test_a_checkpoint_of_another_model_is_refused(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    ckpt = straight_runs["adam_one_cycle"].reporter.checkpoints[0]
    wider = JobSpec.model_validate(SPECS["adam_one_cycle"] | {"model": {"kind": "mlp"}})
    with pytest.raises(CheckpointError, match="checkpoint of epoch 1 does not fit this job"):
        Run(wider, tmp_path / "m.pt", resume=ckpt)
    broken = replace(ckpt, state={k: v for k, v in ckpt.state.items() if k != "rng"})
    with pytest.raises(CheckpointError, match="does not fit this job.*KeyError"):
        Run(spec_of("adam_one_cycle"), tmp_path / "m.pt", resume=broken)


def _bad_files(good: bytes, tmp_path: Path) -> dict[str, bytes]:
    pickled = tmp_path / "pickled"
    torch.save({"epoch": 1, "state": np.ones(3)}, pickled)  # weights_only refuses numpy
    other = tmp_path / "other"
    torch.save({"model": {}}, other)
    old = tmp_path / "old"
    torch.save({"format": 0, "epoch": 1, "metrics": {}, "state": {}}, old)
    return {
        "truncated": good[: len(good) // 2],
        "cut short": good[:-10],
        "empty": b"",
        "stray bytes": b"not a checkpoint at all\n" * 8,
        "a pickled numpy array": pickled.read_bytes(),
        "not a checkpoint": other.read_bytes(),
        "another format": old.read_bytes(),
    }


def test_corrupt_or_foreign_files_raise_checkpoint_error(
    straight_runs: dict[str, Run], tmp_path: Path
) -> None:
    good = tmp_path / "good.ckpt"
    save_checkpoint(straight_runs["adam_one_cycle"].reporter.checkpoints[0], good)
    for case, content in _bad_files(good.read_bytes(), tmp_path).items():
        bad = tmp_path / "bad.ckpt"
        bad.write_bytes(content)
        with pytest.raises(CheckpointError, match=f"checkpoint {bad} ") as raised:
            load_checkpoint(bad)
        assert "Traceback" not in str(raised.value), case
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.parametrize(
    "dataset",
    [
        MOONS,
        {"name": "digits", "split_seed": 3},
        {"name": "diabetes"},
        {"name": "linear_regression", "n_samples": 300},
        {"name": "spirals", "n_samples": 150},
    ],
)
def test_load_dataset_recomputes_the_same_split_and_scaling(dataset: dict[str, Any]) -> None:
    """Resuming does not store the data: it relies on load_dataset being a pure function
    of the spec, whatever the global random state (which training has moved on)."""
    spec = JobSpec.model_validate({"dataset": dataset}).dataset
    cpu = torch.device("cpu")
    first = load_dataset(spec, datasets_dir=NO_DIR, device=cpu)
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    torch.rand(10), np.random.rand(10), random.random()
    second = load_dataset(spec, datasets_dir=NO_DIR, device=cpu)
    for name in ("x_train", "y_train", "x_val", "y_val"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert (first.target_shift, first.target_scale) == (second.target_shift, second.target_scale)


def test_rng_state_on_another_kind_of_device_reseeds() -> None:
    cpu = torch.device("cpu")
    shuffle = torch.Generator().manual_seed(0)
    state = rng_state(cpu, shuffle)
    assert set_rng_state(state, cpu, shuffle, reseed=7)
    foreign = state | {"device": "cuda", "shuffle": torch.zeros(16, dtype=torch.uint8)}
    assert not set_rng_state(foreign, cpu, shuffle, reseed=7)
    expected = torch.Generator().manual_seed(7)
    assert torch.equal(
        torch.randperm(50, generator=shuffle), torch.randperm(50, generator=expected)
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resumes_on_cuda(tmp_path: Path) -> None:
    spec = JobSpec.model_validate(
        SPECS["dropout_batch_norm"] | {"training": {"epochs": 4, "device": "cuda"}}
    )
    straight = Run(spec, tmp_path / "straight.pt")
    ckpt = through_file(straight.reporter.checkpoints[1], tmp_path / "ckpt")
    assert ckpt.state["rng"]["device"] == "cuda" and ckpt.state["rng"]["cuda"] is not None
    _assert_plain(ckpt.state)
    resumed = Run(spec, tmp_path / "resumed.pt", resume=ckpt)
    assert [e for e, _ in resumed.reporter.reports] == [3, 4]
    for got, expected in zip(
        without_timings(resumed.reporter.history),
        without_timings(straight.reporter.history[2:]),
        strict=True,
    ):
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)


# --------------------------------------------------------------- helpers on nested state


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_clone(v) for v in value)
    return value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return a == b


def _assert_plain(value: Any, where: str = "state") -> None:
    """Only what torch.load(weights_only=True) reads back, with tensors on the CPU."""
    if isinstance(value, torch.Tensor):
        assert value.device.type == "cpu", where
    elif isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str | int), where
            _assert_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _assert_plain(v, f"{where}[{i}]")
    else:
        assert value is None or isinstance(value, bool | int | float | str), (where, value)
