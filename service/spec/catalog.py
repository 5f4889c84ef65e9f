"""``GET /v1/catalog``: everything the job spec accepts, read off the spec models.

Each entry lists its parameters with type, default, bounds, allowed values and a
description, straight from the pydantic fields, so the catalog cannot drift from
what the API validates.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from service.spec.common import COMMON_METRICS, CYCLED_METRICS, TASK_METRICS
from service.spec.datasets import SCALINGS, BuiltinDataset, DatasetBase
from service.spec.lab import Interpolation, JobKind, Landscape, RangeTest
from service.spec.models import ACTIVATIONS, INITS
from service.spec.regularization import EarlyStopping, GradClip, Regularization
from service.spec.training import JobSpec, Training
from service.spec.validate import Limits

_BOUNDS = {
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "minItems": "min_items",
    "maxItems": "max_items",
    "minLength": "min_length",
    "maxLength": "max_length",
}


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return defs[ref.rsplit("/", 1)[1]] if ref else schema


def _param(name: str, prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    prop = _resolve(prop, defs)
    variants = [_resolve(v, defs) for v in prop.get("anyOf", [])] or [prop]
    types, choices = [], []
    for v in variants:
        if "enum" in v:
            choices += v["enum"]
            types.append("string")
        elif "const" in v:
            choices.append(v["const"])
            types.append("string")
        elif v.get("type"):
            types.append(v["type"])
            for key, label in _BOUNDS.items():
                if key in v:
                    out[label] = v[key]
            items = v.get("items") or v.get("prefixItems")
            if isinstance(items, dict):
                for key, label in _BOUNDS.items():
                    if key in items and key.startswith(("min", "max", "exclusive")):
                        out.setdefault("item_" + label, items[key])
    out["type"] = " | ".join(dict.fromkeys(types)) or "object"
    if choices:
        out["choices"] = choices
    if "default" in prop:
        out["default"] = prop["default"]
    if prop.get("description"):
        out["description"] = prop["description"]
    return out


def params_of(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    out = []
    for name, prop in schema["properties"].items():
        if name in skip:
            continue
        param = _param(name, prop, defs)
        field = model.model_fields[name]
        if "default" not in param and field.default_factory is not None:
            default = field.get_default(call_default_factory=True)
            param["default"] = default.model_dump() if isinstance(default, BaseModel) else default
        out.append(param)
    return out


def _members(union: Any) -> list[type[BaseModel]]:
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return list(typing.get_args(union))


def _tag(model: type[BaseModel], key: str) -> str:
    return typing.get_args(model.model_fields[key].annotation)[0]


def _entries(union: Any, key: str, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = []
    for model in _members(union):
        entry: dict[str, Any] = {
            key: _tag(model, key),
            "description": getattr(model, "description", ""),
        }
        for attr in extra:
            entry[attr] = getattr(model, attr)
        entry["params"] = params_of(model, skip=(key,))
        out.append(entry)
    return out


def _datasets() -> list[dict[str, Any]]:
    out = []
    for model in _members(JobSpec.model_fields["dataset"].annotation):
        assert issubclass(model, DatasetBase)
        entry: dict[str, Any] = {"name": _tag(model, "name"), "description": model.description}
        if issubclass(model, BuiltinDataset):
            s = model.shape
            entry.update(
                kind="builtin",
                task=s.task,
                n_samples=s.n_samples,
                n_features=s.n_features,
                n_classes=s.n_classes,
            )
        elif _tag(model, "name") == "uploaded":
            entry.update(kind="uploaded")
        else:
            entry.update(kind="synthetic")
        entry["params"] = params_of(model, skip=("name",))
        out.append(entry)
    return out


def build_catalog(limits: Limits) -> dict[str, Any]:
    fields = JobSpec.model_fields
    return {
        "datasets": _datasets(),
        "scalings": list(SCALINGS),
        "models": _entries(fields["model"].annotation, "kind"),
        "activations": list(ACTIVATIONS),
        "inits": list(INITS),
        "optimizers": _entries(fields["optimizer"].annotation, "name", ("update_rule",)),
        "schedules": _entries(fields["schedule"].annotation, "name", ("update_rule", "stepped")),
        "regularization": {
            "params": params_of(Regularization, skip=("early_stopping", "grad_clip")),
            "early_stopping": params_of(EarlyStopping),
            "grad_clip": params_of(GradClip),
            "on_the_model": "dropout and batch_norm are parameters of the mlp and cnn models",
        },
        "training": params_of(Training),
        "kinds": {
            "kinds": list(typing.get_args(JobKind)),
            "range_test": params_of(RangeTest),
            "landscape": params_of(Landscape, skip=("interpolation",)),
            "interpolation": params_of(Interpolation),
            "about": "kind lr_range_test takes range_test; kind landscape takes landscape "
            '(job_id: a succeeded training job); "auto" for optimizer.lr or '
            "schedule.max_lr (one_cycle) runs a range test first (docs/lab.md)",
        },
        "metrics": {
            "common": list(COMMON_METRICS),
            "classification": list(TASK_METRICS["classification"]),
            "regression": list(TASK_METRICS["regression"]),
            "cycled": list(CYCLED_METRICS),
        },
        "limits": _limits(limits),
    }


def _limits(limits: Limits) -> dict[str, Any]:
    out: dict[str, Any] = {
        "max_epochs": limits.max_epochs,
        "max_parameters": limits.max_parameters,
        "max_synthetic_samples": limits.max_synthetic_samples,
    }
    if limits.max_memory_bytes is not None:
        # the estimate counts weights, gradients, optimizer state, data and one batch
        out["max_memory_mb"] = limits.max_memory_bytes // 2**20
    if limits.max_seconds is not None:
        out["max_time_limit_seconds"] = limits.max_seconds
    return out
