"""What the user commands share: their common options, the exit codes, and the client
they talk through (:func:`connect`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from service.cli.output import err, report
from service.client import ApiError, DescentError, JobStatus

if TYPE_CHECKING:
    from service.client import Client

#: The exit code of a followed job or sweep, by how it ended (a sweep's end states are
#: named as a job's are).
EXIT_CODES: dict[str, int] = {
    JobStatus.SUCCEEDED: 0,
    JobStatus.FAILED: 3,
    JobStatus.DIVERGED: 4,
    JobStatus.CANCELLED: 5,
    JobStatus.PRUNED: 5,
}
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The API's URL (default: $DESCENT_URL, else the config file's `url`, else "
        "http://127.0.0.1:8000).",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="API token (default: $DESCENT_TOKEN, else the config file's `token`, else the "
        "local admin's, as `descent token` prints it).",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON, and nothing else, on stdout.")
]
JobArg = Annotated[str, typer.Argument(help="The job's id.", show_default=False)]
SweepArg = Annotated[str, typer.Argument(help="The sweep's id.", show_default=False)]
ChartOpt = Annotated[
    Path,
    typer.Option(
        "-o",
        "--output",
        help="Where to write the chart: a .png or .svg file.",
        show_default=False,
    ),
]


@contextmanager
def connect(url: str | None, token: str | None) -> Iterator[Client]:
    """A configured client; any :class:`DescentError` becomes a message and exit 1."""
    from service.client import Client

    try:
        with Client.from_config(url=url, token=token) as client:
            yield client
    except ApiError as exc:
        report(exc)
        raise typer.Exit(EXIT_ERROR) from None
    except DescentError as exc:
        err(f"error: {exc.message}")
        raise typer.Exit(EXIT_ERROR) from None


Choice = TypeVar("Choice", bound=StrEnum)


def choice(enum: type[Choice]) -> Callable[[str], Choice]:
    """The parser of an option that takes one of ``enum``'s values: a usage error (exit 2)
    that names them all for any other, before anything is sent."""

    def parse(value: str | Choice) -> Choice:
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(enum)
            raise typer.BadParameter(f"{value!r}: choose one of {allowed}") from None

    return parse


def listed(enum: type[StrEnum]) -> str:
    """``a, b or c``: the values of ``enum``, for a help text."""
    values = [str(v) for v in enum]
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]
