"""Tests for service.datasets.csv_parse: happy paths and every user-facing error."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

from service.datasets.csv_parse import (
    CsvLimits,
    DatasetError,
    ParsedDataset,
    parse_csv,
)

LIMITS = CsvLimits(max_bytes=10_000_000, max_rows=1_000, max_columns=50, max_line_bytes=10_000)


def make_csv(header: str, rows: list[str], *, newline: str = "\n") -> bytes:
    return (newline.join([header, *rows]) + newline).encode("utf-8")


def numeric_rows(n: int = 12, labels: list[str] | None = None) -> list[str]:
    labels = labels or ["0", "1", "2"]
    return [f"{i},{i * 0.5},{labels[i % len(labels)]}" for i in range(n)]


def parse(
    data: bytes,
    *,
    target: str | None = None,
    task: str | None = None,
    limits: CsvLimits = LIMITS,
) -> ParsedDataset:
    return parse_csv(data, target=target, task=task, limits=limits)  # type: ignore[arg-type]


def parse_error(data: bytes, **kwargs: object) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        parse(data, **kwargs)  # type: ignore[arg-type]
    err = info.value
    assert isinstance(err, ValueError)
    assert str(err) == err.message
    return err


# --------------------------------------------------------------------------- happy paths


def test_numeric_int_labels_classification() -> None:
    result = parse(make_csv("x1,x2,label", numeric_rows(12, ["2", "0", "1"])))
    assert result.task == "classification"
    assert result.classes == ["0", "1", "2"]
    assert result.feature_names == ["x1", "x2"]
    assert result.target_name == "label"
    assert result.n_rows == 12
    assert result.features.dtype == np.float32
    assert result.features.shape == (12, 2)
    assert result.features[3].tolist() == [3.0, 1.5]
    assert result.target.dtype == np.int64
    # labels cycle 2, 0, 1 -> indices 2, 0, 1
    assert result.target[:6].tolist() == [2, 0, 1, 2, 0, 1]


def test_int_labels_sorted_numerically_and_normalised() -> None:
    rows = numeric_rows(12, ["10", "9.0", "-1", "2"])
    result = parse(make_csv("a,b,y", rows))
    assert result.task == "classification"
    assert result.classes == ["-1", "2", "9", "10"]  # numeric, not lexicographic, order
    assert result.target[:4].tolist() == [3, 2, 0, 1]


def test_one_and_one_point_zero_are_the_same_class() -> None:
    result = parse(make_csv("a,b,y", numeric_rows(12, ["1", "1.0", "0"])))
    assert result.classes == ["0", "1"]
    assert result.target[:3].tolist() == [1, 1, 0]


def test_string_labels_sorted_lexicographically() -> None:
    result = parse(make_csv("a,b,species", numeric_rows(12, ["setosa", " virginica ", "Iris"])))
    assert result.task == "classification"
    assert result.classes == ["Iris", "setosa", "virginica"]  # stripped, code-point order
    assert result.target[:3].tolist() == [1, 2, 0]


def test_mixed_labels_are_strings() -> None:
    result = parse(make_csv("a,b,y", numeric_rows(12, ["10", "9", "cat"])))
    assert result.classes == ["10", "9", "cat"]


def test_regression_inferred_from_non_integer_targets() -> None:
    rows = [f"{i},{i + 1},{i * 1.25}" for i in range(12)]
    result = parse(make_csv("a,b,price", rows))
    assert result.task == "regression"
    assert result.classes is None
    assert result.target.dtype == np.float32
    assert result.target[4] == pytest.approx(5.0)


def test_regression_inferred_from_many_distinct_integers() -> None:
    rows = [f"{i},{i},{i * 3}" for i in range(25)]  # 25 distinct integers > 20
    result = parse(make_csv("a,b,y", rows))
    assert result.task == "regression"
    assert result.target.tolist() == [float(i * 3) for i in range(25)]


def test_twenty_distinct_integers_is_classification() -> None:
    rows = [f"{i},{i},{i % 20}" for i in range(40)]
    result = parse(make_csv("a,b,y", rows))
    assert result.task == "classification"
    assert len(result.classes or []) == 20


def test_explicit_task_overrides_inference() -> None:
    data = make_csv("a,b,y", numeric_rows(12, ["0", "1"]))
    reg = parse(data, task="regression")
    assert reg.task == "regression"
    assert reg.target.dtype == np.float32
    assert reg.target[:3].tolist() == [0.0, 1.0, 0.0]

    many = make_csv("a,b,y", [f"{i},{i},{i * 0.5}" for i in range(12)])
    cls = parse(many, task="classification")
    assert cls.task == "classification"
    assert cls.classes is not None and len(cls.classes) == 12
    # not integers, so string order
    assert cls.classes[:3] == ["0.0", "0.5", "1.0"]


def test_bom_is_stripped() -> None:
    data = b"\xef\xbb\xbf" + make_csv("first,second,y", numeric_rows())
    result = parse(data)
    assert result.feature_names == ["first", "second"]
    assert result.target_name == "y"


def test_target_none_picks_last_column_and_named_target_any_position() -> None:
    data = make_csv("y,a,b", [f"{i % 2},{i},{i * 2}" for i in range(12)])
    last = parse(data)
    assert last.target_name == "b"
    assert last.feature_names == ["y", "a"]

    named = parse(data, target="y")
    assert named.target_name == "y"
    assert named.feature_names == ["a", "b"]
    assert named.classes == ["0", "1"]
    assert named.features[5].tolist() == [5.0, 10.0]


def test_header_names_are_stripped() -> None:
    result = parse(make_csv(" a , b ,  y ", numeric_rows()), target="y")
    assert result.feature_names == ["a", "b"]
    assert result.target_name == "y"


def test_blank_lines_skipped_and_crlf() -> None:
    rows = numeric_rows(12)
    rows.insert(3, "")
    rows.insert(7, "   ")
    data = b"\r\n" + make_csv("a,b,y", rows, newline="\r\n") + b"\r\n\r\n"
    result = parse(data)
    assert result.n_rows == 12
    assert result.features[:, 0].tolist() == [float(i) for i in range(12)]


def test_quoted_fields_with_commas_and_newlines() -> None:
    rows = [f'{i},"{i}.5","class, {chr(65 + i % 2)}"' for i in range(12)]
    rows[0] = '0," 0.5 ","class,\nA"'  # quoted field spanning two physical lines
    result = parse(make_csv('"x, first","x ""second""",y', rows))
    assert result.feature_names == ["x, first", 'x "second"']
    assert result.classes == ["class,\nA", "class, A", "class, B"]  # "\n" sorts before " "
    assert result.features[0].tolist() == [0.0, 0.5]


