"""``descent job …``: submit a job and follow it, list, show, cancel, its metrics, its
learning curves, what a lab job found.

Exit codes with --follow: 0 succeeded, 3 failed, 4 diverged, 5 cancelled, 130 Ctrl-C (the
job keeps running); otherwise 0, or 1 when a request failed, 2 for a usage error.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.follow import follow_job_and_exit, monitor, stored_spec, unit
from service.cli.lab import result_lines
from service.cli.options import (
    ChartOpt,
    JobArg,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    choice,
    connect,
    listed,
)
from service.cli.organise import note, tag, tag_clauses
from service.cli.output import (
    add_row,
    console,
    echo,
    err,
    facts,
    image_format,
    num,
    print_created,
    print_json,
    table,
    when,
    write_image,
)
from service.cli.specfile import apply_set, load_spec, name_with_overrides
from service.client import JOB_ENDED, JobKind, JobStatus

if TYPE_CHECKING:
    from service.jobs.schemas import JobRead
    from service.spec import JobSpec

app = typer.Typer(
    name="job",
    help="Submit, follow and read training and lab jobs.",
    no_args_is_help=True,
)


@app.command()
def submit(
    spec: Annotated[
        str, typer.Argument(help="A job spec: a .json, .yaml or .yml file, or - for stdin.")
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a field: a dotted path and a YAML value, e.g. optimizer.lr=0.01 "
            "or model.hidden=[64,32] (repeatable). Switching optimizer.name (or any "
            "name/kind) drops the fields the new one does not have.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="The job's name (a label).")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Show progress until the job ends.")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a training job; prints its id (with --follow: its progress, to the end).

    Exit codes with --follow: 0 succeeded, 3 failed, 4 diverged, 5 cancelled."""
    doc = load_spec(spec)
    apply_set(doc, *(set_ or []))
    if name is not None:
        doc["name"] = name
    elif "name" not in doc and (named := name_with_overrides(doc, set_ or [])):
        doc["name"] = named
    with connect(url, token) as client:
        job = client.submit(doc)
        print_created(job, as_json=as_json, follow=follow)
        if follow:
            follow_job_and_exit(client, job, as_json)


app.command()(tag)
app.command()(note)


