"""The rows of a prediction request, checked and turned into a float32 array.

Three forms, one result (``(rows, n_features)``, columns in the model's feature order):

- JSON ``{"rows": [[...], ...]}``: each row a list in the model's feature order;
- JSON ``{"rows": [{"name": value, ...}, ...]}``: each row an object with every feature
  (the two may be mixed, row by row);
- CSV: a header row naming every feature, in any order, then one line per row.

Every problem is reported where it is: ``rows[3], column 'petal width (cm)'`` for JSON (the
index as in the body, from 0) and ``line 4, column 'petal width (cm)'`` for CSV (physical
lines from 1, the header included, as a text editor counts them and as dataset uploads
report them); up to :data:`MAX_REPORTED` problems at once. Values must be finite numbers
that fit a 32-bit float: JSON's ``true``, ``null``, strings, and the ``NaN``/``Infinity``
Python's parser lets through are refused, as are CSV's empty cells, ``NA``, ``nan`` and
``inf``. Columns (CSV headers, or names of object rows) the model does not take are refused
unless ``extra="ignore"``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

import numpy as np

from service.datasets import csv_parse
from service.datasets.csv_bytes import check_bytes
from service.datasets.csv_errors import DatasetError
from service.errors import Invalid
from service.spec import FieldError

__all__ = ["MAX_REPORTED", "Extra", "from_csv", "from_json"]

Extra = Literal["refuse", "ignore"]
#: Problems reported in one answer; a file that is wrong throughout gets the first ones.
MAX_REPORTED = 10
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: A CSV cell that is a number: plain ASCII decimals, as dataset uploads accept them.
_NUMBER_RE = re.compile(r"[ \t]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t]*", re.ASCII)
_SHOW = 40


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[:_SHOW] + "..."


def _names(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


class _Problems:
    """Collects the request's problems, up to :data:`MAX_REPORTED`, then stops the check."""

    def __init__(self) -> None:
        self.fields: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.fields.append(FieldError(field, message))
        if len(self.fields) >= MAX_REPORTED:
            self.raise_if_any()

    def raise_if_any(self) -> None:
        if not self.fields:
            return
        more = " (the first ones; there may be more)" if len(self.fields) >= MAX_REPORTED else ""
        summary = "; ".join(f.message for f in self.fields)
        raise Invalid(f"{summary}{more}", fields=self.fields)


def _too_many(n: int, max_rows: int) -> str:
    return (
        f"{n:,} rows; a request may carry at most {max_rows:,} (DESCENT_PREDICT_MAX_ROWS): "
        "send them in several requests"
    )


# -- JSON ------------------------------------------------------------------------------


def _value_problem(value: Any) -> str | None:
    """Why one JSON value cannot be a feature value, or None."""
    if isinstance(value, bool) or value is None:
        return f"{json.dumps(value)} is not a number"
    if isinstance(value, str):
        return f"the string {_show(value)} is not a number; send numbers unquoted"
    if isinstance(value, list | dict):
        return "a list or object is not a number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not allowed; values must be finite numbers"
    try:
        if abs(float(value)) > _FLOAT32_MAX:
            return f"{_show(value)} is out of range for a 32-bit float"
    except OverflowError:
        return "the number is out of range for a 32-bit float"
    return None


def _check_values(
    problems: _Problems, values: Sequence[Any], index: int, columns: Sequence[tuple[str, str]]
) -> None:
    """Report the bad values of one row; ``columns`` gives each value's (field, label)."""
    for value, (field, label) in zip(values, columns, strict=True):
        why = _value_problem(value)
        if why:
            problems.add(field, f"rows[{index}], column {label}: {why}")


