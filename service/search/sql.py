"""A parsed filter as a SQLAlchemy expression, and ``sort`` as an ORDER BY.

The meaning (docs/search.md): a comparison with a missing field (or a JSON null) is
*unknown*; with a present one it is true or false — values of different types are never
equal and never ordered, so ``optimizer.lr != 'auto'`` holds for a job whose rate is
0.01 and ``optimizer.lr > 0.001`` fails for one whose rate is ``"auto"``. ``and``, ``or``
and ``not`` follow SQL's three-valued logic (``not`` of unknown is unknown) and a job
matches when the whole filter is true. Every literal is a bound parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from service.errors import Invalid
from service.jobs.models import Job
from service.projects.models import Project
from service.search.fields import Field, JsonReader, UnknownField, reader_for, resolve
from service.search.language import (
    And,
    Compare,
    FilterSyntaxError,
    In,
    IsNull,
    Node,
    Not,
    Or,
    Value,
    parse,
)
from service.spec import FieldError

__all__ = ["filter_clause", "order_by"]

_ORDERING = ("<", "<=", ">", ">=")
_OPS: dict[str, Any] = {
    "in": lambda a, b: a.in_(b),
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _invalid(param: str, message: str, allowed: list[Any] | None = None) -> Invalid:
    return Invalid(f"{param}: {message}", fields=[FieldError(param, message, allowed)])


def _type_of(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, float) else "string"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Compiler:
    def __init__(self, reader: JsonReader) -> None:
        self.reader = reader

    def field(self, name: str, column: int) -> Field:
        try:
            return resolve(name)
        except UnknownField as exc:
            raise _invalid("filter", f"at column {column}: {exc}", exc.allowed or None) from None

    def node(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return sa.and_(*(self.node(n) for n in node.operands))
        if isinstance(node, Or):
            return sa.or_(*(self.node(n) for n in node.operands))
        if isinstance(node, Not):
            return sa.not_(self.node(node.operand))
        if isinstance(node, IsNull):
            field = self.field(node.field, node.column)
            return self.reader.type_is_null(field) if field.is_json else field.column.is_(None)
        if isinstance(node, In):
            field = self.field(node.field, node.column)
            return sa.or_(*(self.compare(field, "=", v, node.column) for v in node.values))
        field = self.field(node.field, node.column)
        return self.compare(field, node.op, node.value, node.column)

    def check(self, field: Field, op: str, value: Value, column: int) -> Value | datetime:
        """422 for what cannot hold whatever the job: a type the field never has, an
        ordering of text, a value outside a closed set. Returns the value to bind."""
        given = _type_of(value)
        where = f"at column {column}"
        if op in _ORDERING and given not in ("number",) and field.type != "time":
            raise _invalid(
                "filter", f"{where}: {field.name} {op}: only numbers (and times) are ordered"
            )
        if op == "contains" and field.type not in (None, "string"):
            raise _invalid(
                "filter", f"{where}: contains is for text, and {field.name} is a {field.type}"
            )
        if field.type == "time":
            if not isinstance(value, str):
                raise _invalid(
                    "filter", f"{where}: compare {field.name} with a quoted ISO 8601 date"
                )
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise _invalid(
                    "filter", f"{where}: {value!r} is not an ISO 8601 date or time"
                ) from None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if field.type is not None and given != field.type:
            raise _invalid("filter", f"{where}: {field.name} is a {field.type}, not a {given}")
        if field.choices is not None and op != "contains" and value not in field.choices:
            raise _invalid(
                "filter", f"{where}: unknown {field.name} {value!r}", list(field.choices)
            )
        return value

    def compare(self, field: Field, op: str, value: Value, column: int) -> ColumnElement[bool]:
        bound = self.check(field, op, value, column)
        if field.name == "project":
            return _project(op, bound)
        if not field.is_json:
            if op == "contains":
                assert isinstance(bound, str)
                # As text: an enum column (status) would read the pattern as a member.
                as_text = sa.type_coerce(field.column, sa.String)
                return as_text.ilike(_like(bound), escape="\\")
            return _OPS[op](field.column, bound)
        given = _type_of(value)
        r = self.reader
        if given == "number":
            typed, json_types = r.number(field), ("number",)
        elif given == "bool":
            typed, json_types = r.boolean_text(field), ("boolean",)
            bound = "true" if value else "false"
        else:
            typed, json_types = r.text(field), ("string",)
        if op == "contains":
            assert isinstance(bound, str)
            test = typed.ilike(_like(bound), escape="\\")
        else:
            test = _OPS[op](typed, sa.literal(bound, sa.Float if given == "number" else sa.String))
        # Present with another type: never equal, never ordered. Missing or null: unknown.
        return sa.case(
            (r.type_in(field, json_types), test),
            (sa.not_(r.type_is_null(field)), sa.true() if op == "!=" else sa.false()),
            else_=sa.null(),
        )


def _projects_named(op: str, value: Any) -> Any:
    """The ids of the projects whose name compares so (anyone's: a job's project is its
    owner's, so the others' never match it)."""
    name = sa.type_coerce(Project.name, sa.String)
    test = name.ilike(_like(value), escape="\\") if op == "contains" else _OPS[op](name, value)
    return sa.select(Project.id).where(test)


def _project(op: str, value: Any) -> ColumnElement[bool]:
    """``project`` compared: unknown for a job in no project, else whether its project's
    name compares so — read through ``project_id``, so the planner can hash the few
    projects rather than look one up per job."""
    return sa.case(
        (Job.project_id.is_(None), sa.null()),
        else_=Job.project_id.in_(_projects_named(op, value)),
    )


def _contains(field: Field, value: Value) -> ColumnElement[bool]:
    """``column @> {"a": {"b": value}}``: true wherever ``field = value`` is."""
    doc: Any = value
    for part in reversed(field.path):
        doc = {part: doc}
    return field.column.op("@>")(sa.literal(doc, JSONB))


def _index_hints(tree: Node) -> list[ColumnElement[bool]]:
    """PostgreSQL: for each equality (or ``in``) on the spec or a tag among the filter's
    top-level ``and``s, the containment it implies, which the GIN indexes answer. Only
    there: where a whole filter must be true, a false containment and an unknown
    comparison exclude a job alike, so adding it changes no answer."""
    hints: list[ColumnElement[bool]] = []
    for node in tree.operands if isinstance(tree, And) else (tree,):
        if getattr(node, "field", None) == "project":
            if isinstance(node, Compare) and node.op == "=":
                hints.append(Job.project_id.in_(_projects_named("=", node.value)))
            elif isinstance(node, In):
                hints.append(Job.project_id.in_(_projects_named("in", node.values)))
            continue
        values: tuple[Value, ...]
        if isinstance(node, Compare) and node.op == "=":
            field, values = resolve(node.field), (node.value,)
        elif isinstance(node, In):
            field, values = resolve(node.field), node.values
        else:
            continue
        if field.is_json and field.column.key in ("spec", "tags"):
            hints.append(sa.or_(*(_contains(field, v) for v in values)))
    return hints


def filter_clause(text: str, dialect: str) -> ColumnElement[bool]:
    """The WHERE clause of filter ``text``; :class:`Invalid` (422) naming the column."""
    try:
        tree = parse(text)
    except FilterSyntaxError as exc:
        raise _invalid("filter", str(exc)) from None
    # A job matches when the filter is true; unknown (SQL NULL) is no match.
    clause = _Compiler(reader_for(dialect)).node(tree)
    if dialect == "postgresql":
        return sa.and_(*_index_hints(tree), clause)
    return clause


#: The columns ``sort`` has always taken (kept first in the documented list).
PLAIN_SORTS = ("created_at", "started_at", "finished_at", "name", "status", "epochs_completed")


def order_by(sort: str, dialect: str) -> list[Any]:
    """ORDER BY for ``sort``: a field a filter may name, ``-`` first for descending;
    missing values last, then the job's id (a stable order for paging)."""
    name = sort.removeprefix("-")
    descending = sort.startswith("-")
    try:
        field = resolve(name)
    except UnknownField as exc:
        message = f"cannot sort by {sort!r}: {exc}"
        raise _invalid("sort", message, [*PLAIN_SORTS, "<any filter field>", "-<…>"]) from None
    keys: list[Any]
    if not field.is_json:
        keys = [field.column]
    else:
        r = reader_for(dialect)
        number = sa.case((r.type_in(field, ("number",)), r.number(field)), else_=sa.null())
        text = sa.case((r.type_in(field, ("string",)), r.text(field)), else_=sa.null())
        # A spec field can hold numbers and text ("auto"): numbers first, then text.
        keys = [number] if field.type == "number" else [text] if field.type else [number, text]
    # NULLS LAST only where there can be nulls: on a NOT NULL column (created_at) the
    # ordering then matches the index (owner_id, created_at, id), read backwards.
    nullable = field.is_json or getattr(field.column, "nullable", True)
    ordered = [k.desc() if descending else k.asc() for k in keys]
    if nullable:
        ordered = [k.nulls_last() for k in ordered]
    # Ties by id, in the same direction: a stable order for paging.
    return [*ordered, Job.id.desc() if descending else Job.id.asc()]
