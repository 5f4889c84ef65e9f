"""What a filter may name: a job's columns, its spec by dotted path, its tags and its
metrics; and how each is read in SQL, on SQLite and on PostgreSQL alike.

A field is a column (its type known: a filter comparing it with a value of another type
is a 422) or a value inside a JSON column. A JSON value's type is checked in SQL before
it is used — ``json_type`` on SQLite, ``json_typeof`` on PostgreSQL — so a numeric
comparison never casts a string (``"lr": "auto"``) and never meets SQLite's ordering of
text after numbers. Paths are bound parameters, never spliced into SQL text.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.sql.elements import ColumnElement

from service.jobs.models import Job
from service.jobs.states import JobKind, JobStatus
from service.projects.schemas import TAG_KEY_PATTERN
from service.spec import JobSpec
from service.spec.common import TASK_METRICS, metric_names

ValueType = Literal["number", "string", "bool", "time"]

#: The JSON columns a filter reaches into, by the prefix that names them.
METRIC_PREFIXES = {"final": "final_metrics", "saved": "saved_metrics", "best": "best_metrics"}
#: Every metric some job records (which ones a job has depends on its task and kind).
ALL_METRICS: tuple[str, ...] = tuple(
    dict.fromkeys(
        n
        for task in TASK_METRICS
        for kind in JobKind
        for n in metric_names(task, kind)
        if n != "epoch"
    )
)
#: The spec's sections a filter can reach into (``kind`` and ``name`` are columns).
SPEC_SECTIONS = tuple(n for n in JobSpec.model_fields if n not in ("kind", "name"))
_TAG_KEY = re.compile(TAG_KEY_PATTERN)
_SEGMENT = re.compile(r"[A-Za-z0-9_]+")


#: Column fields: name → (column, type, the values allowed, if a closed set).
COLUMNS: dict[str, tuple[Any, ValueType, tuple[str, ...] | None]] = {
    "id": (Job.id, "string", None),
    "name": (Job.name, "string", None),
    "status": (Job.status, "string", tuple(JobStatus)),
    "kind": (Job.kind, "string", tuple(JobKind)),
    "task": (Job.task, "string", tuple(TASK_METRICS)),
    "project": (Job.project_name, "string", None),  # the name, read through project_id
    "note": (Job.note, "string", None),
    "sweep_id": (Job.sweep_id, "string", None),
    "dataset_id": (Job.dataset_id, "string", None),
    "device": (Job.device, "string", None),
    "epochs_completed": (Job.epochs_completed, "number", None),
    "n_parameters": (Job.n_parameters, "number", None),
    "best_epoch": (Job.best_epoch, "number", None),
    "best_value": (Job.best_value, "number", None),
    "stop_epoch": (Job.stop_epoch, "number", None),
    "saved_epoch": (Job.saved_epoch, "number", None),
    "trial_number": (Job.trial_number, "number", None),
    "created_at": (Job.created_at, "time", None),
    "started_at": (Job.started_at, "time", None),
    "finished_at": (Job.finished_at, "time", None),
    "has_model": (Job.has_model, "bool", None),
    "has_bundle": (Job.has_bundle, "bool", None),
}
#: What an unknown field's message offers.
ALLOWED_FIELDS: list[str] = [
    *COLUMNS,
    *(f"{s}.<field>" for s in SPEC_SECTIONS),
    "tags.<key>",
    *(f"{p}.<metric>" for p in METRIC_PREFIXES),
]


class UnknownField(ValueError):
    """A name that is no field; ``allowed`` lists what may stand there."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


@dataclass(frozen=True)
class Field:
    """A resolved field: a column (``column``), or the value at ``path`` inside the JSON
    column ``column``. ``type`` is the one type its values have, or None for a spec field
    (``optimizer.lr`` is a number or ``"auto"``); ``choices`` the values it can take."""

    name: str
    column: Any
    type: ValueType | None
    path: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None

    @property
    def is_json(self) -> bool:
        return bool(self.path)


# -- resolving names --------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through unions, Optional, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _spec_path(name: str, parts: list[str]) -> tuple[str, ...]:
    """Check a dotted path against the spec's models: each part must be a field of some
    member of the union there; the last may be any value (a number, a list, …)."""
    models = _models_in(JobSpec.model_fields[parts[0]].annotation)
    for i, part in enumerate(parts[1:], start=1):
        where = ".".join(parts[:i])
        fields = sorted({f for m in models for f in m.model_fields})
        if not models:
            raise UnknownField(f"{where} is a value, not a section: {name!r} goes too deep", [])
        if part not in fields:
            raise UnknownField(
                f"unknown field {name!r}: {where} has no {part!r}",
                [f"{where}.{f}" for f in fields],
            )
        models = [
            sub for m in models if part in m.model_fields
            for sub in _models_in(m.model_fields[part].annotation)
        ]  # fmt: skip
    if models:
        fields = sorted({f for m in models for f in m.model_fields})
        raise UnknownField(
            f"{name} is a section, not a value; name one of its fields",
            [f"{name}.{f}" for f in fields],
        )
    return tuple(parts)