def from_json(
    body: bytes, *, names: Sequence[str], max_rows: int, extra: Extra = "refuse"
) -> np.ndarray:
    """The rows of a JSON body; :class:`Invalid` naming each problem's row and column."""
    if not body.strip():
        raise Invalid(
            'the body is empty; send {"rows": [[...], ...]} as JSON, or a CSV file',
            fields=[FieldError("body", "required")],
        )
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Invalid(
            f"the body is not valid JSON: {exc}", fields=[FieldError("body", str(exc))]
        ) from None
    if not isinstance(doc, dict):
        message = 'the body must be a JSON object: {"rows": [[...], ...]}'
        raise Invalid(message, fields=[FieldError("body", message)])
    problems = _Problems()
    for key in doc:
        if key != "rows":
            problems.add(str(key), f"unknown field {_show(key)}; the body has one field, rows")
    rows = doc.get("rows")
    if "rows" not in doc:
        problems.add("rows", "rows is required: a list of rows of feature values")
    elif not isinstance(rows, list):
        problems.add("rows", "rows must be a list of rows (lists or objects of feature values)")
    elif not rows:
        problems.add("rows", "rows is empty; send at least one row")
    elif len(rows) > max_rows:
        problems.add("rows", _too_many(len(rows), max_rows))
    problems.raise_if_any()
    assert isinstance(rows, list)

    n = len(names)
    wanted = set(names)
    by_name = itemgetter(*names)
    numeric = {int, float}
    positional = [(str(j), f"{j} ({name!r})") for j, name in enumerate(names)]
    matrix: list[Sequence[Any]] = []
    origins: list[tuple[int, bool]] = []  # per matrix row: its index in the body, by name?
    for i, row in enumerate(rows):
        if isinstance(row, list):
            if len(row) != n:
                problems.add(
                    f"rows.{i}",
                    f"rows[{i}] has {len(row)} values; the model takes {n} features, in this "
                    f"order: {_names(names)}",
                )
                continue
            if not numeric.issuperset(map(type, row)):
                columns = [(f"rows.{i}.{j}", label) for j, label in positional]
                _check_values(problems, row, i, columns)
                continue
            matrix.append(row)
            origins.append((i, False))
        elif isinstance(row, dict):
            keys = row.keys()
            if keys != wanted:
                missing = [name for name in names if name not in row]
                unknown = [k for k in keys if k not in wanted]
                if missing:
                    problems.add(f"rows.{i}", f"rows[{i}] lacks the features {_names(missing)}")
                if unknown and extra == "refuse":
                    problems.add(
                        f"rows.{i}.{unknown[0]}",
                        f"rows[{i}] has unknown features {_names(unknown)}; the model takes "
                        f"{_names(names)} (or send ?extra_columns=ignore)",
                    )
                if missing or (unknown and extra == "refuse"):
                    continue
            values = [by_name(row)] if n == 1 else list(by_name(row))
            if not numeric.issuperset(map(type, values)):
                columns = [(f"rows.{i}.{name}", repr(name)) for name in names]
                _check_values(problems, values, i, columns)
                continue
            matrix.append(values)
            origins.append((i, True))
        else:
            problems.add(
                f"rows.{i}",
                f"rows[{i}] must be a list of {n} numbers or an object of feature name to number",
            )
    problems.raise_if_any()

    def where(i: int, j: int) -> tuple[str, str]:
        index, by_name = origins[i]
        if by_name:
            return f"rows.{index}.{names[j]}", f"rows[{index}], column {names[j]!r}"
        return f"rows.{index}.{j}", f"rows[{index}], column {positional[j][1]}"

    return _to_float32(matrix, problems, where)