def test_number_formats_accepted() -> None:
    values = ["1", "-2", "+3", ".5", "4.", "1e3", "-2.5E-2", " 7 ", "\t8", "0", "1e-40", "9"]
    rows = [f"{v},{i % 2}" for i, v in enumerate(values)]
    result = parse(make_csv("x,y", rows))
    assert result.features[:, 0].tolist() == pytest.approx(
        [1, -2, 3, 0.5, 4, 1000, -0.025, 7, 8, 0, 1e-40, 9]
    )


def test_memoryview_input_accepted() -> None:
    data = make_csv("a,b,y", numeric_rows())
    assert parse(memoryview(data)).n_rows == 12  # type: ignore[arg-type]


# --------------------------------------------------------------------------- byte-level errors


def test_too_large() -> None:
    data = make_csv("a,b,y", numeric_rows())
    limits = CsvLimits(max_bytes=len(data) - 1, max_rows=100, max_columns=10, max_line_bytes=100)
    err = parse_error(data, limits=limits)
    assert str(len(data) - 1) in err.message
    assert err.field == "file"


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\n  \r\n"])
def test_empty_file(data: bytes) -> None:
    err = parse_error(data)
    assert "empty" in err.message


def test_nul_bytes() -> None:
    rows = numeric_rows()
    rows[2] = "2,1\x00,0"
    err = parse_error(make_csv("a,b,y", rows))
    assert "NUL byte (0x00) at line 4 (byte offset 25)" in err.message
    assert "plain-text CSV" in err.message
    assert err.row == 4


def test_invalid_utf8_names_line() -> None:
    data = make_csv("a,b,y", numeric_rows()).replace(b"5,2.5,2", b"5,2.5,\xff\xfe")
    err = parse_error(data)
    assert "line 7" in err.message
    offset = data.index(b"\xff")
    assert f"byte 0xff at byte offset {offset}" in err.message
    assert "UTF-8" in err.message
    assert err.row == 7