def resolve(name: str) -> Field:
    """The field ``name`` stands for; :class:`UnknownField` naming what is allowed."""
    if name in COLUMNS:
        column, kind, choices = COLUMNS[name]
        return Field(name, column, kind, choices=choices)
    head, _, rest = name.partition(".")
    if head == "tags" and rest:
        if not _TAG_KEY.fullmatch(rest):
            raise UnknownField(
                f"{name!r}: a tag key is 1 to 64 letters, digits, '_', '.' or '-'", ["tags.<key>"]
            )
        return Field(name, Job.tags, "string", (rest,))
    if head in METRIC_PREFIXES and rest:
        if rest not in ALL_METRICS:
            raise UnknownField(
                f"unknown metric {rest!r} in {name!r}", [f"{head}.{m}" for m in ALL_METRICS]
            )
        return Field(name, getattr(Job, METRIC_PREFIXES[head]), "number", (rest,))
    if head in SPEC_SECTIONS:
        parts = name.split(".")
        if not all(_SEGMENT.fullmatch(p) for p in parts):
            raise UnknownField(f"{name!r}: a spec path is names joined by '.'", [])
        return Field(name, Job.spec, None, _spec_path(name, parts))
    raise UnknownField(f"unknown field {name!r}", ALLOWED_FIELDS)


# -- reading JSON values in SQL ---------------------------------------------------------


class JsonReader:
    """How one dialect reads the value at a path of a JSON column: its JSON type (one of
    ``number``, ``string``, ``boolean``, ``null``, or something else; SQL NULL when the
    path is missing), and the value as a number, as text, or a boolean as text."""

    def type_in(self, field: Field, types: tuple[str, ...]) -> ColumnElement[bool]:
        raise NotImplementedError

    def type_is_null(self, field: Field) -> ColumnElement[bool]:
        raise NotImplementedError

    def number(self, field: Field) -> ColumnElement[Any]:
        raise NotImplementedError

    def text(self, field: Field) -> ColumnElement[Any]:
        raise NotImplementedError

    def boolean_text(self, field: Field) -> ColumnElement[Any]:
        """``'true'`` or ``'false'`` for a JSON boolean."""
        raise NotImplementedError


class SqliteJson(JsonReader):
    _TYPES = {"number": ("integer", "real"), "string": ("text",), "boolean": ("true", "false")}

    @staticmethod
    def _path(field: Field) -> Any:
        # Keys quoted: a tag key may hold '.' or '-'. The path is a bound parameter.
        return sa.literal("$" + "".join(f'."{p}"' for p in field.path), sa.String)

    def _type(self, field: Field) -> ColumnElement[Any]:
        return sa.func.json_type(field.column, self._path(field))

    def type_in(self, field: Field, types: tuple[str, ...]) -> ColumnElement[bool]:
        return self._type(field).in_([t for k in types for t in self._TYPES.get(k, (k,))])

    def type_is_null(self, field: Field) -> ColumnElement[bool]:
        kind = self._type(field)
        return sa.or_(kind.is_(None), kind == "null")

    def number(self, field: Field) -> ColumnElement[Any]:
        return sa.func.json_extract(field.column, self._path(field))

    text = number  # json_extract gives SQL text for a JSON string

    def boolean_text(self, field: Field) -> ColumnElement[Any]:
        return self._type(field)  # 'true' or 'false'


class PostgresJson(JsonReader):
    """The searched columns are JSONB on PostgreSQL (service/jobs/models.py)."""

    def _value(self, field: Field) -> ColumnElement[Any]:
        return sa.func.jsonb_extract_path(field.column, *(sa.literal(p) for p in field.path))

    def text(self, field: Field) -> ColumnElement[Any]:
        return sa.func.jsonb_extract_path_text(field.column, *(sa.literal(p) for p in field.path))

    def type_in(self, field: Field, types: tuple[str, ...]) -> ColumnElement[bool]:
        return sa.func.jsonb_typeof(self._value(field)).in_(types)

    def type_is_null(self, field: Field) -> ColumnElement[bool]:
        kind = sa.func.jsonb_typeof(self._value(field))
        return sa.or_(kind.is_(None), kind == "null")

    def number(self, field: Field) -> ColumnElement[Any]:
        # Only ever evaluated where type_in(number) holds (inside a CASE).
        return sa.cast(self.text(field), sa.Float)

    boolean_text = text


def reader_for(dialect: str) -> JsonReader:
    return PostgresJson() if dialect == "postgresql" else SqliteJson()
