"""``descent lab …``: an LR range test of a job spec (``lr-find``), the loss landscape of
a finished job (``landscape``) and their charts (``plot``); ``descent job result`` tells
what they found. Exit codes as for ``descent job submit``: 0 succeeded, 1 a request
failed, 2 a usage error, 3 failed, 5 cancelled, 130 Ctrl-C while following.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.cli.follow import follow_job_and_exit, outcome_lines
from service.cli.options import (
    ChartOpt,
    JobArg,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    choice,
    connect,
)
from service.cli.output import err, image_format, num, print_created, write_image
from service.cli.specfile import apply_set, load_spec
from service.client import JobStatus, LabPlot

if TYPE_CHECKING:
    from service.client import Client
    from service.jobs.schemas import JobRead, ResultRead
    from service.spec.results import LandscapeRecord, RangeTestRecord

app = typer.Typer(
    name="lab",
    help="The optimization lab: LR range tests, loss landscapes, their charts.",
    no_args_is_help=True,
)


class Split(StrEnum):
    """The samples a landscape's loss is measured on."""

    val = "val"
    train = "train"


class Directions(StrEnum):
    """How a landscape's two directions are chosen."""

    random = "random"
    pca = "pca"


FollowOpt = Annotated[
    bool, typer.Option("--follow", "-f", help="Show progress until the job ends.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a field of the spec: a dotted path and a YAML value, e.g. "
        "range_test.lr_max=1 or optimizer.momentum=0.9 (repeatable).",
        show_default=False,
    ),
]
FollowChartOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        help="With --follow: also write the job's chart here when it ends (.png or .svg).",
        show_default=False,
    ),
]


def result_lines(found: ResultRead) -> list[str]:
    """A lab result (or a training job's ``auto_lr``) in a few lines."""
    doc = found.result
    if doc.kind == "lr_range_test":
        return _range_test_lines(doc)
    if doc.kind == "landscape":
        return _landscape_lines(doc)
    return [f"auto lr: {doc.auto_lr.why}"]


def _range_test_lines(doc: RangeTestRecord) -> list[str]:
    lines = [f"stopped: {doc.stopped.text}"]
    if doc.best is not None:
        lines.append(
            f"lowest smoothed loss {num(doc.best.smoothed_loss)} at lr "
            f"{num(doc.best.lr, 3)} (step {doc.best.step})"
        )
    for s in doc.suggestions:
        lines.append(f"suggestion {s.rule:<10} lr {num(s.lr, 3)}")
        lines.append(f"  {s.explanation}")
    if not doc.suggestions:
        lines.append("no suggestion: the smoothed loss never fell")
    elif doc.suggestion:
        lines.append(f'"auto" takes {doc.suggestion} (range_test.suggestion)')
    else:
        lines.append('"auto" takes valley for optimizer.lr, min_div_10 for one_cycle.max_lr')
    return lines


def _landscape_lines(doc: LandscapeRecord) -> list[str]:
    losses = [v for row in doc.surface.loss for v in row if v is not None]
    lines = [
        f"centre (the final weights): {doc.metrics.loss} {num(doc.centre.loss, 6)}, "
        f"{doc.metrics.quality} {num(doc.centre.quality)}",
        f"grid: {len(doc.surface.x)}×{len(doc.surface.y)} {doc.directions.kind} directions; "
        f"loss from {num(min(losses, default=None))} to {num(max(losses, default=None))}",
    ]
    if doc.interpolation.loss:
        lines.append(
            "line from the initial (α=0) to the final weights (α=1): "
            f"{len(doc.interpolation.loss)} points"
        )
    if doc.explained_variance:
        lines.append(
            "explained variance: "
            + ", ".join("-" if v is None else f"{v:.1%}" for v in doc.explained_variance)
        )
    return lines


def _write_chart(client: Client, job_id: str, view: LabPlot, output: Path) -> str:
    return write_image(output, client.lab_plot(job_id, view, image_format(output)))


def _lab_outcome(
    client: Client, view: LabPlot, output: Path | None
) -> Callable[[JobRead], list[str]]:
    """``outcome_lines`` plus the job's result, and its chart written to ``output``."""

    def lines(job: JobRead) -> list[str]:
        out = outcome_lines(job)
        if job.status != JobStatus.SUCCEEDED:
            return out
        out += result_lines(client.result(job.id))
        if output is not None:
            out.append(_write_chart(client, job.id, view, output))
        return out

    return lines


