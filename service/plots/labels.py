"""Legend labels for jobs drawn on one chart, made from what differs between their specs.

Each job's label is built section by section (dataset, model, optimizer, schedule,
regularization, training), from the full spec dump the job stores:

- A section whose variant (``name``; ``kind`` for the model) differs between the jobs
  shows the variant, then the parameters that tell it apart: those not at that variant's
  default, and those whose values differ between the jobs of that variant (their default
  included, unless the default switches a feature off: 0, false, none). A parameter with
  the same value in every job is common to the chart and never shown.
  ``sgd``, ``sgd momentum=0.9``, ``sgd momentum=0.9 nesterov=on``, ``adam``.
- Any other section shows the parameters whose values differ between the jobs, defaults
  included (``lr=0.001`` and ``lr=0.01``), but for a default that switches a feature off
  (``l2=0``, ``early_stopping=off``), which a label shows only when it would otherwise
  show nothing: ``l2=0.0001``, ``early_stopping=on patience=10``, ``l2=0 early_stopping=off``.

A parameter is written ``key=value``, the key being the last part of its path (a longer
part where two shown parameters would share one: ``optimizer.weight_decay``), numbers in
``%g`` style (``0.001``, ``1e-05``), booleans and optional sections as ``on``/``off``.
A job whose spec does not differ from the others', or whose label another job has too,
is told apart by its name and the first 8 characters of its id.
"""

from __future__ import annotations

import re
import typing
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from service.spec.datasets import DatasetSpec
from service.spec.models import ModelSpec
from service.spec.optimizers import OptimizerSpec
from service.spec.regularization import Regularization
from service.spec.schedules import ScheduleSpec
from service.spec.training import JobSpec, Training

__all__ = ["SECTIONS", "format_value", "spec_labels"]

Path = tuple[str, ...]

#: (section, its discriminator or None, the spec type: a discriminated union or a model)
SECTIONS: tuple[tuple[str, str | None, Any], ...] = (
    ("dataset", "name", DatasetSpec),
    ("model", "kind", ModelSpec),
    ("optimizer", "name", OptimizerSpec),
    ("schedule", "name", ScheduleSpec),
    ("regularization", None, Regularization),
    ("training", None, Training),
)


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: A nested object that is set (``early_stopping: {...}``), as opposed to ``None``.
ON = _Marker("ON")
#: A path a spec (or a variant's defaults) does not have.
MISSING = _Marker("MISSING")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# -- specs as flat {path: value} maps ------------------------------------------------


def _flatten(value: Any, path: Path = ()) -> dict[Path, Any]:
    """``{"a": {"b": 1}}`` → ``{("a",): ON, ("a", "b"): 1}``; lists stay whole."""
    if isinstance(value, Mapping):
        out: dict[Path, Any] = {path: ON} if path else {}
        for key, item in value.items():
            out.update(_flatten(item, (*path, str(key))))
        return out
    return {path: value}


def _normalized(spec: Any) -> dict[str, Any]:
    """The spec as the current language dumps it (defaults of fields added since it was
    stored filled in); as stored when it no longer parses."""
    try:
        return JobSpec.model_validate(spec).model_dump(mode="json")
    except ValidationError:
        return dict(spec) if isinstance(spec, Mapping) else {}


@cache
def _variants(section: str) -> dict[str, type[BaseModel]]:
    """The models of a discriminated section by discriminator value."""
    _, disc, annotation = next(s for s in SECTIONS if s[0] == section)
    union = typing.get_args(annotation)[0]  # Annotated[Union[...], Field(discriminator)]
    out: dict[str, type[BaseModel]] = {}
    for cls in typing.get_args(union):
        (value,) = typing.get_args(cls.model_fields[disc].annotation)
        out[value] = cls
    return out


@cache
def _defaults(section: str, variant: str | None) -> dict[Path, Any]:
    """A section's defaults, flattened; required fields (an upload's ``id``) are MISSING."""
    _, disc, annotation = next(s for s in SECTIONS if s[0] == section)
    cls = annotation if disc is None else _variants(section).get(variant or "")
    if cls is None:  # a variant this version of the language does not know
        return {}
    values = {
        name: field.get_default(call_default_factory=True, validated_data={})
        for name, field in cls.model_fields.items()
        if not field.is_required()
    }
    return _flatten(to_jsonable_python(values))


# -- comparing values ----------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from numbers (``True == 1`` in Python)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a is b if isinstance(a, _Marker) or isinstance(b, _Marker) else a == b


def _all_same(values: Sequence[Any]) -> bool:
    return all(_same(v, values[0]) for v in values[1:])


def _switched_off(default: Any) -> bool:
    """A default that turns a feature off (momentum 0, nesterov false, no clipping)."""
    return (
        default is None
        or default is False
        or (isinstance(default, int | float) and not isinstance(default, bool) and default == 0)
    )


# -- formatting ----------------------------------------------------------------------


