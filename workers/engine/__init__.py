"""The training engine: a job spec in, a trained model and a stream of metrics out.

Everything here is plain PyTorch with no knowledge of SQL or Celery; the worker's task
passes a ``Reporter`` (which also receives a ``Checkpoint`` per epoch, to resume from
after a crash) and records the ``TrainResult``. Builders are registered under
the spec's names (``DATASETS``, ``MODELS``, ``OPTIMIZERS``, ``SCHEDULES``, …) and a
test keeps those names equal to the spec's.

The optimization lab's job kinds live beside the loop and share its setup and step:
``range_test`` and ``resolve_auto`` (``lr_finder``), ``landscape`` (``landscape``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each name this package exports → the module that defines it, imported on first use:
#: the playground (in the API process) needs the optimizer and schedule builders, not
#: scikit-learn's datasets (seconds of import).
_EXPORTS: dict[str, str] = {
    "Checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "DATASETS": "data",
    "SCALERS": "data",
    "DatasetMissing": "data",
    "SplitData": "data",
    "load_dataset": "data",
    "DeviceUnavailable": "device",
    "is_out_of_memory": "device",
    "resolve_device": "device",
    "LandscapeResult": "landscape",
    "landscape": "landscape",
    "TrainResult": "loop",
    "initial_model": "loop",
    "load_trajectory": "loop",
    "train": "loop",
    "NoSuggestion": "lr_finder",
    "RangeTestCancelled": "lr_finder",
    "RangeTestResult": "lr_finder",
    "range_test": "lr_finder",
    "resolve_auto": "lr_finder",
    "ACTIVATIONS": "models",
    "INITS": "models",
    "MODELS": "models",
    "build_model": "models",
    "OPTIMIZERS": "optim",
    "build_optimizer": "optim",
    "EarlyStopping": "regularize",
    "ListReporter": "report",
    "PruneTrial": "report",
    "Reporter": "report",
    "StopTraining": "report",
    "SCHEDULES": "schedules",
    "Schedule": "schedules",
    "build_schedule": "schedules",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
