"""The memory estimate (service.spec.memory) and the caps check_job applies with it."""

from __future__ import annotations

from typing import Any

import pytest

from service.spec import (
    DatasetShape,
    JobSpec,
    Limits,
    check_job,
    estimate_memory,
    estimate_memory_bytes,
)
from service.spec.memory import parameter_copies

WIDE = DatasetShape(10_000, 1000, "classification", 10)
LIMITS = Limits(max_epochs=1000, max_parameters=10**8, max_synthetic_samples=10**6)


def spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"dataset": {"name": "digits"}, **fields})


def mlp(hidden: list[int], batch_size: int | str = 32, **fields: Any) -> JobSpec:
    return spec(
        model={"kind": "mlp", "hidden": hidden},
        training={"batch_size": batch_size},
        **fields,
    )


@pytest.mark.parametrize(
    ("optimizer", "slots"),
    [
        ({"name": "sgd"}, 0),
        ({"name": "sgd", "momentum": 0.9}, 1),
        ({"name": "adagrad"}, 1),
        ({"name": "rmsprop"}, 1),
        ({"name": "rmsprop", "centered": True}, 2),
        ({"name": "rmsprop", "centered": True, "momentum": 0.9}, 3),
        ({"name": "adam"}, 2),
        ({"name": "adam", "amsgrad": True}, 3),
        ({"name": "adamw"}, 2),
        ({"name": "adamw", "amsgrad": True}, 3),
        ({"name": "nadam"}, 2),
        ({"name": "adamax"}, 2),
    ],
)
def test_optimizer_state_is_counted_per_parameter(optimizer: dict, slots: int) -> None:
    job = mlp([256], optimizer=optimizer)
    assert job.optimizer.state_slots == slots
    assert parameter_copies(job) == 2 + slots  # weights, gradients, state
    n_params = job.model.count_parameters(WIDE)
    assert estimate_memory(job, WIDE).parameters == n_params * (2 + slots) * 4


def test_early_stopping_that_restores_weights_keeps_a_copy() -> None:
    plain = mlp([256], optimizer={"name": "sgd"})
    keeps = mlp([256], optimizer={"name": "sgd"}, regularization={"early_stopping": {}})
    restore_off = mlp(
        [256],
        optimizer={"name": "sgd"},
        regularization={"early_stopping": {"restore_best_weights": False}},
    )
    assert parameter_copies(plain) == parameter_copies(restore_off) == 2
    assert parameter_copies(keeps) == 3


def test_monotone_in_width_depth_and_batch() -> None:
    by_width = [estimate_memory_bytes(mlp([w]), WIDE) for w in (16, 64, 256, 1024, 4096)]
    assert by_width == sorted(by_width) and len(set(by_width)) == len(by_width)
    by_depth = [estimate_memory_bytes(mlp([128] * d), WIDE) for d in (1, 2, 4, 8)]
    assert by_depth == sorted(by_depth) and len(set(by_depth)) == len(by_depth)
    by_batch = [estimate_memory_bytes(mlp([128], b), WIDE) for b in (1, 32, 512, 4096)]
    assert by_batch == sorted(by_batch) and len(set(by_batch)) == len(by_batch)
    full = estimate_memory_bytes(mlp([128], "full"), WIDE)
    assert full > by_batch[-1]  # the whole training split (8,000 rows) at once


def test_a_20m_parameter_adam_model() -> None:
    job = mlp([4000, 4000], optimizer={"name": "adam"})
    n_params = job.model.count_parameters(WIDE)
    assert 20_000_000 <= n_params <= 20_100_000
    data = 10_000 * (1000 * 4 + 8)  # float32 features, int64 labels
    parts = estimate_memory(job, WIDE)
    assert parts.parameters == n_params * 4 * 4  # weights, gradients, m and v
    assert parts.data == data
    # One batch of 32 through 1000 → 4000 → 4000 → 10, forward and backward: small.
    assert parts.activations == 2 * 32 * (1000 + 2 * 4000 + 2 * 4000 + 10) * 4
    total = estimate_memory_bytes(job, WIDE)
    assert total == parts.total
    assert total == pytest.approx(n_params * 16 + data, rel=0.02)


