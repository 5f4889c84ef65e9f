"""Checks that need more than the spec itself: its dataset's shape and the server's caps.

``JobSpec`` validates each field on its own; ``check_job`` validates the fields against
each other and against the dataset they will train on, so that a job that would fail
in the first second on a worker is refused with a 422 instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.spec.common import FieldError, monitorable_metrics
from service.spec.datasets import DatasetShape, SyntheticDataset
from service.spec.memory import MemoryEstimate, estimate_memory
from service.spec.models import CNNModel
from service.spec.schedules import Cosine, MultiStep, OneCycle, ReduceOnPlateau
from service.spec.training import JobSpec


@dataclass(frozen=True)
class Limits:
    """The server's caps on a job (``DESCENT_MAX_*``); ``None``: no cap."""

    max_epochs: int
    max_parameters: int
    max_synthetic_samples: int
    #: on the estimate of ``estimate_memory_bytes``
    max_memory_bytes: int | None = None
    #: on ``training.time_limit_seconds``
    max_seconds: float | None = None


def kind_errors(spec: JobSpec) -> list[FieldError]:
    """Sections that do not fit the job's ``kind``."""
    errors: list[FieldError] = []
    if spec.kind == "landscape" and spec.landscape is None:
        errors.append(FieldError("landscape", "kind landscape needs this, with its job_id"))
    if spec.kind != "landscape" and spec.landscape is not None:
        errors.append(FieldError("landscape", "only for kind landscape"))
    if spec.range_test is not None and spec.kind != "lr_range_test" and not spec.auto_lr:
        errors.append(
            FieldError(
                "range_test",
                "only for kind lr_range_test, or for a job whose optimizer.lr or "
                'schedule.max_lr is "auto"',
            )
        )
    if spec.kind != "train":
        errors += [
            FieldError(field, f'"auto" is for training jobs, not kind {spec.kind}')
            for field in spec.auto_lr
        ]
    return errors


#: Most bytes ``training.save_trajectory`` may keep: a float32 copy of the weights per
#: epoch, plus the initial ones.
MAX_TRAJECTORY_BYTES = 2**30


