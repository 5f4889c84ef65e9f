"""``descent predict ID rows.csv``: a succeeded job's predictions for the rows of a CSV
file, as a table, CSV (``-o out.csv``) or JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from service.cli.options import JobArg, JsonOpt, TokenOpt, UrlOpt, connect
from service.cli.output import add_row, console, err, num, print_json, table

#: Classes shown each in a column of its own; beyond, the table shows the top one's.
MAX_CLASS_COLUMNS = 6


def _read(data: str) -> bytes:
    if data == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(data).read_bytes()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {data}: {exc.strerror or exc}", param_hint="DATA"
        ) from None


def predict(
    job_id: JobArg,
    data: Annotated[
        str,
        typer.Argument(
            help="A CSV file of raw feature values (- for stdin): a header row naming every "
            "feature the model takes, in any order, then one row per sample.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write the predictions as CSV here (- for stdout): a `prediction` column, "
            "then `probability_<label>` per class.",
            show_default=False,
        ),
    ] = None,
    ignore_extra: Annotated[
        bool,
        typer.Option(
            "--ignore-extra",
            help="Ignore columns the model does not take (an id, the target) instead of "
            "refusing the file.",
        ),
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict with a succeeded job's model: class labels and probabilities, or values in
    the target's units, for each row of a CSV file."""
    if output is not None and as_json:
        raise typer.BadParameter("-o and --json exclude each other", param_hint="--json")
    body = _read(data)
    extra: Literal["refuse", "ignore"] = "ignore" if ignore_extra else "refuse"
    with connect(url, token) as client:
        if output is not None:
            answer = client.predict_csv(job_id, body, extra_columns=extra, fmt="csv")
            rows = max(0, answer.count("\n") - 1)
            if str(output) == "-":
                sys.stdout.write(answer)
                return
            try:
                output.write_text(answer)
            except OSError as exc:
                err(f"error: cannot write {output}: {exc.strerror or exc}")
                raise typer.Exit(1) from None
            err(f"wrote {output} ({rows:,} predictions)")
            return
        doc = client.predict_csv(job_id, body, extra_columns=extra)
    if as_json:
        print_json(doc)
        return
    right = {"justify": "right", "no_wrap": True}
    labels = doc.labels or []
    probabilities = doc.probabilities or []
    each_class = 0 < len(labels) <= MAX_CLASS_COLUMNS
    columns: list[str | tuple[str, dict[str, object]]] = [("ROW", right), "PREDICTION"]
    if each_class:
        columns += [(f"P({label})", right) for label in labels]
    elif labels:
        columns.append(("PROBABILITY", right))
    out = table(*columns)
    for i, prediction in enumerate(doc.predictions):
        cells = [str(i + 1), num(prediction)]
        if each_class:
            cells += [f"{p:.4f}" for p in probabilities[i]]
        elif labels:
            cells.append(f"{max(probabilities[i]):.4f}")
        add_row(out, cells)
    console().print(out)
    err(f"{doc.n_rows:,} rows; job {doc.job_id}, weights of epoch {doc.saved_epoch}")