def test_latin1_file_rejected() -> None:
    data = make_csv("a,b,caf\u00e9", numeric_rows()).decode("utf-8").encode("latin-1")
    err = parse_error(data)
    assert err.row == 1
    assert "must be encoded as UTF-8" in err.message


def test_line_too_long() -> None:
    rows = numeric_rows()
    rows[4] = "4," + "1" * 200 + ",1"
    limits = CsvLimits(max_bytes=10_000, max_rows=100, max_columns=10, max_line_bytes=100)
    err = parse_error(make_csv("a,b,y", rows, newline="\r\n"), limits=limits)
    assert err.row == 6
    assert "line 6" in err.message and "100 bytes" in err.message


def test_huge_single_line_rejected_in_bounded_memory() -> None:
    data = b"a,b,y\n" + b"1" * (32 * 1024 * 1024) + b"\n"
    limits = CsvLimits(
        max_bytes=64 * 1024 * 1024, max_rows=100, max_columns=10, max_line_bytes=1024 * 1024
    )
    tracemalloc.start()
    try:
        err = parse_error(data, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The line is found by scanning in blocks (a few block-sized temporaries), never by
    # decoding, splitting or copying the 32 MiB.
    assert peak < 16 * 1024 * 1024, peak
    assert err.row == 2
    assert "line 2" in err.message


# --------------------------------------------------------------------------- csv syntax


def test_broken_quoting() -> None:
    rows = numeric_rows()
    rows[1] = '1,"0.5"x,1'
    err = parse_error(make_csv("a,b,y", rows))
    assert err.row == 3
    assert "malformed CSV" in err.message and "line 3" in err.message


def test_unterminated_quote_names_start_line() -> None:
    rows = numeric_rows()
    rows[5] = '5,"2.5,1'
    err = parse_error(make_csv("a,b,y", rows))
    assert err.row == 7
    assert "starting at line 7" in err.message


# --------------------------------------------------------------------------- header errors


def test_empty_column_name() -> None:
    err = parse_error(make_csv("a,,y", numeric_rows()))
    assert "column 2" in err.message and "empty name" in err.message
    assert err.row == 1


def test_trailing_comma_in_header_is_empty_name() -> None:
    err = parse_error(make_csv("a,b,y,", numeric_rows()))
    assert "column 4" in err.message


def test_duplicate_column_name() -> None:
    err = parse_error(make_csv("a, b ,b", numeric_rows()))
    assert err.column == "b"
    assert "duplicate" in err.message and "'b'" in err.message
    assert "columns 2 and 3" in err.message


def test_too_many_columns() -> None:
    header = ",".join(f"c{i}" for i in range(6))
    limits = CsvLimits(max_bytes=10_000, max_rows=100, max_columns=5, max_line_bytes=1000)
    err = parse_error(make_csv(header, []), limits=limits)
    assert "6 columns" in err.message and "at most 5" in err.message


def test_single_column() -> None:
    err = parse_error(make_csv("y", [str(i % 2) for i in range(12)]))
    assert "at least 2" in err.message


def test_target_not_in_header() -> None:
    err = parse_error(make_csv("a,b,y", numeric_rows()), target="label")
    assert err.field == "target"
    assert err.column == "label"
    assert "'label'" in err.message
    assert "'a', 'b', 'y'" in err.message


def test_unknown_task() -> None:
    err = parse_error(make_csv("a,b,y", numeric_rows()), task="clustering")
    assert err.field == "task"


# --------------------------------------------------------------------------- row errors


def test_ragged_row() -> None:
    rows = numeric_rows()
    rows[3] = "3,1.5"
    err = parse_error(make_csv("a,b,y", rows))
    assert err.row == 5
    assert "line 5 has 2 cells" in err.message and "3 columns" in err.message


def test_too_many_rows() -> None:
    limits = CsvLimits(max_bytes=10_000, max_rows=11, max_columns=5, max_line_bytes=1000)
    err = parse_error(make_csv("a,b,y", numeric_rows(12)), limits=limits)
    assert err.row == 13
    assert "11 data rows" in err.message
    rows = numeric_rows(12)
    rows[0] = "0,x,0"
    assert parse_error(make_csv("a,b,y", rows), limits=limits).row == 2


def test_too_few_rows() -> None:
    rows = numeric_rows(9)
    rows.insert(2, "")  # blank lines don't count
    err = parse_error(make_csv("a,b,y", rows))
    assert "9 data rows" in err.message and "at least 10" in err.message


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("nan", "is not a number"),
        ("inf", "is not a number"),
        ("-Infinity", "is not a number"),
        ("", "is empty"),
        ("  ", "is empty"),
        ("NA", "is not a number"),
        ("abc", "is not a number"),
        ("1_000", "is not a number"),
        ("\u0663", "is not a number"),  # Arabic-Indic digit three: float() accepts it
        ("1e39", "out of range"),  # finite in float64, inf in float32
        ("1e400", "out of range"),
    ],
)
def test_bad_feature_value(bad: str, problem: str) -> None:
    rows = numeric_rows()
    rows[6] = f"6,{bad},0"
    err = parse_error(make_csv("a,width,y", rows))
    assert err.row == 8
    assert err.column == "width"
    assert "line 8" in err.message and "'width'" in err.message
    assert problem in err.message
    assert repr(bad) in err.message