def test_layers_that_add_activations() -> None:
    base = DatasetShape(1000, 20, "regression")
    plain = spec(model={"kind": "mlp", "hidden": [100]}).model
    assert plain.activation_values(base) == 20 + 2 * 100 + 1  # input, linear, act, output
    bn = spec(model={"kind": "mlp", "hidden": [100], "batch_norm": True}).model
    drop = spec(model={"kind": "mlp", "hidden": [100], "dropout": 0.5}).model
    assert bn.activation_values(base) == drop.activation_values(base) == 20 + 3 * 100 + 1
    linear = spec(model={"kind": "linear"}).model
    assert linear.activation_values(base) == 21


def test_cnn_counts_its_feature_maps() -> None:
    job = spec(model={"kind": "cnn"})  # digits 1×8×8, channels [16, 32], hidden [64]
    shape = job.dataset.known_shape()
    # input 64; block 1: conv + act 2·16·8·8, pool 16·4·4; block 2: 2·32·4·4, pool
    # 32·2·2; dense: 2·64 and the 10 outputs.
    expected = 64 + 2 * 1024 + 256 + 2 * 512 + 128 + 2 * 64 + 10
    assert job.model.activation_values(shape) == expected
    assert estimate_memory(job, shape).activations == 2 * 32 * expected * 4
    wider = spec(model={"kind": "cnn", "channels": [64, 128]})
    assert estimate_memory_bytes(wider, shape) > estimate_memory_bytes(job, shape)
    # 1×1 images never pool: every block keeps its full map.
    tiny = spec(
        dataset={"name": "blobs", "n_features": 1},
        model={"kind": "cnn", "channels": [4, 4], "input_shape": [1, 1, 1], "hidden": []},
    )
    assert tiny.model.activation_values(tiny.dataset.known_shape()) == 1 + 2 * 4 + 2 * 4 + 3


def test_check_job_refuses_a_job_above_the_memory_cap() -> None:
    job = mlp([4000, 4000], optimizer={"name": "adam"})
    needed = estimate_memory_bytes(job, WIDE)
    at_cap = Limits(**{**LIMITS.__dict__, "max_memory_bytes": needed})
    assert check_job(job, WIDE, at_cap) == []
    below = Limits(**{**LIMITS.__dict__, "max_memory_bytes": 256 * 2**20})
    (error,) = check_job(job, WIDE, below)
    assert error.field == "model"
    assert f"{needed / 2**20:,.0f} MiB" in error.message
    assert "cap of 256 MiB" in error.message
    assert "batch_size" in error.message


def test_the_parameter_cap_speaks_first() -> None:
    job = mlp([4000, 4000])
    limits = Limits(1000, 1_000_000, 10**6, max_memory_bytes=2**20)
    (error,) = check_job(job, WIDE, limits)
    assert error.field == "model" and "parameters" in error.message


def test_no_memory_cap_no_refusal() -> None:
    assert check_job(mlp([4000, 4000]), WIDE, LIMITS) == []


@pytest.mark.parametrize(("limit", "refused"), [(None, False), (3600, False), (7200.5, True)])
def test_time_limit_cap(limit: float | None, refused: bool) -> None:
    job = spec(training={"time_limit_seconds": limit})
    limits = Limits(1000, 10**7, 10**6, max_seconds=3600)
    fields = [e.field for e in check_job(job, job.dataset.known_shape(), limits)]
    assert fields == (["training.time_limit_seconds"] if refused else [])
    if refused:
        (error,) = check_job(job, job.dataset.known_shape(), limits)
        assert "7,200.5 is above this server's cap of 3,600 seconds" in error.message
