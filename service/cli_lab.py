"""The optimization lab's ``descent`` commands: ``lr-find`` (an LR range test of a job
spec), ``landscape`` (the loss landscape of a finished job), ``result`` (what a lab job
found) and ``lab-plot`` (its charts). Exit codes as for ``descent submit``: 0 succeeded,
1 a request failed, 2 a usage error, 3 failed, 5 cancelled, 130 Ctrl-C while following.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli_client import (
    JobArg,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    _client,
    _err,
    _follow_job_and_exit,
    _num,
    _print_created,
    _print_json,
    apply_set,
    image_format,
    load_spec,
    outcome_lines,
    write_image,
)

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
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        help="With --follow: also write the job's chart here when it ends (.png or .svg).",
        show_default=False,
    ),
]


def result_lines(kind: str, found: dict[str, Any]) -> list[str]:
    """A lab result (or a training job's ``auto_lr``) in a few lines."""
    if kind == "lr_range_test":
        lines = []
        if stopped := found.get("stopped"):
            lines.append(f"stopped: {stopped.get('text')}")
        if best := found.get("best"):
            lines.append(
                f"lowest smoothed loss {_num(best.get('smoothed_loss'))} at lr "
                f"{_num(best.get('lr'), 3)} (step {best.get('step')})"
            )
        for s in found.get("suggestions") or []:
            lines.append(f"suggestion {s['rule']:<10} lr {_num(s['lr'], 3)}")
            lines.append(f"  {s.get('explanation', '')}")
        if not found.get("suggestions"):
            lines.append("no suggestion: the smoothed loss never fell")
        elif rule := found.get("suggestion"):
            lines.append(f'"auto" takes {rule} (range_test.suggestion)')
        else:
            lines.append('"auto" takes valley for optimizer.lr, min_div_10 for one_cycle.max_lr')
        return lines
    if kind == "landscape":
        metrics = found.get("metrics") or {}
        centre = found.get("centre") or {}
        surface = found.get("surface") or {}
        losses = [v for row in surface.get("loss") or [] for v in row if v is not None]
        directions = (found.get("directions") or {}).get("kind", "")
        lines = [
            f"centre (the final weights): {metrics.get('loss', 'loss')} "
            f"{_num(centre.get('loss'), 6)}, {metrics.get('quality', 'quality')} "
            f"{_num(centre.get('quality'))}",
            f"grid: {len(surface.get('x') or [])}×{len(surface.get('y') or [])} "
            f"{directions} directions; loss from {_num(min(losses, default=None))} to "
            f"{_num(max(losses, default=None))}",
        ]
        line = found.get("interpolation") or {}
        if line.get("loss"):
            lines.append(
                f"line from the initial (α=0) to the final weights (α=1): "
                f"{len(line['loss'])} points"
            )
        if variance := found.get("explained_variance"):
            lines.append("explained variance: " + ", ".join(f"{v:.1%}" for v in variance))
        return lines
    record = found.get("auto_lr") or {}
    return [f"auto lr: {record.get('why', '')}"] if record else []


def _lab_outcome(client: Any, view: str | None, output: Path | None) -> Any:
    """``outcome_lines`` plus the job's result, and its chart written to ``output``."""

    def lines(job: dict[str, Any]) -> list[str]:
        out = outcome_lines(job)
        if job["status"] != "succeeded":
            return out
        found = client.result(job["id"])["result"]
        out += result_lines(job.get("kind") or "train", found)
        if output is not None and view is not None:
            out.append(_write_chart(client, job["id"], view, output))
        return out

    return lines


def _write_chart(client: Any, job_id: str, view: str, output: Path) -> str:
    return write_image(output, client.lab_plot(job_id, view, image_format(output)))


def _submit(
    doc: dict[str, Any],
    *,
    follow: bool,
    output: Path | None,
    view: str,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    if output is not None:
        if not follow:
            raise typer.BadParameter("needs --follow", param_hint="'-o' / '--output'")
        image_format(output)
    with _client(url, token) as client:
        job = client.submit(doc)
        _print_created(job, as_json=as_json, follow=follow)
        if follow:
            _follow_job_and_exit(client, job, as_json, _lab_outcome(client, view, output))


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
    output: OutputOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run an LR range test of a job spec (Leslie Smith's method): the rate rises step by
    step and the loss is recorded; prints the job's id (with --follow: its progress, then
    the three suggestions — steepest, min_div_10, valley).

    An "auto" rate in the spec is not needed here: the test ignores the optimizer's lr
    and the schedule. `descent submit` a spec with `optimizer.lr: auto` or
    `schedule.max_lr: auto` to train with the suggestion directly."""
    doc = load_spec(spec)
    for assignment in set_ or []:
        apply_set(doc, assignment)
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
        doc, follow=follow, output=output, view="range_test", url=url, token=token, as_json=as_json
    )


def landscape(
    job_id: JobArg,
    split: Annotated[str, typer.Option(help="val (the job's validation split) or train.")] = "val",
    resolution: Annotated[int, typer.Option(help="Grid points along each axis (odd, 3–101).")] = 21,
    span: Annotated[
        float, typer.Option(help="The grid covers −span…span along each direction.")
    ] = 1.0,
    directions: Annotated[
        str,
        typer.Option(
            help="random (filter-normalised, Li et al.) or pca (the job's trajectory; "
            "it must have run with training.save_trajectory: true)."
        ),
    ] = "random",
    seed: Annotated[int, typer.Option(help="Seeds the random directions.")] = 0,
    name: Annotated[str | None, typer.Option(help="A display name.")] = None,
    follow: FollowOpt = False,
    output: OutputOpt = None,
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
            "split": split,
            "resolution": resolution,
            "span": span,
            "directions": directions,
            "seed": seed,
        },
    }
    if name is not None:
        doc["name"] = name
    _submit(
        doc, follow=follow, output=output, view="contour", url=url, token=token, as_json=as_json
    )


def result(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """What a lab job found: a range test's suggestions, a landscape's summary; for a
    training job with "auto" rates, the rate chosen and why."""
    with _client(url, token) as client:
        found = client.result(job_id)
    if as_json:
        _print_json(found)
        return
    for line in result_lines(found["kind"], found["result"]):
        typer.echo(line)


def lab_plot(
    job_id: JobArg,
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Where to write the chart: a .png or .svg file.",
            show_default=False,
        ),
    ],
    view: Annotated[
        str,
        typer.Option(
            "--view",
            "-v",
            help='range_test (a range test, or a training job whose rate was "auto"), '
            "interpolation, contour or surface (a landscape).",
        ),
    ] = "range_test",
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Draw a lab job's chart."""
    from service.client import LAB_PLOTS

    if view not in LAB_PLOTS:
        raise typer.BadParameter(
            f"{view!r}: choose one of {', '.join(LAB_PLOTS)}", param_hint="'--view'"
        )
    image_format(output)
    with _client(url, token) as client:
        _err(_write_chart(client, job_id, view, output))


def register(app: typer.Typer) -> None:
    """Add the lab's commands to the ``descent`` app."""
    app.command("lr-find")(lr_find)
    app.command()(landscape)
    app.command()(result)
    app.command("lab-plot")(lab_plot)