def test_first_bad_feature_in_file_order() -> None:
    rows = numeric_rows()
    rows[2] = "x,1,0"  # column a, line 4
    rows[1] = "1,y,0"  # column b, line 3: earlier in the file
    err = parse_error(make_csv("a,b,y", rows))
    assert (err.row, err.column) == (3, "b")


def test_overflow_before_non_number_in_same_column_is_reported_first() -> None:
    rows = numeric_rows()
    rows[2] = "2,1e39,0"
    rows[5] = "5,oops,0"
    err = parse_error(make_csv("a,b,y", rows))
    assert err.row == 4
    assert "out of range" in err.message


def test_errors_reported_in_file_order() -> None:
    rows = numeric_rows()
    rows[4] = "4,2.0,"  # empty target, line 6
    rows[2] = "2,oops,0"  # bad feature, line 4
    err = parse_error(make_csv("a,b,y", rows))
    assert (err.row, err.column) == (4, "b")
    rows[2] = "2,1.0,0"
    rows[7] = "7,oops,0"
    err = parse_error(make_csv("a,b,y", rows))
    assert (err.row, err.column) == (6, "y")
    for later in ["8,1", '8,"1"x,1']:  # wrong cell count, broken quoting
        rows[8] = later
        err = parse_error(make_csv("a,b,y", rows))
        assert (err.row, err.column) == (6, "y")


def test_large_file_across_chunks() -> None:
    n = 10_000  # several internal chunks
    rows = [f"{i},{-i / 4},{i % 7}" for i in range(n)]
    rows.insert(5000, "")
    data = make_csv("a,b,y", rows)
    result = parse(data, limits=CsvLimits(10_000_000, 100_000, 10, 1000))
    assert result.n_rows == n
    assert result.features.shape == (n, 2)
    assert result.features[:, 0].tolist() == [float(i) for i in range(n)]
    assert result.features[-1, 1] == pytest.approx(-(n - 1) / 4)
    assert result.target.tolist() == [i % 7 for i in range(n)]
    assert result.classes == [str(k) for k in range(7)]

    rows[9000] = "8999,x,1"  # line 9002: header, 9000 rows before it and one blank line
    err = parse_error(make_csv("a,b,y", rows), limits=CsvLimits(10_000_000, 100_000, 10, 1000))
    assert (err.row, err.column) == (9002, "b")


def test_bad_value_truncated() -> None:
    rows = numeric_rows()
    rows[0] = "0," + "z" * 100 + ",0"
    err = parse_error(make_csv("a,b,y", rows))
    assert "'" + "z" * 40 + "'..." in err.message
    assert "z" * 41 not in err.message


# --------------------------------------------------------------------------- target errors


@pytest.mark.parametrize("task", [None, "classification", "regression"])
def test_empty_target(task: str | None) -> None:
    rows = numeric_rows()
    rows[8] = "8,4.0, "
    err = parse_error(make_csv("a,b,y", rows), task=task)
    assert err.row == 10
    assert err.column == "y"
    assert "line 10" in err.message and "empty" in err.message