def _submit(
    doc: dict[str, Any],
    *,
    follow: bool,
    output: Path | None,
    view: LabPlot,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    if output is not None:
        if not follow:
            raise typer.BadParameter("needs --follow", param_hint="'-o' / '--output'")
        image_format(output)
    with connect(url, token) as client:
        job = client.submit(doc)
        print_created(job, as_json=as_json, follow=follow)
        if follow:
            follow_job_and_exit(client, job, as_json, _lab_outcome(client, view, output))


@app.command("lr-find")
def lr_find(
    spec: Annotated[
        str,
        typer.Argument(
            help="A job spec (.json, .yaml or .yml file, or - for stdin): its dataset, "
            "model, optimizer, batch size and regularization are tested.",
            show_default=False,
        ),
    ],
    set_: SetOpt = None,
    lr_min: Annotated[
        float | None, typer.Option(help="The first step's rate (default 1e-7).")
    ] = None,
    lr_max: Annotated[float | None, typer.Option(help="The last step's rate (default 10).")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps at most (default 100).")] = None,
    follow: FollowOpt = False,
    output: FollowChartOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run an LR range test of a job spec (Leslie Smith's method): the rate rises step by
    step and the loss is recorded; prints the job's id (with --follow: its progress, then
    the three suggestions — steepest, min_div_10, valley).

    An "auto" rate in the spec is not needed here: the test ignores the optimizer's lr
    and the schedule. `descent job submit` a spec with `optimizer.lr: auto` or
    `schedule.max_lr: auto` to train with the suggestion directly."""
    doc = load_spec(spec)
    apply_set(doc, *(set_ or []))
    doc["kind"] = "lr_range_test"
    settings = doc.setdefault("range_test", {}) or {}
    doc["range_test"] = settings
    for key, value in (("lr_min", lr_min), ("lr_max", lr_max), ("steps", steps)):
        if value is not None:
            settings[key] = value
    # The test sets the rate itself: an "auto" left in the spec is not an error here.
    if (doc.get("optimizer") or {}).get("lr") == "auto":
        doc["optimizer"].pop("lr")
    if (doc.get("schedule") or {}).get("max_lr") == "auto":
        doc["schedule"].pop("max_lr")
    _submit(
        doc,
        follow=follow,
        output=output,
        view=LabPlot.range_test,
        url=url,
        token=token,
        as_json=as_json,
    )


@app.command()
def landscape(
    job_id: JobArg,
    split: Annotated[
        Split,
        typer.Option(parser=choice(Split), help="val (the job's validation split) or train."),
    ] = Split.val,
    resolution: Annotated[int, typer.Option(help="Grid points along each axis (odd, 3–101).")] = 21,
    span: Annotated[
        float, typer.Option(help="The grid covers −span…span along each direction.")
    ] = 1.0,
    directions: Annotated[
        Directions,
        typer.Option(
            parser=choice(Directions),
            help="random (filter-normalised, Li et al.) or pca (the job's trajectory; "
            "it must have run with training.save_trajectory: true).",
        ),
    ] = Directions.random,
    seed: Annotated[int, typer.Option(help="Seeds the random directions.")] = 0,
    name: Annotated[str | None, typer.Option(help="A display name.")] = None,
    follow: FollowOpt = False,
    output: FollowChartOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure the loss landscape of a finished job: along the line from its initial to
    its final weights, and on a 2-D grid around the final weights. With --follow -o
    FILE the contour plot is written when it ends."""
    doc: dict[str, Any] = {
        "kind": "landscape",
        "landscape": {
            "job_id": job_id,
            "split": split.value,
            "resolution": resolution,
            "span": span,
            "directions": directions.value,
            "seed": seed,
        },
    }
    if name is not None:
        doc["name"] = name
    _submit(
        doc,
        follow=follow,
        output=output,
        view=LabPlot.contour,
        url=url,
        token=token,
        as_json=as_json,
    )


@app.command("plot")
def lab_plot(
    job_id: JobArg,
    output: ChartOpt,
    view: Annotated[
        LabPlot,
        typer.Option(
            "--view",
            "-v",
            parser=choice(LabPlot),
            help='range_test (a range test, or a training job whose rate was "auto"), '
            "interpolation, contour or surface (a landscape).",
        ),
    ] = LabPlot.range_test,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Draw a lab job's chart."""
    image_format(output)
    with connect(url, token) as client:
        err(_write_chart(client, job_id, view, output))
