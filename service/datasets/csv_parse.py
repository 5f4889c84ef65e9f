"""Parse an uploaded CSV file into arrays ready for training.

This module is on the API side, so it uses only the standard library and numpy (no pandas,
no torch).  :func:`parse_csv` takes the raw uploaded bytes and returns a :class:`ParsedDataset`
holding float32 features and a target vector, or raises :class:`DatasetError` with a message a
user can act on.

Line numbers
    Every ``row`` in a :class:`DatasetError` is the 1-based *physical line number in the file*
    (blank lines count too), so the header is line 1 and the first data row is normally line 2,
    matching what a text editor shows.  A record whose quoted field spans several lines is
    reported at the line it starts on.  ``\\n``, ``\\r\\n`` and a lone ``\\r`` each end a
    line, as they do for the ``csv`` module.

Checks, in order (the ones on raw bytes, up to UTF-8, in :mod:`.csv_bytes`)
    size (``max_bytes``), UTF-16/UTF-32 (by byte-order mark, or by the NUL bytes UTF-16 puts
    between ASCII characters), empty file, NUL bytes, line length (``max_line_bytes``, checked
    on the raw bytes with numpy before decoding or running the ``csv`` module, so a single
    huge line is rejected cheaply), UTF-8 (a leading BOM is stripped), the header (first
    non-blank line: names, ``max_columns``) and the target column name, then the data rows in
    file order, reporting the first of: CSV syntax (``csv`` module, ``strict=True``; a quoted
    field may hold at most ``csv.field_size_limit()`` characters, which stops an unterminated
    quote from swallowing the file), cell count, ``max_rows``, a bad feature value or an
    empty, ``nan`` or ``inf`` target; then the minimum row count and the target values.
    Blank lines (empty or only spaces/tabs) are skipped everywhere.

Numbers
    Feature and numeric target cells must be plain ASCII decimal numbers such as ``3``,
    ``-1.5``, ``.5`` or ``2e-4`` (surrounding spaces and tabs are ignored).  ``nan``, ``inf``,
    ``NA``, empty cells, digit-group underscores (``1_000``) and non-ASCII digits are rejected,
    as are values that overflow float32.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np

from service.datasets.csv_bytes import check_file
from service.datasets.csv_errors import DatasetError

__all__ = [
    "MAX_INFERRED_CLASSES",
    "MIN_ROWS",
    "CsvLimits",
    "DatasetError",
    "ParsedDataset",
    "Task",
    "parse_csv",
]

Task = Literal["classification", "regression"]

#: Fewest data rows (after blank lines are skipped) a dataset may have.
MIN_ROWS = 10
#: When the task is inferred, integer targets with more distinct values than this are regression.
MAX_INFERRED_CLASSES = 20

# Rows converted at a time, which bounds the memory held in Python strings: at most
# _CHUNK_ROWS rows and (for wide files) about _CHUNK_CELLS cells.
_CHUNK_ROWS = 4096
_CHUNK_CELLS = 8192
# Bytes of the file decoded at a time.
_READ_BLOCK = 256 * 1024
# Distinct target labels whose strings are shared between rows (beyond, each row keeps
# its own: a regression target has as many values as rows).
_SHARED_LABELS = 4096
_SHOW_CHARS = 40
_SHOW_COLUMNS = 20
# Integers above this are not exact in float64; such targets are not treated as integer labels.
_MAX_EXACT_INT = 2**53

_NUMBER_RE = re.compile(r"[ \t]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t]*", re.ASCII)
# A physical line with its terminator; the same line breaks as the csv module
# and service.datasets.csv_bytes.
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")
# Target cells that stand for a missing value, whatever the task (lower case).
_MISSING_TARGETS = frozenset(
    sign + word for sign in ("", "+", "-") for word in ("nan", "inf", "infinity")
)
_NON_NUMBER_CHAR_RE = re.compile(r"[^0-9eE+\-. \t\0]")
_NUMBER_HELP = (
    "values must be finite decimal numbers such as 3, -1.5 or 2e-4; "
    "empty cells, NA, nan and inf are not allowed"
)


@dataclass(frozen=True)
class CsvLimits:
    """Upper bounds applied while parsing; all sizes are in bytes of the raw upload."""

    max_bytes: int
    max_rows: int
    max_columns: int
    max_line_bytes: int


@dataclass(frozen=True)
class ParsedDataset:
    """A validated dataset.

    ``features`` is float32 with shape ``(n_rows, len(feature_names))``.  ``target`` is int64
    class indices into ``classes`` for classification, float32 for regression (``classes`` is
    then ``None``).
    """

    features: np.ndarray
    target: np.ndarray
    task: Task
    feature_names: list[str]
    target_name: str
    classes: list[str] | None
    n_rows: int


def _show(value: str) -> str:
    """Quote a cell value for an error message, truncated to a readable length."""
    if len(value) > _SHOW_CHARS:
        return repr(value[:_SHOW_CHARS]) + "..."
    return repr(value)


def _show_columns(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOW_COLUMNS])
    if len(names) > _SHOW_COLUMNS:
        shown += f", ... ({len(names) - _SHOW_COLUMNS} more)"
    return shown


def _is_blank(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


def records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line the record starts on, cells)`` for each non-blank record; a malformed
    record raises ``DatasetError`` naming its line (predictions read CSV with it too)."""
    # Lines are fed one by one (not through io.StringIO, which would hold a 4-byte-per-character
    # copy of the whole text); each keeps its terminator so quoted newlines survive.
    return line_records(match.group() for match in _LINE_RE.finditer(text))