@pytest.mark.parametrize("bad", ["cat", "1e39"])
def test_regression_needs_numeric_target(bad: str) -> None:
    rows = [f"{i},{i},{i * 0.5}" for i in range(12)]
    rows[4] = f"4,4,{bad}"
    err = parse_error(make_csv("a,b,price", rows), task="regression")
    assert err.row == 6
    assert err.column == "price"
    assert "line 6" in err.message and "'price'" in err.message and repr(bad) in err.message
    assert "regression" in err.message


def test_inferred_regression_with_overflowing_target() -> None:
    rows = [f"{i},{i},{i * 0.5}" for i in range(12)]
    rows[2] = "2,2,1e300"
    err = parse_error(make_csv("a,b,y", rows))
    assert err.row == 4
    assert "out of range" in err.message


def test_non_numeric_target_inferred_as_classification() -> None:
    rows = [f"{i},{i},{i * 0.5}" for i in range(12)]
    rows[4] = "4,4,n/a"
    result = parse(make_csv("a,b,y", rows))
    assert result.task == "classification"
    assert "n/a" in (result.classes or [])


@pytest.mark.parametrize("task", [None, "classification"])
def test_single_class(task: str | None) -> None:
    err = parse_error(make_csv("a,b,y", numeric_rows(12, ["yes"])), task=task)
    assert err.column == "y"
    assert "only one class" in err.message and "at least 2" in err.message


def test_error_survives_pickling() -> None:
    err = DatasetError("bad", field="target", row=3, column="y")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.message, copy.field, copy.row, copy.column) == ("bad", "target", 3, "y")
    assert str(copy) == "bad"


# --------------------------------------------------------------------------- hostile content


@pytest.mark.parametrize(
    ("encoding", "name"),
    [
        ("utf-16", "UTF-16"),  # with a byte-order mark (little-endian here)
        ("utf-16-be", "UTF-16 (big-endian)"),  # without one
        ("utf-16-le", "UTF-16 (little-endian)"),
        ("utf-32", "UTF-32"),
    ],
)
def test_utf16_and_utf32_files_are_named(encoding: str, name: str) -> None:
    data = make_csv("a,b,y", numeric_rows()).decode("utf-8").encode(encoding)
    err = parse_error(data)
    assert name in err.message
    assert "save it as UTF-8" in err.message
    assert err.field == "file"


def test_utf8_with_nul_free_non_ascii_is_not_mistaken_for_utf16() -> None:
    result = parse(make_csv("größe,länge,klasse", numeric_rows(12, ["ä", "ö"])))
    assert result.feature_names == ["größe", "länge"]
    assert result.classes == ["ä", "ö"]


def test_nul_at_the_start_of_an_otherwise_text_file() -> None:
    err = parse_error(b"\x00" + make_csv("a,b,y", numeric_rows()))
    assert "NUL byte" in err.message and "line 1" in err.message and "byte offset 0" in err.message


def test_unterminated_quote_cannot_swallow_the_file() -> None:
    # An opening quote on line 3 and none after it: the csv module would read the rest of
    # the file into one field; its field size limit stops it and the error says why.
    rows = [f"{i},{i * 0.5},{i % 3}" for i in range(100_000)]
    rows[1] = '1,"0.5,1'
    limits = CsvLimits(max_bytes=10_000_000, max_rows=200_000, max_columns=5, max_line_bytes=1000)
    err = parse_error(make_csv("a,b,y", rows), limits=limits)
    assert err.row == 3
    assert "starting at line 3" in err.message
    assert "closing quote" in err.message and "131,072 characters" in err.message


def test_quote_left_open_at_the_end_of_the_file() -> None:
    rows = numeric_rows()
    rows[-1] = '11,"5.5,2'
    err = parse_error(make_csv("a,b,y", rows))
    assert err.row == 13
    assert "ends inside a quoted field" in err.message and "closing quote" in err.message


def test_header_only() -> None:
    for data in (b"a,b,y\n", b"a,b,y", b"\n\na,b,y\r\n\r\n"):
        err = parse_error(data)
        assert "header" in err.message and "no data rows" in err.message


