"""The job language: what a user may ask Descent to train, as pydantic v2 models.

The API validates a spec completely with these models; the worker re-parses the
same JSON with them. Builders on the worker side register under the same names
(``DATASET_NAMES``, ``MODEL_KINDS``, …), and a parity test keeps the two equal.
"""

from service.spec.common import (
    COMMON_METRICS,
    CYCLED_METRICS,
    TASK_METRICS,
    TIMING_METRICS,
    FieldError,
    SpecError,
    metric_mode,
    metric_names,
    monitorable_metrics,
)
from service.spec.datasets import (
    DATASET_NAMES,
    SCALINGS,
    DatasetShape,
    DatasetSpec,
    UploadedDataset,
)
from service.spec.memory import MemoryEstimate, estimate_memory, estimate_memory_bytes
from service.spec.models import ACTIVATIONS, INITS, MODEL_KINDS, ModelSpec, cnn_feature_shape
from service.spec.optimizers import OPTIMIZER_NAMES, OptimizerSpec
from service.spec.regularization import EarlyStopping, GradClip, Regularization
from service.spec.schedules import SCHEDULE_NAMES, ScheduleSpec
from service.spec.training import JobSpec, Training
from service.spec.validate import Limits, check_job, format_validation_error

__all__ = [
    "ACTIVATIONS",
    "COMMON_METRICS",
    "CYCLED_METRICS",
    "DATASET_NAMES",
    "INITS",
    "MODEL_KINDS",
    "OPTIMIZER_NAMES",
    "SCALINGS",
    "SCHEDULE_NAMES",
    "TASK_METRICS",
    "TIMING_METRICS",
    "DatasetShape",
    "DatasetSpec",
    "EarlyStopping",
    "FieldError",
    "GradClip",
    "JobSpec",
    "Limits",
    "MemoryEstimate",
    "ModelSpec",
    "OptimizerSpec",
    "Regularization",
    "ScheduleSpec",
    "SpecError",
    "Training",
    "UploadedDataset",
    "check_job",
    "cnn_feature_shape",
    "estimate_memory",
    "estimate_memory_bytes",
    "format_validation_error",
    "metric_mode",
    "metric_names",
    "monitorable_metrics",
]