def check_job(spec: JobSpec, shape: DatasetShape, limits: Limits) -> list[FieldError]:
    """Every reason ``spec`` cannot train on a dataset of ``shape``; empty when it can."""
    errors: list[FieldError] = kind_errors(spec)
    if spec.training.save_trajectory:
        size = (spec.training.epochs + 1) * spec.model.count_parameters(shape) * 4
        if size > MAX_TRAJECTORY_BYTES:
            errors.append(
                FieldError(
                    "training.save_trajectory",
                    f"would keep {_mib(size)} of weights ({spec.training.epochs + 1} copies), "
                    f"above the cap of {_mib(MAX_TRAJECTORY_BYTES)}; train fewer epochs or a "
                    "smaller model",
                )
            )
    t = spec.training
    if t.epochs > limits.max_epochs:
        errors.append(
            FieldError(
                "training.epochs",
                f"{t.epochs} is above this server's cap of {limits.max_epochs} epochs",
            )
        )
    if (
        limits.max_seconds is not None
        and t.time_limit_seconds is not None
        and t.time_limit_seconds > limits.max_seconds
    ):
        errors.append(
            FieldError(
                "training.time_limit_seconds",
                f"{t.time_limit_seconds:,.10g} is above this server's cap of "
                f"{limits.max_seconds:,.10g} seconds",
            )
        )
    if isinstance(spec.dataset, SyntheticDataset) and (
        spec.dataset.n_samples > limits.max_synthetic_samples
    ):
        errors.append(
            FieldError(
                "dataset.n_samples",
                f"{spec.dataset.n_samples} is above this server's "
                f"cap of {limits.max_synthetic_samples} samples",
            )
        )

    n_train, n_val = spec.dataset.split_sizes(shape.n_samples)
    if n_train < 1:
        errors.append(FieldError("dataset.val_fraction", "leaves no samples to train on"))
    if (
        shape.task == "classification"
        and shape.n_classes
        and (n_val < shape.n_classes or n_train < shape.n_classes)
    ):
        errors.append(
            FieldError(
                "dataset.val_fraction",
                f"a stratified split of {shape.n_samples} samples needs at least "
                f"{shape.n_classes} (one per class) on each side; this one gives "
                f"{n_train} train / {n_val} validation",
            )
        )
    if t.batch_size != "full" and t.batch_size > n_train:
        errors.append(
            FieldError(
                "training.batch_size",
                f"{t.batch_size} is larger than the training split ({n_train} samples); "
                f'use at most {n_train}, or "full"',
            )
        )

    model = spec.model
    if isinstance(model, CNNModel):
        input_shape = model.resolve_input_shape(shape)
        if input_shape is None:
            errors.append(
                FieldError(
                    "model.input_shape",
                    f"the cnn model needs image-shaped data; {spec.dataset.name} has "
                    f"{shape.n_features} flat features: give input_shape [channels, height, "
                    "width] whose product equals that, or use an mlp",
                )
            )
        elif input_shape[0] * input_shape[1] * input_shape[2] != shape.n_features:
            errors.append(
                FieldError(
                    "model.input_shape",
                    f"{list(input_shape)} holds {input_shape[0] * input_shape[1] * input_shape[2]}"
                    f" values but each sample has {shape.n_features} features",
                )
            )
    if getattr(model, "batch_norm", False) and t.resolve_batch_size(n_train) < 2:
        errors.append(
            FieldError(
                "training.batch_size",
                "batch norm needs batches of at least 2 samples (one sample has no variance); "
                "use a larger batch_size or set model.batch_norm to false",
            )
        )
    n_params = model.count_parameters(shape)
    if n_params > limits.max_parameters:
        errors.append(
            FieldError(
                "model",
                f"{n_params:,} parameters is above this server's cap of {limits.max_parameters:,}",
            )
        )
    elif limits.max_memory_bytes is not None:
        memory = estimate_memory(spec, shape)
        if memory.total > limits.max_memory_bytes:
            errors.append(FieldError("model", _memory_message(memory, limits.max_memory_bytes)))

    allowed = list(monitorable_metrics(shape.task))
    sched = spec.schedule
    if isinstance(sched, ReduceOnPlateau) and sched.monitor not in allowed:
        errors.append(
            FieldError(
                "schedule.monitor",
                f"unknown metric {sched.monitor!r} for a {shape.task} dataset",
                allowed,
            )
        )
    es = spec.regularization.early_stopping
    if es is not None and es.monitor not in allowed:
        errors.append(
            FieldError(
                "regularization.early_stopping.monitor",
                f"unknown metric {es.monitor!r} for a {shape.task} dataset",
                allowed,
            )
        )
    if es is not None and es.start_from_epoch >= t.epochs:
        errors.append(
            FieldError(
                "regularization.early_stopping.start_from_epoch",
                f"{es.start_from_epoch} is not before the last epoch ({t.epochs}); early "
                "stopping would never watch an epoch",
            )
        )
    if sched.warmup_epochs >= t.epochs:
        errors.append(
            FieldError(
                "schedule.warmup_epochs",
                f"{sched.warmup_epochs} warm-up epochs leave "
                f"none of the {t.epochs} epochs for the schedule itself",
            )
        )
    # Milestones and t_max count epochs after warm-up (e in update_rule).
    sched_epochs = t.epochs - sched.warmup_epochs
    if isinstance(sched, MultiStep) and sched.milestones[-1] >= sched_epochs:
        errors.append(
            FieldError(
                "schedule.milestones",
                f"milestone {sched.milestones[-1]} is not "
                f"before the last epoch after warm-up ({sched_epochs - 1}); it would never apply",
            )
        )
    if isinstance(sched, Cosine) and sched.t_max is not None and sched.t_max > sched_epochs:
        errors.append(
            FieldError(
                "schedule.t_max",
                f"{sched.t_max} is longer than training after warm-up ({sched_epochs} "
                "epochs); the rate would never reach eta_min",
            )
        )
    if isinstance(sched, OneCycle) and sched.cycle_momentum and not spec.optimizer.has_momentum:
        if spec.optimizer.name == "adagrad":
            message = "adagrad has no momentum or β1 to cycle; set cycle_momentum to false"
        else:
            message = (
                f"{spec.optimizer.name} with momentum 0 has no momentum to cycle; set "
                "optimizer.momentum > 0, or cycle_momentum to false"
            )
        errors.append(FieldError("schedule.cycle_momentum", message, [False]))
    return errors


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n / 2**20:.2f} MiB"