@pytest.mark.parametrize("task", [None, "classification", "regression"])
@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-Infinity", "+INF"])
def test_non_finite_target(task: str | None, bad: str) -> None:
    rows = [f"{i},{i},{i % 2}" for i in range(12)]
    rows[4] = f"4,4,{bad}"
    err = parse_error(make_csv("a,b,y", rows), task=task)
    assert (err.row, err.column) == (6, "y")
    assert "line 6" in err.message and repr(bad) in err.message and "finite" in err.message


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "Infinity", "NaN"])
def test_non_finite_feature(bad: str) -> None:
    rows = numeric_rows()
    rows[3] = f"3,{bad},0"
    err = parse_error(make_csv("a,b,y", rows))
    assert (err.row, err.column) == (5, "b")
    assert "is not a number" in err.message and "nan and inf are not allowed" in err.message


def test_too_many_cells_in_a_data_row() -> None:
    rows = numeric_rows()
    rows[2] = "2," + ",".join(["1"] * 10_000)
    err = parse_error(make_csv("a,b,y", rows), limits=CsvLimits(10_000_000, 1000, 50, 100_000))
    assert err.row == 4
    assert "10001 cells" in err.message and "3 columns" in err.message


def test_wide_file_is_converted_in_small_chunks() -> None:
    # 600 columns: a chunk holds about 65536 cells, so 109 rows; 300 rows take three.
    n_cols, n_rows = 600, 300
    header = ",".join(f"f{j}" for j in range(n_cols)) + ",y"
    rows = [",".join(str(i + j) for j in range(n_cols)) + f",{i % 2}" for i in range(n_rows)]
    limits = CsvLimits(max_bytes=10_000_000, max_rows=1000, max_columns=1000, max_line_bytes=10**5)
    result = parse(make_csv(header, rows), limits=limits)
    assert result.features.shape == (n_rows, n_cols)
    assert result.features[250, 7] == 257.0
    rows[250] = rows[250].replace(",257,", ",oops,", 1)
    err = parse_error(make_csv(header, rows), limits=limits)
    assert (err.row, err.column) == (252, "f7")


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_long_line_found_across_scan_blocks(monkeypatch: pytest.MonkeyPatch, newline: str) -> None:
    from service.datasets import csv_bytes

    monkeypatch.setattr(csv_bytes, "SCAN_BLOCK", 16)  # many blocks, some without a break
    limits = CsvLimits(max_bytes=100_000, max_rows=100, max_columns=10, max_line_bytes=60)
    rows = numeric_rows(20)
    assert parse(make_csv("a,b,y", rows, newline=newline), limits=limits).n_rows == 20
    rows[9] = "9," + "1" * 100 + ",0"
    err = parse_error(make_csv("a,b,y", rows, newline=newline), limits=limits)
    assert err.row == 11
    assert "line 11 is 104 bytes long" in err.message and "at most 60 bytes" in err.message


@pytest.mark.parametrize("block", [16, 4 * 1024 * 1024])
def test_long_last_line_without_a_newline(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    from service.datasets import csv_bytes

    monkeypatch.setattr(csv_bytes, "SCAN_BLOCK", block)
    limits = CsvLimits(max_bytes=100_000, max_rows=100, max_columns=10, max_line_bytes=60)
    data = make_csv("a,b,y", numeric_rows()) + b"12," + b"2" * 70
    err = parse_error(data, limits=limits)
    assert err.row == 14
    assert "line 14 is 73 bytes long" in err.message


def test_a_huge_line_is_found_before_it_is_decoded() -> None:
    # Invalid UTF-8 inside the over-long line: the length is what gets reported.
    data = b"a,b,y\n" + b"\xff" * 2000 + b"\n" + make_csv("a,b,y", numeric_rows())
    limits = CsvLimits(max_bytes=100_000, max_rows=100, max_columns=10, max_line_bytes=1000)
    err = parse_error(data, limits=limits)
    assert err.row == 2 and "2000 bytes long" in err.message


def test_quoted_field_with_many_newlines_counts_lines_from_its_start() -> None:
    rows = numeric_rows()
    rows[3] = '3,1.5,"a' + "\n" * 50 + 'b"'
    result = parse(make_csv("a,b,y", rows), task="classification")
    assert result.n_rows == 12
    rows[6] = "6,x,0"  # after the 50 extra lines
    err = parse_error(make_csv("a,b,y", rows), task="classification")
    assert err.row == 8 + 50
