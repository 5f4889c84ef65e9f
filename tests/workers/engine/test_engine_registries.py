"""The engine's registries use exactly the spec's names: the API never accepts a name
the worker cannot build, and the worker builds nothing the API would refuse."""

from __future__ import annotations

import pytest

from service.spec import (
    ACTIVATIONS,
    DATASET_NAMES,
    INITS,
    MODEL_KINDS,
    OPTIMIZER_NAMES,
    SCALINGS,
    SCHEDULE_NAMES,
)
from workers import engine


@pytest.mark.parametrize(
    ("registry", "names"),
    [
        (engine.DATASETS, DATASET_NAMES),
        (engine.SCALERS, SCALINGS),
        (engine.MODELS, MODEL_KINDS),
        (engine.ACTIVATIONS, ACTIVATIONS),
        (engine.INITS, INITS),
        (engine.OPTIMIZERS, OPTIMIZER_NAMES),
        (engine.SCHEDULES, SCHEDULE_NAMES),
    ],
    ids=["datasets", "scalings", "models", "activations", "inits", "optimizers", "schedules"],
)
def test_registry_keys_equal_spec_names(registry: dict, names: tuple[str, ...]) -> None:
    assert list(registry) == list(names)


def test_public_api_is_importable() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
