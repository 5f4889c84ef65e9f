"""Pieces every part of the job language shares."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

Task = Literal["classification", "regression"]

#: Metrics recorded every epoch. The same names in SQL, the API, events and plots.
_LOSSES = ("epoch", "train_loss", "val_loss")
_NORMS = ("grad_norm", "weight_norm")
#: Wall-clock measurements: they differ between two runs of the same spec.
TIMING_METRICS = ("epoch_seconds", "samples_per_second")
#: Recorded for every task.
COMMON_METRICS = (*_LOSSES, "lr", *_NORMS, *TIMING_METRICS)
#: Recorded by task.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("train_accuracy", "val_accuracy"),
    "regression": ("train_mse", "val_mse", "val_mae", "val_r2"),
}
#: Recorded only when a schedule cycles them (one_cycle with cycle_momentum).
CYCLED_METRICS = ("momentum", "beta1")


#: What the lab's job kinds record per row instead of epochs' metrics: a range test one
#: row per step, a landscape one per row of its grid (service/spec/lab.py).
LAB_METRICS: dict[str, tuple[str, ...]] = {
    "lr_range_test": ("lr", "loss", "smoothed_loss"),
    "landscape": ("row", "loss_min", "loss_max"),
}


def metric_names(task: str, kind: str = "train") -> tuple[str, ...]:
    """Every metric a job of ``task`` (and ``kind``) may record, in the order the engine
    reports them."""
    if kind in LAB_METRICS:
        return ("epoch", *LAB_METRICS[kind])  # "epoch": the row's number
    return (*_LOSSES, *TASK_METRICS[task], "lr", *CYCLED_METRICS, *_NORMS, *TIMING_METRICS)


def monitorable_metrics(task: str) -> tuple[str, ...]:
    """Metrics that early stopping and reduce_on_plateau may watch."""
    return ("train_loss", "val_loss", *TASK_METRICS[task])


def metric_mode(metric: str) -> Literal["min", "max"]:
    """Whether a larger value of ``metric`` is better."""
    return "max" if metric.endswith(("accuracy", "_r2")) else "min"


class SpecModel(BaseModel):
    """Base of every spec model: unknown fields, non-finite numbers (NaN, ±inf, 1e400) and
    values of the wrong JSON type are errors: pydantic's lax mode would read ``true`` or
    ``"0.1"`` as a number and ``0`` or ``"yes"`` as a boolean; the spec takes neither."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _json_types_only(cls, data: Any) -> Any:
        rules = _typed_fields(cls)
        if not isinstance(data, dict) or not rules.keys() & data.keys():
            return data
        data = dict(data)
        for name, rule in rules.items():
            if name not in data:
                continue
            value = data[name]
            if rule.items and isinstance(value, list | tuple):
                data[name] = [rule.screen(v) for v in value]
            elif not rule.items:
                data[name] = rule.screen(value)
        return data


class _WrongType:
    """Stands in for a value of the wrong JSON type, so that the field's own validation
    refuses it, at the field's location ("Input should be a valid number/boolean")."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class _Rule:
    """What a field (or each item of a list or tuple field) must be."""

    boolean: bool  # a JSON boolean; else a JSON number
    items: bool = False
    words: frozenset[str] = frozenset()  # strings also allowed (batch_size's "full")

    def screen(self, value: Any) -> Any:
        if value is None:
            return value
        if self.boolean:
            ok = isinstance(value, bool)
        else:
            ok = not isinstance(value, bool) and (not isinstance(value, str) or value in self.words)
        return value if ok else _WrongType(value)


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [_unwrap(m) for m in typing.get_args(annotation) if m is not type(None)]
    return [annotation]


def _is_number(annotation: Any) -> bool:
    return _unwrap(annotation) in (int, float)


@cache
def _typed_fields(cls: type[BaseModel]) -> dict[str, _Rule]:
    """The fields that hold numbers or booleans, and how to screen them."""
    out: dict[str, _Rule] = {}
    for name, info in cls.model_fields.items():
        members = _members(info.annotation)
        numbers = [m for m in members if _is_number(m)]
        words = [m for m in members if typing.get_origin(m) is Literal]
        if members == [bool]:
            out[name] = _Rule(boolean=True)
        elif numbers and len(numbers) + len(words) == len(members):
            allowed = frozenset(w for lit in words for w in typing.get_args(lit))
            out[name] = _Rule(boolean=False, words=allowed)
        elif len(members) == 1 and typing.get_origin(members[0]) in (list, tuple):
            args = [a for a in typing.get_args(members[0]) if a is not Ellipsis]
            if args and all(_is_number(a) for a in args):
                out[name] = _Rule(boolean=False, items=True)
    return out


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of a request, in the words a user can act on."""

    field: str
    message: str
    allowed: list[Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.allowed is not None:
            out["allowed"] = self.allowed
        return out


@dataclass
class SpecError(Exception):
    """A spec that parsed but does not fit its dataset or the configured caps."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{e.field}: {e.message}" for e in self.errors)
