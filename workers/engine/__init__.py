"""The training engine: a job spec in, a trained model and a stream of metrics out.

Everything here is plain PyTorch with no knowledge of SQL or Celery; the worker's task
passes a ``Reporter`` (which also receives a ``Checkpoint`` per epoch, to resume from
after a crash) and records the ``TrainResult``. Builders are registered under
the spec's names (``DATASETS``, ``MODELS``, ``OPTIMIZERS``, ``SCHEDULES``, …) and a
test keeps those names equal to the spec's.

The optimization lab's job kinds live beside the loop and share its setup and step:
``range_test`` and ``resolve_auto`` (``lr_finder``), ``landscape`` (``landscape``).
"""

from workers.engine.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from workers.engine.data import DATASETS, SCALERS, DatasetMissing, SplitData, load_dataset
from workers.engine.device import DeviceUnavailable, is_out_of_memory, resolve_device
from workers.engine.landscape import LandscapeResult, landscape
from workers.engine.loop import TrainResult, initial_model, load_trajectory, train
from workers.engine.lr_finder import (
    NoSuggestion,
    RangeTestCancelled,
    RangeTestResult,
    range_test,
    resolve_auto,
)
from workers.engine.models import ACTIVATIONS, INITS, MODELS, build_model
from workers.engine.optim import OPTIMIZERS, build_optimizer
from workers.engine.regularize import EarlyStopping
from workers.engine.report import ListReporter, Reporter, StopTraining
from workers.engine.schedules import SCHEDULES, Schedule, build_schedule

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "INITS",
    "MODELS",
    "OPTIMIZERS",
    "SCALERS",
    "SCHEDULES",
    "Checkpoint",
    "CheckpointError",
    "DatasetMissing",
    "DeviceUnavailable",
    "EarlyStopping",
    "LandscapeResult",
    "ListReporter",
    "NoSuggestion",
    "RangeTestCancelled",
    "RangeTestResult",
    "Reporter",
    "Schedule",
    "SplitData",
    "StopTraining",
    "TrainResult",
    "build_model",
    "build_optimizer",
    "build_schedule",
    "initial_model",
    "is_out_of_memory",
    "landscape",
    "load_checkpoint",
    "load_dataset",
    "load_trajectory",
    "range_test",
    "resolve_auto",
    "resolve_device",
    "save_checkpoint",
    "train",
]
