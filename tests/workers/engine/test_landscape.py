"""Loss landscapes of jobs trained in-process: the centre is the job's final val_loss,
the 1-D line ends at the initial and final weights, directions are filter-normalised,
PCA of a saved trajectory puts the final epoch at (0, 0); and the trajectory itself."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from service.spec import JobSpec
from workers.engine import ListReporter, TrainResult, train
from workers.engine.bundle import TARGET_KEYS
from workers.engine.data import load_dataset
from workers.engine.landscape import (
    LandscapeResult,
    filter_normalized,
    landscape,
    pca_directions,
)
from workers.engine.loop import initial_model, load_trajectory
from workers.engine.metrics import evaluate

NO_DIR = Path("/nonexistent")
JOB_ID = "0b9a5c4e-1111-4222-8333-944455556666"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Trained:
    base: dict[str, Any]  # the job's spec, as JSON
    result: TrainResult
    reporter: ListReporter
    final_state: dict[str, torch.Tensor]  # what the loop saved
    trajectory: list[tuple[int, dict[str, torch.Tensor]]]

    def landscape_spec(self, **settings: Any) -> JobSpec:
        return JobSpec.model_validate(
            self.base | {"kind": "landscape", "landscape": {"job_id": JOB_ID} | settings}
        )

    def run(self, reporter: ListReporter | None = None, **settings: Any) -> LandscapeResult:
        return landscape(
            self.landscape_spec(**settings),
            final_state=self.final_state,
            trajectory=self.trajectory,
            datasets_dir=NO_DIR,
            reporter=reporter,
        )


def train_job(tmp: Path, **fields: Any) -> Trained:
    base: dict[str, Any] = {
        "dataset": {"name": "digits"},
        "model": {"kind": "mlp", "hidden": [32]},
        "optimizer": {"name": "adam", "lr": 0.003},
        "training": {"epochs": 4, "batch_size": 64, "save_trajectory": True},
    } | fields
    reporter = ListReporter()
    result = train(
        JobSpec.model_validate(base),
        reporter=reporter,
        datasets_dir=NO_DIR,
        model_path=tmp / "model.pt",
        trajectory_dir=tmp / "trajectory",
    )
    assert result.status == "succeeded"
    final_state = torch.load(tmp / "model.pt", map_location="cpu", weights_only=True)
    return Trained(base, result, reporter, final_state, load_trajectory(tmp / "trajectory"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_job(tmp_path_factory.mktemp("digits"))
    finally:
        torch.set_num_threads(before)


SMALL = {"resolution": 7, "interpolation": {"points": 5, "alpha_min": 0.0, "alpha_max": 1.0}}


# -- the trajectory ---------------------------------------------------------------------


def test_the_trajectory_holds_every_epoch_and_starts_from_the_rebuilt_initial_weights(
    digits: Trained,
) -> None:
    assert [e for e, _ in digits.trajectory] == [0, 1, 2, 3, 4]
    last = digits.trajectory[-1][1]
    assert last.keys() == digits.final_state.keys()
    assert all(torch.equal(last[k], digits.final_state[k]) for k in last)
    spec = JobSpec.model_validate(digits.base)
    data = load_dataset(spec.dataset, datasets_dir=NO_DIR, device=torch.device("cpu"))
    model, _ = initial_model(spec, data, torch.device("cpu"))
    first = digits.trajectory[0][1]
    assert all(torch.equal(v, first[k]) for k, v in model.state_dict().items())
    assert not torch.equal(first["0.weight"], last["0.weight"])


def test_no_trajectory_unless_the_spec_asks(tmp_path: Path) -> None:
    spec = JobSpec.model_validate(
        {"dataset": {"name": "moons", "n_samples": 100}, "training": {"epochs": 2}}
    )
    train(spec, reporter=ListReporter(), datasets_dir=NO_DIR, trajectory_dir=tmp_path / "t")
    assert load_trajectory(tmp_path / "t") == []


def test_a_resumed_run_writes_the_same_trajectory(tmp_path: Path) -> None:
    spec = JobSpec.model_validate(
        {
            "dataset": {"name": "moons", "n_samples": 200},
            "model": {"kind": "mlp", "hidden": [8], "dropout": 0.2},
            "training": {"epochs": 4, "save_trajectory": True},
        }
    )
    straight = tmp_path / "straight"
    train(spec, reporter=ListReporter(), datasets_dir=NO_DIR, trajectory_dir=straight)
    broken = tmp_path / "broken"
    first = ListReporter(stop_after_epoch=2)
    assert train(spec, reporter=first, datasets_dir=NO_DIR, trajectory_dir=broken).status == (
        "cancelled"
    )
    checkpoint = first.checkpoints[-1]
    assert checkpoint is not None
    train(
        spec, reporter=ListReporter(), datasets_dir=NO_DIR, trajectory_dir=broken, resume=checkpoint
    )
    a, b = load_trajectory(straight), load_trajectory(broken)
    assert [e for e, _ in a] == [e for e, _ in b] == [0, 1, 2, 3, 4]
    for (_, sa), (_, sb) in zip(a, b, strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not list(broken.glob("*.tmp"))


# -- the centre and the line ----------------------------------------------------------


def test_the_centre_is_the_jobs_final_val_loss(digits: Trained) -> None:
    reporter = ListReporter()
    result = digits.run(reporter, **SMALL)
    final = digits.reporter.history[-1]
    assert result.status == "succeeded"
    assert abs(result.centre["loss"] - final["val_loss"]) <= 1e-4
    assert abs(result.centre["quality"] - final["val_accuracy"]) <= 1e-9
    grid = result.surface["loss"]
    assert grid[3][3] == result.centre["loss"]  # the middle of the grid: the final weights
    assert result.metrics == {"loss": "val_loss", "quality": "val_accuracy"}
    assert result.n_samples == 359  # a fifth of digits' 1797 samples
    # One report per row, without a checkpoint.
    assert [e for e, _ in reporter.reports] == list(range(1, 8))
    assert reporter.checkpoints == [None] * 7
    for i, (_, row) in enumerate(reporter.reports):
        assert row["row"] == i + 1
        assert row["loss_min"] == min(grid[i]) and row["loss_max"] == max(grid[i])
    assert min(min(r) for r in grid) < max(max(r) for r in grid)


def test_on_the_training_split_it_is_the_same_evaluation_there(digits: Trained) -> None:
    result = digits.run(split="train", **SMALL)
    spec = JobSpec.model_validate(digits.base)
    data = load_dataset(spec.dataset, datasets_dir=NO_DIR, device=torch.device("cpu"))
    model, _ = initial_model(spec, data, torch.device("cpu"))
    model.load_state_dict(digits.final_state)
    expected = evaluate(model, data.x_train, data.y_train, data.task)
    assert result.centre["loss"] == expected["val_loss"]
    assert result.metrics == {"loss": "train_loss", "quality": "train_accuracy"}
    assert result.n_samples == len(data.y_train)


def test_the_line_runs_from_the_initial_to_the_final_weights(digits: Trained) -> None:
    result = digits.run(**SMALL)
    line = result.interpolation
    assert line["alpha"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    initial_loss = digits.reporter.history[0]  # after epoch 1: not the initial weights
    spec = JobSpec.model_validate(digits.base)
    data = load_dataset(spec.dataset, datasets_dir=NO_DIR, device=torch.device("cpu"))
    model, _ = initial_model(spec, data, torch.device("cpu"))
    expected = evaluate(model, data.x_val, data.y_val, data.task)
    assert line["loss"][0] == line["initial"]["loss"] == expected["val_loss"]
    assert line["quality"][0] == expected["val_accuracy"]
    assert line["loss"][-1] == line["final"]["loss"] == result.centre["loss"]
    assert line["loss"][0] > initial_loss["val_loss"] > line["loss"][-1]


def test_the_callers_weights_are_left_alone(digits: Trained) -> None:
    before = {k: v.clone() for k, v in digits.final_state.items()}
    digits.run(**SMALL)
    assert all(torch.equal(before[k], digits.final_state[k]) for k in before)


# -- directions -------------------------------------------------------------------------


def test_directions_are_filter_normalised_and_biases_get_none() -> None:
    torch.manual_seed(3)
    weights = [
        torch.randn(16, 8),  # a linear layer: a filter is a row
        torch.randn(16),  # its bias
        torch.randn(6, 3, 3, 3),  # a convolution: a filter is an output channel
        torch.ones(6),  # batch norm's scale
    ]
    weights[0][5] = 0.0  # a dead unit: its direction is zero too
    d = filter_normalized(weights, torch.Generator().manual_seed(0))
    assert [t.shape for t in d] == [t.shape for t in weights]
    for w, t in ((weights[0], d[0]), (weights[2], d[2])):
        w_norms = w.reshape(len(w), -1).norm(dim=1)
        d_norms = t.reshape(len(t), -1).norm(dim=1)
        assert torch.allclose(d_norms, w_norms, rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(d[0][5]) == 0
    assert torch.count_nonzero(d[1]) == 0 and torch.count_nonzero(d[3]) == 0
    again = filter_normalized(weights, torch.Generator().manual_seed(0))
    other = filter_normalized(weights, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], d[0]) and not torch.equal(other[0], d[0])


def test_the_seed_picks_the_directions(digits: Trained) -> None:
    a = digits.run(**SMALL)
    b = digits.run(**SMALL)
    c = digits.run(seed=1, **SMALL)
    assert a.surface["loss"] == b.surface["loss"] != c.surface["loss"]
    assert a.surface["x"] == [-1.0, -2 / 3, -1 / 3, 0.0, 1 / 3, 2 / 3, 1.0]


def test_pca_of_a_known_trajectory() -> None:
    # Five points in the plane of the first two axes of R^6, uncorrelated there and
    # spread more along the first; the last one is the final weights.
    final = [torch.zeros(2, 2), torch.zeros(2)]
    plane = [(-4.0, -1.0), (-4.0, 1.0), (-2.0, -1.0), (-2.0, 1.0), (0.0, 0.0)]
    snapshots = [[torch.tensor([[x, y], [0.0, 0.0]]), torch.zeros(2)] for x, y in plane]
    pca = pca_directions(final, snapshots)
    v1, v2 = pca.directions
    assert torch.allclose(v1[0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]), atol=1e-6)
    assert torch.allclose(v2[0], torch.tensor([[0.0, 1.0], [0.0, 0.0]]), atol=1e-6)
    assert torch.count_nonzero(v1[1]) == torch.count_nonzero(v2[1]) == 0
    # Centred sums of squares: x (mean -2.4) 11.2, y (mean 0) 4.
    assert pca.explained_variance == pytest.approx((11.2 / 15.2, 4 / 15.2))
    # The coordinates are the points themselves (signs: the first at x, y ≤ 0).
    flat = [c for point in pca.coordinates for c in point]
    assert flat == pytest.approx([c for point in plane for c in point], abs=1e-9)
    assert pca.coordinates[-1] == (0.0, 0.0)


def test_pca_needs_a_trajectory_that_moves_in_two_directions() -> None:
    final = [torch.zeros(3)]
    with pytest.raises(ValueError, match="at least 3 saved epochs"):
        pca_directions(final, [[torch.ones(3)], [torch.zeros(3)]])
    line = [[torch.full((3,), float(t))] for t in range(4)]
    with pytest.raises(ValueError, match="at least two directions"):
        pca_directions(final, line)


def test_pca_projects_the_jobs_trajectory(digits: Trained) -> None:
    result = digits.run(directions="pca", **SMALL)
    assert result.trajectory is not None and result.explained_variance is not None
    path = result.trajectory
    assert path["epochs"] == [0, 1, 2, 3, 4]
    assert (path["x"][-1], path["y"][-1]) == (0.0, 0.0)  # the final epoch is the centre
    assert path["x"][0] < 0 and path["y"][0] <= 0
    shares = result.explained_variance
    assert all(0 < s <= 1 for s in shares) and sum(shares) <= 1 + 1e-12
    assert shares[0] >= shares[1]
    assert path["loss"][-1] == result.centre["loss"]
    assert path["loss"][0] == result.interpolation["initial"]["loss"]
    # The grid covers the whole path, symmetric about the final weights.
    xs, ys = result.surface["x"], result.surface["y"]
    assert xs[3] == ys[3] == 0.0 and xs[0] == -xs[-1]
    assert max(abs(x) for x in path["x"]) < xs[-1] and max(abs(y) for y in path["y"]) < ys[-1]
    assert result.surface["loss"][3][3] == result.centre["loss"]


def test_pca_without_a_trajectory_says_how_to_get_one(digits: Trained) -> None:
    spec = digits.landscape_spec(directions="pca", **SMALL)
    with pytest.raises(ValueError, match="training.save_trajectory true"):
        landscape(spec, final_state=digits.final_state, trajectory=None, datasets_dir=NO_DIR)


# -- other models and tasks -----------------------------------------------------------


def test_a_batch_norm_model_keeps_its_running_statistics(tmp_path: Path) -> None:
    trained = train_job(
        tmp_path,
        dataset={"name": "moons", "n_samples": 300},
        model={"kind": "mlp", "hidden": [16, 16], "batch_norm": True, "dropout": 0.2},
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
    )
    result = trained.run(directions="pca", **SMALL)
    final = trained.reporter.history[-1]
    assert abs(result.centre["loss"] - final["val_loss"]) <= 1e-4
    assert result.interpolation["final"]["loss"] == result.centre["loss"]
    assert result.trajectory is not None and result.trajectory["loss"][-1] == result.centre["loss"]
    assert all(math.isfinite(v) for row in result.surface["loss"] for v in row)


def test_a_regression_job_uses_its_scaled_targets(tmp_path: Path) -> None:
    trained = train_job(
        tmp_path,
        dataset={"name": "diabetes"},
        model={"kind": "mlp", "hidden": [16]},
        optimizer={"name": "adam", "lr": 0.01},
    )
    assert set(TARGET_KEYS) <= set(trained.final_state)
    result = trained.run(**SMALL)
    final = trained.reporter.history[-1]
    assert abs(result.centre["loss"] - final["val_loss"]) <= 1e-4
    assert abs(result.centre["quality"] - final["val_r2"]) <= 1e-9
    assert result.metrics == {"loss": "val_loss", "quality": "val_r2"}
    json.dumps(result.record().model_dump(mode="json"), allow_nan=False)


def test_a_cnn_job(tmp_path: Path) -> None:
    trained = train_job(
        tmp_path,
        model={"kind": "cnn", "channels": [4], "hidden": [16]},
        training={"epochs": 2, "batch_size": 128},
    )
    result = trained.run(resolution=3, interpolation={"points": 3})
    assert abs(result.centre["loss"] - trained.reporter.history[-1]["val_loss"]) <= 1e-4


def test_weights_of_another_model_are_refused(digits: Trained) -> None:
    spec = digits.landscape_spec(**SMALL)
    other = {"0.weight": torch.zeros(3, 3)}
    with pytest.raises(ValueError, match="does not fit this job's model"):
        landscape(spec, final_state=other, trajectory=None, datasets_dir=NO_DIR)


# -- cancelling and the JSON --------------------------------------------------------------


def test_cancelling_keeps_the_rows_done(digits: Trained) -> None:
    reporter = ListReporter(stop_after_epoch=3)
    result = digits.run(reporter, **SMALL)
    assert result.status == "cancelled"
    assert result.reason == "cancelled by request after 3 of 7 rows"
    payload = result.record().model_dump(mode="json")
    rows = payload["surface"]["loss"]
    assert all(v is not None for row in rows[:3] for v in row)
    assert all(v is None for row in rows[3:] for v in row)
    assert len(reporter.reports) == 3


def test_the_result_json_is_plain_with_nulls_for_non_finite_losses(digits: Trained) -> None:
    result = digits.run(directions="pca", **SMALL)
    result.surface["loss"][0][0] = math.inf
    result.interpolation["loss"][1] = math.nan
    payload = result.record().model_dump(mode="json")
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text) == payload
    assert payload["surface"]["loss"][0][0] is None and payload["interpolation"]["loss"][1] is None
    assert payload["kind"] == "landscape" and payload["source_job"] == JOB_ID
    assert payload["directions"]["kind"] == "pca" and payload["directions"]["epochs"] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert set(payload) >= {
        "split",
        "metrics",
        "centre",
        "interpolation",
        "surface",
        "explained_variance",
        "trajectory",
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_landscape_is_the_same(digits: Trained) -> None:
    spec = digits.landscape_spec(directions="pca", **SMALL)
    kwargs: dict[str, Any] = {
        "final_state": digits.final_state,
        "trajectory": digits.trajectory,
        "datasets_dir": NO_DIR,
    }
    gpu = landscape(spec, device="cuda", **kwargs)
    cpu = landscape(spec, device="cpu", **kwargs)
    assert gpu.device.startswith("cuda")
    assert abs(gpu.centre["loss"] - digits.reporter.history[-1]["val_loss"]) <= 1e-4
    flat = [v for row in gpu.surface["loss"] for v in row]
    assert flat == pytest.approx([v for row in cpu.surface["loss"] for v in row], rel=1e-4)