def _memory_message(memory: MemoryEstimate, cap: int) -> str:
    return (
        f"needs an estimated {_mib(memory.total)} on its device, above this server's cap of "
        f"{_mib(cap)} (weights, gradients and optimizer state {_mib(memory.parameters)}, "
        f"dataset {_mib(memory.data)}, activations of one batch {_mib(memory.activations)}); "
        "use a smaller model or training.batch_size"
    )


def format_validation_error(
    errors: Sequence[Mapping[str, Any]], body: Any, prefix: tuple = ()
) -> list[FieldError]:
    """Pydantic's errors (``exc.errors()``) as FieldErrors with dotted paths into the request.

    Unions put the member's tag into the error location (``optimizer.adam.lr``); we drop
    it by walking the request body, so users see ``optimizer.lr``. Errors from the members
    of a plain union (``batch_size``: an int or "full") merge into one. A problem with the
    body as a whole (not JSON, not an object) is reported on the field ``body``.
    """
    merged: dict[str, FieldError] = {}
    for err in errors:
        path = _strip_tags(tuple(err["loc"]), body)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        allowed: list[Any] | None = None
        message = err["msg"]
        if kind == "json_invalid":
            where = f" at character {path[0]}" if path and isinstance(path[0], int) else ""
            path = ()
            message = f"the body is not valid JSON: {ctx.get('error', 'decode error')}{where}"
        elif not path and kind in _NOT_AN_OBJECT:
            message = "the body must be a JSON object"
            if isinstance(body, bytes | bytearray | str):  # not parsed: not sent as JSON
                message += "; send it with the header Content-Type: application/json"
        elif kind == "union_tag_invalid":
            allowed = _tags(ctx.get("expected_tags", ""))
            disc = str(ctx.get("discriminator", "")).strip("'")
            path = (*path, disc)
            message = f"unknown {disc} {ctx.get('tag')!r}; allowed: {', '.join(allowed)}"
        elif kind == "union_tag_not_found":
            disc = str(ctx.get("discriminator", "")).strip("'")
            path = (*path, disc)
            message = f"{disc} is required here"
        elif kind == "literal_error":
            allowed = _tags(ctx.get("expected", ""))
        elif kind == "extra_forbidden":
            message = "unknown field; check the spelling (see GET /v1/catalog)"
        elif kind.startswith("value_error") or kind == "assertion_error":
            message = message.removeprefix("Value error, ")
        field = ".".join(str(p) for p in (*prefix, *path)) or "body"
        if field in merged:
            old = merged[field]
            allowed = (old.allowed or []) + (allowed or []) or None
            message = f"{old.message}, or {message[0].lower()}{message[1:]}"
        merged[field] = FieldError(field, message, allowed)
    return list(merged.values())


#: Pydantic's error types for a value that should have been an object (a dict or model).
_NOT_AN_OBJECT = ("model_attributes_type", "model_type", "dict_type")


#: Where ``_strip_tags`` has left the request body: the location names what was not sent.
_UNSENT = object()


def _strip_tags(loc: tuple, body: Any) -> tuple:
    kept: list[Any] = []
    node = _UNSENT if body is None else body  # None: a query string's or a header's error
    for part in loc:
        if isinstance(node, Mapping):  # a JSON object, or a multipart form's fields
            if part in node:
                kept.append(part)
                node = node[part]
            elif isinstance(part, str) and part in node.values():
                continue  # a union tag pydantic inserted
            else:
                kept.append(part)
                node = _UNSENT
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            kept.append(part)
            node = node[part]
        elif isinstance(part, str) and node is not _UNSENT:
            # The label of a plain union's member under a value that was sent (a number,
            # a string, a list, null), e.g. "constrained-int" or "literal['auto']".
            continue
        else:
            kept.append(part)
            node = _UNSENT
    return tuple(kept)


def _tags(text: str) -> list[str]:
    return [t.strip().strip("'") for t in text.replace(" or ", ",").split(",") if t.strip()]
