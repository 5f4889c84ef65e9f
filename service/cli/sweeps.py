"""``descent sweep …``: start a sweep or a comparison and follow it, list, show (with the
statistics of a comparison), cancel, chart. ``descent sweep SPEC`` is ``descent sweep
start SPEC`` (:class:`~service.cli.groups.DefaultGroup`).

Exit codes with --follow: 0 succeeded, 3 failed, 5 cancelled, 130 Ctrl-C (the sweep keeps
running); otherwise 0, or 1 when a request failed, 2 for a usage error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.board import auto_range_text, follow_sweep_and_exit
from service.cli.groups import DefaultGroup, command
from service.cli.options import (
    ChartOpt,
    JsonOpt,
    SweepArg,
    TokenOpt,
    UrlOpt,
    choice,
    connect,
)
from service.cli.output import (
    add_row,
    console,
    counts_text,
    echo,
    err,
    facts,
    image_format,
    num,
    p_text,
    params_inline,
    print_created,
    print_json,
    table,
    value_text,
    when,
    write_image,
)
from service.cli.specfile import apply_sweep_set, load_spec
from service.client import ApiError, SweepKind, SweepPlot, SweepStatus

if TYPE_CHECKING:
    from rich.table import Table

    from service.sweeps.schemas import ComparisonRead, SweepRead, TrialRead

app = typer.Typer(
    name="sweep",
    cls=DefaultGroup,
    help="Sweeps and comparisons: start one (`descent sweep SPEC` is `descent sweep start "
    "SPEC`), follow, list, show, cancel, chart.",
    no_args_is_help=True,
)

SweepSpecArg = Annotated[
    str,
    typer.Argument(
        help="A sweep spec (base, space, sampler, pruner, objective …) or a comparison spec "
        "(base, configurations): a .json, .yaml or .yml file, or - for stdin.",
        show_default=False,
    ),
]
SweepSetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a field of the spec: a dotted path and a YAML value, e.g. "
        "max_trials=40 or base.training.epochs=20. After `space.` the rest is the entry's "
        "path: 'space.optimizer.lr={loguniform: [1e-4, 0.1]}' (null drops it) (repeatable).",
        show_default=False,
    ),
]
SweepNameOpt = Annotated[str | None, typer.Option(help="The sweep's name (a label).")]
SweepFollowOpt = Annotated[
    bool, typer.Option("--follow", "-f", help="Show the trials live until the sweep ends.")
]


def _start(
    spec: str,
    set_: list[str] | None,
    name: str | None,
    follow: bool,
    url: str | None,
    token: str | None,
    as_json: bool,
    *,
    comparison: bool = False,
) -> None:
    doc = load_spec(spec)
    apply_sweep_set(doc, *(set_ or []))
    if name is not None:
        doc["name"] = name
    if comparison and "configurations" not in doc:
        raise typer.BadParameter(
            f"{spec}: a comparison needs `configurations` (a list of {{label, set}}); "
            f"`{command('sweep start')}` starts a search over a space",
            param_hint="SPEC",
        )
    with connect(url, token) as client:
        created = client.create_sweep(doc)
        print_created(created, as_json=as_json, follow=follow)
        if created.auto_bounds and not as_json:
            # stderr: stdout stays the id alone, for scripts.
            err(f"auto range: {auto_range_text(created.auto_bounds)}")
        if follow:
            follow_sweep_and_exit(client, created, as_json)


@app.command()
def start(
    spec: SweepSpecArg,
    set_: SweepSetOpt = None,
    name: SweepNameOpt = None,
    follow: SweepFollowOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a sweep, or a comparison if the spec has `configurations`; prints its id.

    POST /v1/sweeps, or POST /v1/comparisons for a spec with `configurations`. With
    --follow: a live table of the trials (one line per trial event when piped), to the end.

    Exit codes with --follow: 0 succeeded, 3 failed, 5 cancelled, 130 Ctrl-C (the sweep
    keeps running)."""
    _start(spec, set_, name, follow, url, token, as_json)