def _to_float32(
    matrix: Sequence[Sequence[Any]],
    problems: _Problems,
    where: Callable[[int, int], tuple[str, str]],
) -> np.ndarray:
    """Numbers already checked for type: into float32, refusing what is not finite there.
    ``where(i, j)`` names the field and the place (row and column) of a matrix cell."""
    try:
        values = np.array(matrix, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        values = np.array(
            [[float(v) if abs(v) < 1e308 else math.inf for v in row] for row in matrix],
            dtype=np.float64,
        )
    bad = ~np.isfinite(values) | (np.abs(values) > _FLOAT32_MAX)
    if bad.any():
        for i, j in np.argwhere(bad)[:MAX_REPORTED]:
            field, place = where(int(i), int(j))
            raw = matrix[i][j]
            if isinstance(raw, float) and not math.isfinite(raw):
                why = f"{raw} is not allowed; values must be finite numbers"
            else:
                why = f"{_show(raw)} is out of range for a 32-bit float; values must be finite"
            problems.add(field, f"{place}: {why}")
        problems.raise_if_any()
    return values.astype(np.float32)


# -- CSV -------------------------------------------------------------------------------


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, cells) for each record that is not blank: the dataset
    upload's reader, its errors answered as this route's 422."""
    try:
        yield from csv_parse.records(text)
    except DatasetError as exc:
        raise Invalid(exc.message, fields=[]) from None


def _cell_problem(cell: str) -> str:
    if not cell.strip():
        return "is empty"
    if cell.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity", "na"):
        return "is not allowed; values must be finite numbers (empty cells, NA, nan, inf are not)"
    return "is not a number"


def from_csv(
    data: bytes,
    *,
    names: Sequence[str],
    max_rows: int,
    max_bytes: int,
    max_line_bytes: int,
    field: str = "body",
    extra: Extra = "refuse",
) -> np.ndarray:
    """The rows of a CSV text; :class:`Invalid` naming each problem's line and column.

    ``field`` is the request's part the CSV came in (``body``, or ``file`` of a form).
    """
    try:
        text = check_bytes(data, max_bytes=max_bytes, max_line_bytes=max_line_bytes)
    except DatasetError as exc:
        raise Invalid(exc.message, fields=[FieldError(field, exc.message)]) from None
    try:
        return _parse_csv(text, names=names, max_rows=max_rows, field=field, extra=extra)
    except Invalid as exc:
        if not exc.fields:
            exc.fields = [FieldError(field, exc.message)]
        raise


def _parse_csv(
    text: str, *, names: Sequence[str], max_rows: int, field: str, extra: Extra
) -> np.ndarray:
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise Invalid(f"the CSV is empty; its first line must name the features: {_names(names)}")
    header_line, header = first
    header = [h.strip() for h in header]
    problems = _Problems()
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            problems.add(
                field,
                f"line {header_line}: column {name!r} appears twice (columns {seen[name]} and "
                f"{position})",
            )
        seen.setdefault(name, position)
    missing = [n for n in names if n not in seen]
    unknown = [h for h in header if h not in set(names)]
    if missing:
        problems.add(
            field,
            f"line {header_line}: the header lacks the features {_names(missing)}; it must "
            f"name every feature the model takes: {_names(names)}",
        )
    if unknown and extra == "refuse":
        problems.add(
            field,
            f"line {header_line}: unknown columns {_names(unknown)}; the model takes "
            f"{_names(names)} (drop the others, or send ?extra_columns=ignore)",
        )
    problems.raise_if_any()

    take = [seen[n] - 1 for n in names]
    matrix: list[list[float]] = []
    lines: list[int] = []
    for line, record in records:
        if len(record) != len(header):
            problems.add(
                field,
                f"line {line} has {len(record)} cells but the header has {len(header)} "
                "columns; every line must have one cell per column",
            )
            continue
        if len(lines) >= max_rows:
            problems.add(field, f"line {line}: {_too_many(len(lines) + 1, max_rows)}")
            break
        cells = [record[k] for k in take]
        if all(map(_NUMBER_RE.fullmatch, cells)):
            matrix.append([float(c) for c in cells])
            lines.append(line)
            continue
        for name, cell in zip(names, cells, strict=True):
            if not _NUMBER_RE.fullmatch(cell):
                problems.add(
                    field, f"line {line}, column {name!r}: {_show(cell)} {_cell_problem(cell)}"
                )
    problems.raise_if_any()
    if not matrix:
        raise Invalid(f"the CSV has a header (line {header_line}) but no rows to predict")
    return _to_float32(
        matrix, problems, lambda i, j: (field, f"line {lines[i]}, column {names[j]!r}")
    )
