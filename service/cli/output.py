"""Every way the user commands write: plain lines, JSON, rich tables and charts.

Data goes to stdout, messages and errors to stderr. Whatever a user or the server chose
— a job's name, a configuration's label, a reason, a parameter's value, a path — is
given to rich as :class:`rich.text.Text`, never as a markup string, so ``try [/]`` or
``digits [adam]`` prints as written instead of failing or losing the brackets.

rich is imported inside the helpers so that ``descent --help`` stays instant.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from service.client import ApiError, ImageFormat

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from service.jobs.schemas import JobRead
    from service.sweeps.schemas import SweepRead, TrialCounts

# -- plain lines -------------------------------------------------------------------------


def err(message: str) -> None:
    typer.echo(message, err=True)


def echo(line: str = "") -> None:
    typer.echo(line)


def print_json(value: BaseModel | Mapping[str, Any] | list[Any] | None) -> None:
    """The API's JSON: a response model dumps back to what the server sent."""
    typer.echo(json.dumps(_jsonable(value), indent=2))


def _jsonable(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def facts(rows: list[tuple[str, str]]) -> None:
    """``key  value`` lines, the keys padded to one width (``descent job show``)."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key.ljust(width)}  {value}")


def report(exc: ApiError) -> None:
    """The API's message, then each field it names (once: the message of a refused spec
    is already the list of its fields)."""
    lines = []
    for f in exc.fields:
        line = f"{f['field']}: {f['message']}"
        if f.get("allowed") and "allowed" not in line:
            line += f" (allowed: {', '.join(map(str, f['allowed']))})"
        lines.append(line)
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in exc.fields)
    if len(lines) == 1 and exc.message == summary:
        err(f"error: {lines[0]}")
        return
    if lines and exc.message == summary:
        err(f"error: {len(lines)} problems with the request ({exc.code}):")
    else:
        err(f"error: {exc.message}")
    for line in lines:
        err(f"  {line}")


def print_created(created: JobRead | SweepRead, *, as_json: bool, follow: bool) -> None:
    """What a new job or sweep prints: its id; with --json its JSON, or with --json and
    --follow nothing yet (the final JSON is printed when it ends)."""
    if not as_json:
        typer.echo(created.id)
    elif not follow:
        print_json(created)


# -- numbers, times, values --------------------------------------------------------------


def num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def when(value: datetime | None) -> str:
    """``2026-11-21 10:00:00`` (the API's times are UTC)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def duration(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None:
        return None
    took = max(0.0, (end - start).total_seconds())
    if took < 60:
        return f"{took:.1f}s"
    seconds = round(took)
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}:{minutes:02d}:{seconds % 60:02d}" if hours else f"{minutes}:{seconds % 60:02d}"


def value_text(value: Any) -> str:
    """A parameter's value: numbers to four significant digits, strings as they are."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | list | dict):
        return json.dumps(value)
    return num(value)


def params_inline(params: Mapping[str, Any] | None) -> str:
    return "  ".join(f"{k}={value_text(v)}" for k, v in (params or {}).items())


def counts_text(counts: TrialCounts | Mapping[str, int] | None) -> str:
    """``2 complete, 1 pruned``: trials by state, in the API's order."""
    from service.sweeps.schemas import TrialCounts

    if isinstance(counts, TrialCounts):
        counts = counts.model_dump()
    counts = counts or {}
    parts = [f"{counts[s]} {s}" for s in TrialCounts.model_fields if counts.get(s)]
    return ", ".join(parts) or "none yet"


def p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


# -- rich --------------------------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        # Piped: no wrapping of long ids at 80 columns.
        out = Console(stderr=stderr, highlight=False, width=200)
    return out


def text(value: str, style: str = "", **kwargs: Any) -> Text:
    """``value`` as rich shows it: literally, brackets and all."""
    from rich.text import Text

    return Text(value, style=style, **kwargs)


def say(out: Console, line: str) -> None:
    """One line of a follower, exactly as written (never read as markup)."""
    out.print(text(line), soft_wrap=True)


def table(*columns: str | tuple[str, dict[str, Any]], **kwargs: Any) -> Table:
    """A table, borderless unless ``kwargs`` say otherwise; a column is a header, or a
    header and ``add_column``'s options. Headers may be user text (a parameter's path):
    they are not markup."""
    from rich.table import Table

    out = Table(**({"box": None, "pad_edge": False, "header_style": "bold"} | kwargs))
    for column in columns:
        header, options = (column, {}) if isinstance(column, str) else column
        out.add_column(text(header), **options)
    return out


def add_row(into: Table, cells: Iterable[str]) -> None:
    into.add_row(*(text(c) for c in cells))


# -- charts ------------------------------------------------------------------------------


def image_format(output: Path) -> ImageFormat:
    """``png`` or ``svg``, from the file name a chart is to be written to."""
    try:
        return ImageFormat(output.suffix.lower().lstrip("."))
    except ValueError:
        raise typer.BadParameter(
            f"{output}: the file must end in .png or .svg", param_hint="'-o' / '--output'"
        ) from None


def write_image(output: Path, data: bytes) -> str:
    """Write a chart; what to tell the user (exit 1 when the file cannot be written)."""
    try:
        output.write_bytes(data)
    except OSError as exc:
        err(f"error: cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(1) from None
    return f"wrote {output} ({len(data):,} bytes)"