@app.command()
def compare(
    spec: SweepSpecArg,
    set_: SweepSetOpt = None,
    name: SweepNameOpt = None,
    follow: SweepFollowOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a comparison of configurations over the same seeds; prints its id.

    The same as `descent sweep start` with a spec that has `configurations`, but refuses
    one that has none. `descent sweep show ID` then has mean ± std, 95% CIs and paired
    tests.

    Exit codes with --follow: 0 succeeded, 3 failed, 5 cancelled, 130 Ctrl-C."""
    _start(spec, set_, name, follow, url, token, as_json, comparison=True)


@app.command()
def follow(
    sweep_id: SweepArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Follow a sweep until it ends (exit 0 succeeded, 3 failed, 5 cancelled)."""
    with connect(url, token) as client:
        follow_sweep_and_exit(client, client.sweep(sweep_id), as_json)


@app.command("list")
def list_sweeps(
    status: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated statuses: {', '.join(SweepStatus)}.", show_default=False
        ),
    ] = None,
    kind: Annotated[
        SweepKind | None,
        typer.Option(
            parser=choice(SweepKind), help="Sweeps or comparisons only.", show_default=False
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many, newest first.")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List your sweeps and comparisons, newest first."""
    with connect(url, token) as client:
        page = client.sweeps(status=status, kind=kind, limit=limit)
    if as_json:
        print_json(page)
        return
    keep = {"no_wrap": True}
    headers = ("NAME", "KIND", "STATUS", "TRIALS", "EPOCHS", "BEST")
    rows = table(("ID", keep), *headers, ("CREATED", keep))
    for s in page.items:
        best = f"{s.objective.metric} {num(s.best.value)}" if s.best else "-"
        trials = f"{s.trials_created}/{s.max_trials}"
        cells = [s.id, s.name, s.kind, s.status, trials, str(s.epochs_spent), best]
        add_row(rows, [*cells, when(s.created_at)])
    if page.items:
        console().print(rows)
    if page.total > len(page.items):
        err(f"{len(page.items)} of {page.total} sweeps; --limit shows more")
    elif not page.items:
        err("no sweeps")


def leaderboard(sweep: SweepRead, trials: list[TrialRead]) -> Table:
    """The trials as the API ranks them: number, state, (label), params, value, epochs."""
    comparison = sweep.kind == SweepKind.COMPARISON
    paths: list[str] = []
    if not comparison:
        for t in trials:
            paths += [p for p in t.params if p not in paths]
    right = {"justify": "right"}
    rows = table(
        ("#", right | {"no_wrap": True}),
        ("STATE", {"no_wrap": True}),
        *(["LABEL"] if comparison else []),
        *((p, right) for p in paths),
        (sweep.objective.metric, right | {"no_wrap": True}),
        ("EPOCHS", right | {"no_wrap": True}),
    )
    for t in trials:
        cells = [str(t.number), t.state, *([t.label or ""] if comparison else [])]
        cells += [value_text(t.params[p]) if p in t.params else "" for p in paths]
        add_row(rows, [*cells, num(t.value), str(t.epochs)])
    return rows


def comparison_table(doc: ComparisonRead) -> Table:
    """Per configuration: n, mean ± std, 95% CI; and for each other than the best, its
    paired tests against the best."""
    tests = {t.other: t for t in doc.tests}
    right = {"justify": "right"}
    numbers = ("N", "MEAN ± STD", "95% CI", "BEST − THIS", "p (t)", "p (wilcoxon)", "p (holm)")
    rows = table(("#", right), "CONFIGURATION", *((c, right) for c in numbers))
    for c in doc.configurations:
        mean = num(c.mean) + (f" ± {num(c.std)}" if c.std is not None else "")
        ci = f"[{num(c.ci95[0])}, {num(c.ci95[1])}]" if c.ci95 else "-"
        label = (c.label or params_inline(c.params)) + (" (best)" if c.number == doc.best else "")
        test = tests.get(c.number)
        extra = ["", "", "", ""]
        if test:
            p_values = (test.p_value, test.wilcoxon_p, test.holm_p)
            extra = [num(test.mean_difference), *(p_text(p) for p in p_values)]
        add_row(rows, [str(c.number), label, str(c.n), mean, ci, *extra])
    return rows


def _facts(doc: SweepRead) -> list[tuple[str, str]]:
    pending_cancel = doc.cancel_requested and doc.status == SweepStatus.RUNNING
    rows = [
        ("id", doc.id),
        ("name", doc.name),
        ("kind", doc.kind),
        ("status", doc.status + (" (cancel requested)" if pending_cancel else "")),
    ]
    if doc.status_reason:
        rows.append(("reason", doc.status_reason))
    objective = doc.objective
    rows += [
        ("trials", f"{doc.trials_created}/{doc.max_trials} ({counts_text(doc.counts)})"),
        ("epochs spent", f"{doc.epochs_spent:,}"),
        ("objective", f"{objective.metric} ({objective.direction}, {objective.measure} epoch)"),
    ]
    if doc.kind != SweepKind.COMPARISON:
        # The stored spec's search settings (the sweep language is the server's).
        sampler, pruner = doc.spec.get("sampler") or {}, doc.spec.get("pruner") or {}
        how = f"sampler {sampler.get('name', '?')}"
        if sampler.get("seed") is not None:
            how += f" (seed {sampler['seed']})"
        how += f" · pruner {pruner.get('name', 'none')}"
        if pruner.get("name") not in (None, "none"):
            how += f" (grace {pruner.get('grace')}, per {pruner.get('measure')})"
        rows.append(("search", how))
    if doc.auto_bounds:
        rows.append(("auto range", auto_range_text(doc.auto_bounds)))
    seeds = f"seed{'s' if doc.repeats > 1 else ''}"
    rows.append(("runs", f"{doc.parallelism} trials at once × {doc.repeats} {seeds}"))
    if best := doc.best:
        label = f" ({best.label})" if best.label else ""
        rows.append(("best", f"trial {best.number}{label}: {num(best.value)}"))
        rows += [("", f"  {path} = {value_text(v)}") for path, v in best.params.items()]
    else:
        rows.append(("best", "-"))
    return [
        *rows,
        ("task", doc.task),
        ("created", when(doc.created_at)),
        ("finished", when(doc.finished_at)),
    ]


@app.command()
def show(
    sweep_id: SweepArg,
    trials: Annotated[
        int, typer.Option("--trials", min=0, max=200, help="How many trials to list, best first.")
    ] = 10,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A sweep's summary, its best trials and, with repeats ≥ 2, its statistics.

    The statistics: per configuration mean ± std and 95% CI over its seeds, and paired
    tests of the best against each other.

    --json prints {"sweep", "trials", "comparison"}: the API's three answers (comparison
    null when the sweep has one seed per configuration)."""
    with connect(url, token) as client:
        doc = client.sweep(sweep_id)
        page = client.trials(sweep_id, limit=trials) if trials else None
        stats = None
        if doc.repeats >= 2:
            try:
                stats = client.comparison(sweep_id)
            except ApiError as exc:
                if exc.status != 409:
                    raise
    if as_json:
        print_json({"sweep": doc, "trials": page, "comparison": stats})
        return
    facts(_facts(doc))
    out = console()
    if page and page.items:
        shown = len(page.items)
        echo()
        echo(
            f"trials (best first, {shown} of {page.total}):"
            if page.total > shown
            else "trials (best first):"
        )
        out.print(leaderboard(doc, page.items))
    if stats:
        echo()
        seeds = ", ".join(str(s) for s in stats.seeds)
        echo(
            f"comparison of {stats.metric} ({stats.direction}) over seeds {seeds}; tests: "
            "the best against each, paired by seed:"
        )
        out.print(comparison_table(stats))


@app.command()
def cancel(
    sweep_id: SweepArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Cancel a sweep: no new trial starts, queued ones never run, running ones stop."""
    with connect(url, token) as client:
        doc = client.cancel_sweep(sweep_id)
    if as_json:
        print_json(doc)
        return
    if doc.status != SweepStatus.CANCELLED:
        echo(f"cancel requested: {doc.id} ({doc.status}); its trials stop shortly")
        return
    line = f"cancelled {doc.id} after {doc.trials_created} trials ({counts_text(doc.counts)})"
    if running := doc.counts.running:
        trials = "trials stop at their" if running > 1 else "trial stops at its"
        line += f"; {running} running {trials} next batch"
    echo(line)


@app.command()
def plot(
    sweep_id: SweepArg,
    output: ChartOpt,
    kind: Annotated[
        SweepPlot,
        typer.Option(
            "--kind",
            "-k",
            parser=choice(SweepPlot),
            help="history (objective by trial, running best), parallel (parallel "
            "coordinates), intermediate (every trial's curve, pruned ones marked), "
            "importance, or comparison (mean curves with 95% bands; repeats ≥ 2).",
        ),
    ] = SweepPlot.history,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Draw a sweep's chart."""
    fmt = image_format(output)
    with connect(url, token) as client:
        data = client.sweep_plot(sweep_id, kind=kind, fmt=fmt)
    err(write_image(output, data))