@app.command()
def follow(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Follow a job until it ends (exit 0 succeeded, 3 failed, 4 diverged, 5 cancelled)."""
    with connect(url, token) as client:
        follow_job_and_exit(client, client.job(job_id), as_json)


@app.command("list")
def list_jobs(
    status: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated statuses, e.g. running,queued: {listed(JobStatus)}.",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        list[JobKind] | None,
        typer.Option(
            parser=choice(JobKind),
            help="Only jobs of this kind (repeatable).",
            show_default=False,
        ),
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="Only jobs in this project.", show_default=False)
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="A search (docs/search.md), e.g. \"optimizer.name = 'adam' and "
            'saved.val_accuracy > 0.97".',
            show_default=False,
        ),
    ] = None,
    tag_: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            help="Only jobs with this tag, KEY=VALUE (repeatable; KEY=: without tag KEY).",
            show_default=False,
        ),
    ] = None,
    sort: Annotated[
        str,
        typer.Option(help="A field to sort by, - first for descending: -saved.val_accuracy."),
    ] = "-created_at",
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List your jobs, newest first: by status, kind, project, tags or any search."""
    clauses = [f"({filter_})"] if filter_ else []
    clauses += tag_clauses(tag_ or [])
    with connect(url, token) as client:
        page = client.jobs(
            status=status,
            kind=kind or None,
            limit=limit,
            sort=sort,
            project=project,
            filter=" and ".join(clauses) or None,
        )
    if as_json:
        print_json(page)
        return
    keep = {"no_wrap": True}
    # Project and tags get a column when a job listed has some.
    labelled = any(job.project or job.tags for job in page.items)
    columns = ["NAME", "STATUS", "EPOCHS", "BEST", *(["LABELS"] if labelled else [])]
    rows = table(("ID", keep), *columns, ("CREATED", keep))
    for job in page.items:
        labels = [job.project or "", *(f"{k}={v}" for k, v in sorted(job.tags.items()))]
        add_row(
            rows,
            [
                job.id,
                job.name,
                job.status,
                f"{job.epochs_completed}/{job.epochs}",
                num(job.best_value),
                *([" ".join(x for x in labels if x)] if labelled else []),
                when(job.created_at),
            ],
        )
    if page.items:
        console().print(rows)
    if page.total > len(page.items):
        err(f"{len(page.items)} of {page.total} jobs; --limit shows more")
    elif not page.items:
        err("no jobs")


def spec_summary(spec: JobSpec | None) -> str:
    """``moons · mlp [64, 32] relu · adam lr=0.003 · 8 epochs x batch 32``."""
    if spec is None:
        return "-"
    arch: str = spec.model.kind
    if hidden := getattr(spec.model, "hidden", None):
        arch += f" {list(hidden)}"
    if activation := getattr(spec.model, "activation", None):
        arch += f" {activation}"
    parts = [spec.dataset.name, arch, f"{spec.optimizer.name} lr={num(spec.optimizer.lr)}"]
    if spec.schedule.name != "constant":
        parts.append(spec.schedule.name)
    parts.append(f"{spec.training.epochs} epochs x batch {spec.training.batch_size}")
    return " · ".join(parts)


def _facts(job: JobRead) -> list[tuple[str, str]]:
    pending_cancel = job.cancel_requested and job.status not in JOB_ENDED
    rows = [
        ("id", job.id),
        ("name", job.name),
        *([("project", job.project)] if job.project else []),
        *(
            [("tags", "  ".join(f"{k}={v}" for k, v in sorted(job.tags.items())))]
            if job.tags
            else []
        ),
        *([("note", job.note)] if job.note else []),
        ("status", job.status + (" (cancel requested)" if pending_cancel else "")),
    ]
    if job.kind != JobKind.TRAIN:
        of = f" of job {job.source_job_id}" if job.source_job_id else ""
        rows.append(("kind", job.kind + of))
    if job.status_reason:
        rows.append(("reason", job.status_reason))
    epochs = f"{job.epochs_completed}/{job.epochs}"
    if job.stop_epoch:
        epochs += f" (early stopping at epoch {job.stop_epoch})"
    rows.append((f"{unit(job)}s", epochs))
    if auto := job.auto_lr:
        fields = ", ".join(auto.fields)
        rows.append(("auto lr", f"{fields} = {num(auto.value)} ({auto.rule} rule)"))
    if job.best_epoch is not None:
        rows.append(("best", f"epoch {job.best_epoch}: {monitor(job)} {num(job.best_value)}"))
    if job.final_metrics:
        shown = {k: v for k, v in job.final_metrics.items() if k != "epoch"}
        rows.append(("final", "  ".join(f"{k} {num(v)}" for k, v in shown.items())))
    return [
        *rows,
        ("task", job.task),
        ("parameters", f"{job.n_parameters:,}"),
        ("attempts", str(job.attempt)),
        ("device", job.device or "-"),
        ("created", when(job.created_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.finished_at)),
        ("spec", spec_summary(stored_spec(job))),
    ]


@app.command()
def show(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """One job's key facts: status, epochs, best epoch, final metrics, spec."""
    with connect(url, token) as client:
        job = client.job(job_id)
    if as_json:
        print_json(job)
        return
    facts(_facts(job))


@app.command()
def cancel(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Cancel a job: a queued one never starts, a running one stops at the next batch."""
    with connect(url, token) as client:
        job = client.cancel(job_id)
    if as_json:
        print_json(job)
    elif job.status == JobStatus.CANCELLED:
        echo(f"cancelled {job.id}")
    else:
        echo(f"cancel requested: {job.id} ({job.status}) stops at its next batch")


@app.command()
def metrics(
    job_id: JobArg,
    names: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated metric names, e.g. train_loss,val_loss.", show_default=False
        ),
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV text.")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A job's metrics, one row per epoch (a table, CSV or JSON)."""
    if csv and as_json:
        raise typer.BadParameter("--csv and --json exclude each other", param_hint="--csv")
    with connect(url, token) as client:
        if csv:
            sys.stdout.write(client.metrics_csv(job_id, names=names))
            return
        doc = client.metrics(job_id, names=names)
    if as_json:
        print_json(doc)
        return
    if not doc.epochs:
        err(f"no epochs recorded yet (job {doc.status})")
        return
    right = {"justify": "right", "no_wrap": True}
    rows = table(*((name, right) for name in doc.names))
    for epoch in doc.epochs:
        add_row(rows, [num(epoch.get(name)) for name in doc.names])
    console().print(rows)


@app.command()
def plot(
    job_ids: Annotated[
        list[str], typer.Argument(help="One job id, or several to compare.", show_default=False)
    ],
    output: ChartOpt,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "-m",
            "--metric",
            help="A metric to draw (repeatable); comparing several "
            "jobs draws the first (default: val_loss).",
            show_default=False,
        ),
    ] = None,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="A logarithmic y axis for this metric's panel (repeatable); `all` for "
            "every panel, `false` for none (default: panels whose values span 1000x or "
            "more). Comparing jobs: any value but `false` makes the axis logarithmic.",
            show_default=False,
        ),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Draw learning curves: one job's metrics, or one metric of several jobs."""
    fmt = image_format(output)
    with connect(url, token) as client:
        if len(job_ids) == 1:
            data = client.plot(job_ids[0], fmt=fmt, metrics=metric or None, log=log or None)
        else:
            first = metric[0] if metric else "val_loss"
            on = any(v.strip().lower() != "false" for v in log or [])
            data = client.compare_plot(job_ids, metric=first, fmt=fmt, log=on)
    err(write_image(output, data))


@app.command()
def result(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """What a lab job found: a range test's suggestions, a landscape's summary; for a
    training job with "auto" rates, the rate chosen and why."""
    with connect(url, token) as client:
        found = client.result(job_id)
    if as_json:
        print_json(found)
        return
    for line in result_lines(found):
        echo(line)