def file_lines(f: BinaryIO, *, start: int) -> Iterator[str]:
    """The physical lines of a UTF-8 file (checked by :func:`check_file`) from byte
    ``start``, each with its terminator, decoded a block at a time."""
    f.seek(start)
    decoder = codecs.getincrementaldecoder("utf-8")()
    rest = ""
    while block := f.read(_READ_BLOCK):
        text = rest + decoder.decode(block)
        lines = _LINE_RE.findall(text)
        # The last piece may continue in the next block: a line without its terminator
        # yet, or a \r whose \n is still to come.
        rest = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        yield from lines
    text = rest + decoder.decode(b"", final=True)
    yield from _LINE_RE.findall(text)


def line_records(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """:func:`records` over physical lines (each with its terminator)."""
    reader = csv.reader(lines, delimiter=",", strict=True)
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # line_num is the last line read; for an unterminated quote that is the end of file,
            # so name where the record started too.
            where = f"line {reader.line_num}"
            if reader.line_num != start:
                where = f"the record starting at line {start} (line {reader.line_num})"
            problem = str(exc)
            if "field larger than field limit" in problem:
                problem = (
                    f"a field runs past {csv.field_size_limit():,} characters; "
                    'is a closing quote (") missing?'
                )
            elif "unexpected end of data" in problem:
                problem = 'the file ends inside a quoted field; is a closing quote (") missing?'
            raise DatasetError(f"malformed CSV in {where}: {problem}", row=start) from None
        if not _is_blank(record):
            yield start, record


def _check_header(header: list[str], line: int, limits: CsvLimits) -> list[str]:
    if len(header) > limits.max_columns:
        raise DatasetError(
            f"the header (line {line}) has {len(header)} columns; "
            f"at most {limits.max_columns} are allowed",
            row=line,
        )
    names = [name.strip() for name in header]
    if len(names) < 2:
        raise DatasetError(
            f"the header (line {line}) has {len(names)} column; need at least 2 "
            "(one or more features and a target); is the file comma-separated?",
            row=line,
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            raise DatasetError(
                f"column {position} in the header (line {line}) has an empty name; "
                "every column needs a name",
                row=line,
            )
        if name in seen:
            raise DatasetError(
                f"duplicate column name {_show(name)} in the header (line {line}): "
                f"columns {seen[name]} and {position}; column names must be unique",
                row=line,
                column=name,
            )
        seen[name] = position
    return names


def _target_index(names: list[str], target: str | None) -> int:
    if target is None:
        return len(names) - 1
    wanted = target.strip()
    if wanted not in names:
        raise DatasetError(
            f"target column {_show(target)} is not in the header; "
            f"available columns: {_show_columns(names)}",
            field="target",
            column=target,
        )
    return names.index(wanted)


def _first_bad_number(cells: Sequence[str]) -> int | None:
    """Index of the first cell that is not a decimal number, or ``None``."""
    if all(map(_NUMBER_RE.fullmatch, cells)):
        return None
    return next(i for i, cell in enumerate(cells) if not _NUMBER_RE.fullmatch(cell))


def _to_float64(cells: Sequence[str]) -> tuple[np.ndarray, int | None]:
    """Convert decimal-number cells to float64 (overflow gives inf).

    Returns ``(values, None)``, or ``(values of the cells before it, index)`` for the first cell
    that is not a decimal number.
    """
    # Fast path: if every character could belong to a number, float() (which numpy uses) accepts
    # exactly the cells _NUMBER_RE accepts, so no per-cell regex is needed.  NUL (rejected
    # earlier, so never inside a cell) joins the cells.
    if _NON_NUMBER_CHAR_RE.search("\0".join(cells)) is None:
        try:
            return np.array(cells, dtype=np.float64), None
        except ValueError:
            pass
    bad = _first_bad_number(cells)
    return np.array(cells if bad is None else cells[:bad], dtype=np.float64), bad


def _to_float32(cells: Sequence[str]) -> tuple[np.ndarray, int | None]:
    """Convert to float32; return ``(values, None)`` or ``(partial, index of first bad cell)``.

    A cell is bad if it is not a decimal number or does not fit in a finite float32.
    """
    values64, bad = _to_float64(cells)
    with np.errstate(over="ignore"):
        values = values64.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        # An out-of-range number before the first non-number is the first bad cell.
        return values, int(np.argmin(finite))
    return values, bad


def _first_missing(targets: list[str]) -> int | None:
    """Index of the first empty, ``nan`` or ``inf`` target cell (already stripped), or None."""
    if "" not in targets and not _MISSING_TARGETS.intersection(map(str.lower, targets)):
        return None
    return next(i for i, t in enumerate(targets) if not t or t.lower() in _MISSING_TARGETS)


def _value_error(value: str, what: str, line: int, column: str, hint: str) -> DatasetError:
    if _NUMBER_RE.fullmatch(value):
        problem = "is out of range for a 32-bit float"
    elif not value.strip():
        problem = "is empty"
    else:
        problem = "is not a number"
    return DatasetError(
        f"line {line}, {what} {_show(column)}: {_show(value)} {problem}; {hint}",
        row=line,
        column=column,
    )


class _Builder:
    """Accumulates rows chunk by chunk so memory stays near the size of the result."""

    def __init__(self, names: list[str], target_index: int, capacity: int) -> None:
        self.names = names
        self.target_index = target_index
        self.feature_names = names[:target_index] + names[target_index + 1 :]
        self.features = np.empty((capacity, len(self.feature_names)), dtype=np.float32)
        self.target_cells: list[str] = []
        self.lines = array("q")
        self._chunk: list[list[str]] = []
        self._labels: dict[str, str] = {}
        self._chunk_rows = min(_CHUNK_ROWS, max(1, _CHUNK_CELLS // len(names)))

    def _shared(self, label: str) -> str:
        # A class label repeats on every row of its class: one string for all of them
        # rather than one each (about 50 bytes a row).
        shared = self._labels.get(label)
        if shared is not None:
            return shared
        if len(self._labels) < _SHARED_LABELS:
            self._labels[label] = label
        return label

    @property
    def n_rows(self) -> int:
        return len(self.lines)

    def add(self, line: int, record: list[str]) -> None:
        self._chunk.append(record)
        self.lines.append(line)
        if len(self._chunk) >= self._chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._chunk:
            return
        begin = len(self.target_cells)
        columns = list(zip(*self._chunk, strict=True))
        self._chunk = []
        targets = [self._shared(cell.strip()) for cell in columns.pop(self.target_index)]
        self.target_cells.extend(targets)
        # Report the first bad cell in file order (row first, then column).
        worst: tuple[int, int] | None = None
        for j, cells in enumerate(columns):
            values, bad = _to_float32(cells)
            if bad is None:
                self.features[begin : begin + len(values), j] = values
            elif worst is None or (bad, j) < worst:
                worst = (bad, j)
        missing = _first_missing(targets)
        if missing is not None and (worst is None or missing <= worst[0]):
            line = self.lines[begin + missing]
            target_name = self.names[self.target_index]
            value = targets[missing]
            problem = "is empty" if not value else f"is {_show(value)}, not a finite value"
            raise DatasetError(
                f"line {line}: the target column {_show(target_name)} {problem}; "
                "every row needs a target value (fill it in or remove the row)",
                row=line,
                column=target_name,
            )
        if worst is not None:
            i, j = worst
            raise _value_error(
                columns[j][i],
                "column",
                self.lines[begin + i],
                self.feature_names[j],
                f"feature {_NUMBER_HELP}",
            )

    def result_features(self) -> np.ndarray:
        if self.n_rows == len(self.features):
            return self.features
        return self.features[: self.n_rows].copy()


def _integer_valued(values: np.ndarray) -> bool:
    """All finite integers small enough to be exact in float64."""
    return bool(
        np.isfinite(values).all()
        and (values == np.trunc(values)).all()
        and (np.abs(values) <= _MAX_EXACT_INT).all()
    )


def _regression_target(
    cells: list[str], numbers: np.ndarray, bad: int | None, name: str, lines: array[int]
) -> np.ndarray:
    with np.errstate(over="ignore"):
        values = numbers.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(np.argmin(finite))
    if bad is None:
        return values
    raise _value_error(
        cells[bad],
        "target column",
        lines[bad],
        name,
        f"regression targets must be numeric: {_NUMBER_HELP}",
    )


def _classification_target(
    cells: list[str], numbers: np.ndarray | None, name: str
) -> tuple[np.ndarray, list[str]]:
    if numbers is not None and _integer_valued(numbers):
        unique, inverse = np.unique(numbers, return_inverse=True)
        classes = [str(int(v)) for v in unique]
        target = inverse.astype(np.int64).reshape(-1)
    else:
        classes = sorted(set(cells))
        index = {label: i for i, label in enumerate(classes)}
        target = np.array([index[c] for c in cells], dtype=np.int64)
    if len(classes) < 2:
        raise DatasetError(
            f"target column {_show(name)} has only one class ({_show(classes[0])}); "
            "classification needs at least 2 distinct target values",
            column=name,
        )
    return target, classes


def parse_csv(
    data: bytes | BinaryIO,
    *,
    target: str | None,
    task: Task | None,
    limits: CsvLimits,
) -> ParsedDataset:
    """Validate and parse an uploaded CSV file.

    Args:
        data: the raw file contents, or a binary file holding them (an upload spooled to
            disk), which is read a block at a time: the memory used is that of the result
            plus a few blocks, however large the file.
        target: name of the target column (surrounding spaces are ignored, case matters);
            ``None`` means the last column.
        task: ``"classification"`` or ``"regression"``; ``None`` infers it: if every target is
            a number and (some are not integers or there are more than
            :data:`MAX_INFERRED_CLASSES` distinct values) it is regression, else
            classification.
        limits: size limits.

    Returns:
        The parsed dataset.  Classification classes are the distinct (whitespace-stripped)
        target strings: if all are integer-valued numbers they are normalised (``"1.0"`` ->
        ``"1"``) and sorted numerically, otherwise sorted as strings (by code point).

    Raises:
        DatasetError: if the file or the arguments are not acceptable.
    """
    if task not in (None, "classification", "regression"):
        raise DatasetError(
            f"unknown task {task!r}; expected 'classification' or 'regression'", field="task"
        )
    f = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    start, n_lines = check_file(f, max_bytes=limits.max_bytes, max_line_bytes=limits.max_line_bytes)
    lines = line_records(file_lines(f, start=start))
    first = next(lines, None)
    if first is None:
        raise DatasetError("the file is empty; expected a CSV file with a header row")
    header_line, header = first
    names = _check_header(header, header_line, limits)
    target_index = _target_index(names, target)
    target_name = names[target_index]

    capacity = max(0, min(n_lines - header_line, limits.max_rows))
    builder = _Builder(names, target_index, capacity)
    try:
        for line, record in lines:
            if len(record) != len(names):
                raise DatasetError(
                    f"line {line} has {len(record)} cells but the header has {len(names)} "
                    "columns; every row must have one cell per column",
                    row=line,
                )
            if builder.n_rows >= limits.max_rows:
                raise DatasetError(
                    f"too many rows: line {line} is past the limit of {limits.max_rows} data rows",
                    row=line,
                )
            builder.add(line, record)
    except DatasetError:
        builder.flush()  # a bad value on an earlier line, not yet converted, is reported first
        raise
    builder.flush()
    del lines

    n_rows = builder.n_rows
    if n_rows == 0:
        raise DatasetError(
            f"the file has a header (line {header_line}) but no data rows; "
            f"at least {MIN_ROWS} are needed"
        )
    if n_rows < MIN_ROWS:
        raise DatasetError(f"the file has {n_rows} data rows; at least {MIN_ROWS} are needed")

    cells = builder.target_cells
    numbers, bad = _to_float64(cells)
    if task is None:
        few_integers = (
            bad is None
            and _integer_valued(numbers)
            and len(np.unique(numbers)) <= MAX_INFERRED_CLASSES
        )
        task = "regression" if bad is None and not few_integers else "classification"

    classes: list[str] | None = None
    if task == "regression":
        target_values = _regression_target(cells, numbers, bad, target_name, builder.lines)
    else:
        numeric = numbers if bad is None else None
        target_values, classes = _classification_target(cells, numeric, target_name)

    return ParsedDataset(
        features=builder.result_features(),
        target=target_values,
        task=task,
        feature_names=builder.feature_names,
        target_name=target_name,
        classes=classes,
        n_rows=n_rows,
    )