def _number(value: float) -> str:
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def format_value(value: Any, *, optional_section: bool = False) -> str:
    """A parameter's value as a label shows it: ``0.001``, ``1e-05``, ``on``, ``[64,32]``.

    ``None`` is ``off`` for an optional section (``early_stopping``), else ``none``.
    """
    if value is ON or value is True:
        return "on"
    if value is False:
        return "off"
    if value is None:
        return "off" if optional_section else "none"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    text = str(value)
    return text[:8] if _UUID.match(text) else text


# -- labels --------------------------------------------------------------------------


class _Shown(NamedTuple):
    """One thing a label shows: a parameter (``path``) and its value, or with path ``()``
    the section's variant."""

    section: str
    path: Path
    value: Any
    optional: bool = False  # None reads "off" (a nested section), not "none"
    #: at a default that switches a feature off: left out unless the label has nothing else
    quiet: bool = False


def _section_items(section: str, disc: str | None, parts: list[Any]) -> list[list[_Shown]]:
    """What each job's label shows of one section."""
    flats = [_flatten(p) if isinstance(p, Mapping) else {} for p in parts]
    variants = [f.pop((disc,), None) if disc else None for f in flats]
    paths = list(dict.fromkeys(p for f in flats for p in f))
    optional = {p for p in paths if any(f.get(p) is ON for f in flats)}
    out: list[list[_Shown]] = [[] for _ in parts]
    if disc and not _all_same(variants):
        common = {
            p for p in paths if all(p in f for f in flats) and _all_same([f[p] for f in flats])
        }
        for j, (flat, variant) in enumerate(zip(flats, variants, strict=True)):
            out[j].append(_Shown(section, (), variant))
            defaults = _defaults(section, variant if isinstance(variant, str) else None)
            group = [f for f, v in zip(flats, variants, strict=True) if _same(v, variant)]
            for path, value in flat.items():
                if path in common:
                    continue
                default = defaults.get(path, MISSING)
                varies = not _all_same([f[path] for f in group if path in f])
                if (default is not MISSING and not _same(value, default)) or (
                    varies and (default is MISSING or not _switched_off(default))
                ):
                    out[j].append(_Shown(section, path, value, path in optional))
        return out
    variant = variants[0] if isinstance(variants[0], str) else None
    defaults = _defaults(section, variant)
    for path in paths:
        # Compared among the jobs that have it: a nested section's parameters among the
        # jobs where it is on (its being off in others shows on the section itself).
        if _all_same([f[path] for f in flats if path in f]):
            continue
        default = defaults.get(path, MISSING)
        for j, flat in enumerate(flats):
            if path in flat:
                value = flat[path]
                quiet = default is not MISSING and _same(value, default) and _switched_off(value)
                out[j].append(_Shown(section, path, value, path in optional, quiet))
    return out


def _keys(items: set[tuple[str, Path]]) -> dict[tuple[str, Path], str]:
    """The shortest unambiguous key of each shown parameter: its last path part, else its
    whole path, else its section and path."""

    def candidates(section: str, path: Path) -> list[str]:
        return [path[-1], ".".join(path), ".".join((section, *path))]

    level = dict.fromkeys(items, 0)
    while True:
        names: dict[str, list[tuple[str, Path]]] = {}
        for item, lv in level.items():
            names.setdefault(candidates(*item)[lv], []).append(item)
        bumped = [i for group in names.values() if len(group) > 1 for i in group if level[i] < 2]
        if not bumped:
            return {item: candidates(*item)[lv] for item, lv in level.items()}
        for item in bumped:
            level[item] += 1


def _label(shown: list[_Shown], keys: dict[tuple[str, Path], str]) -> str:
    shown = [s for s in shown if not s.quiet] or shown
    parts = [
        f"{keys[s.section, s.path]}={format_value(s.value, optional_section=s.optional)}"
        if s.path
        else format_value(s.value)
        for s in shown
    ]
    return " ".join(parts)


def spec_labels(
    specs: Sequence[Mapping[str, Any]], *, names: Sequence[str], ids: Sequence[str]
) -> list[str]:
    """A short, distinct legend label for each job, from what differs between the specs.

    ``specs`` are the jobs' stored specs (``job.spec``); ``names`` and ``ids`` the jobs'
    names and ids, which tell apart jobs that the specs alone do not.
    """
    if not (len(specs) == len(names) == len(ids)):
        raise ValueError("specs, names and ids must be as many")
    full = [_normalized(s) for s in specs]
    shown: list[list[_Shown]] = [[] for _ in full]
    for section, disc, _ in SECTIONS:
        for j, items in enumerate(_section_items(section, disc, [s.get(section) for s in full])):
            shown[j] += items
    keys = _keys({(s.section, s.path) for job in shown for s in job if s.path})
    idents = [f"{name} {job_id[:8]}" for name, job_id in zip(names, ids, strict=True)]
    labels = [_label(job, keys) or ident for job, ident in zip(shown, idents, strict=True)]
    counts = Counter(labels)
    labels = [
        f"{label} ({ident})" if counts[label] > 1 and label != ident else label
        for label, ident in zip(labels, idents, strict=True)
    ]
    counts = Counter(labels)  # alike in name and short id too: the whole id
    return [
        f"{label} [{job_id}]" if counts[label] > 1 else label
        for label, job_id in zip(labels, ids, strict=True)
    ]
