"""Following a job to its end: a progress bar on a terminal, a line per epoch when piped,
then how it ended; and the exit code that says so. (A sweep's follower is in
:mod:`service.cli.board`.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from service.cli.groups import command
from service.cli.options import EXIT_CODES, EXIT_ERROR, EXIT_INTERRUPTED
from service.cli.output import console, duration, err, num, print_json, say, text
from service.client import JOB_ENDED, JobKind

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

    from service.client import Client
    from service.jobs.schemas import JobRead
    from service.spec import JobSpec

#: Left out of a followed job's final metrics (`descent job show` and `metrics` have them).
HIDDEN_FINAL = frozenset({"epoch", "epoch_seconds", "samples_per_second"})
#: What one row of a job is called, by kind: a training epoch, a range test's step, a
#: landscape's grid row.
UNITS = {JobKind.TRAIN: "epoch", JobKind.LR_RANGE_TEST: "step", JobKind.LANDSCAPE: "row"}

#: A job or a sweep, as it ended.
Ended = TypeVar("Ended", bound="BaseModel")


def unit(job: JobRead) -> str:
    return UNITS.get(job.kind, "epoch")


def stored_spec(job: JobRead) -> JobSpec | None:
    """The job's spec as the worker reads it (every default filled in); ``None`` for one
    this client's spec language cannot read (a server of another version)."""
    from pydantic import ValidationError

    from service.spec import JobSpec

    try:
        return JobSpec.model_validate_json(json.dumps(job.spec))
    except ValidationError:
        return None


def monitor(job: JobRead) -> str:
    """The metric ``best_epoch`` and ``best_value`` are about."""
    spec = stored_spec(job)
    stopping = spec.regularization.early_stopping if spec else None
    return stopping.monitor if stopping else "val_loss"


def shown_metrics(job: JobRead) -> tuple[str, ...]:
    """The metrics a follower shows per row."""
    if job.kind == JobKind.LR_RANGE_TEST:
        return ("lr", "loss", "smoothed_loss")
    if job.kind == JobKind.LANDSCAPE:
        return ("loss_min", "loss_max")
    quality = "val_r2" if job.task == "regression" else "val_accuracy"
    return ("train_loss", "val_loss", quality, "lr")


def metrics_text(metrics: Mapping[str, Any], names: tuple[str, ...]) -> str:
    return "  ".join(f"{n} {num(metrics[n], 3 if n == 'lr' else 4)}" for n in names if n in metrics)


def outcome_lines(job: JobRead) -> list[str]:
    """What a finished job came to: its status line, then its final metrics."""
    line = f"{job.status} after {job.epochs_completed}/{job.epochs} {unit(job)}s"
    if took := duration(job.started_at, job.finished_at):
        line += f" in {took}"
    if job.stop_epoch:
        line += f" (early stopping at epoch {job.stop_epoch})"
    if job.best_epoch is not None:
        line += f"; best epoch {job.best_epoch}: {monitor(job)} {num(job.best_value)}"
    lines = [line]
    if job.status_reason:
        lines.append(f"reason: {job.status_reason}")
    if job.final_metrics:
        shown = {k: v for k, v in job.final_metrics.items() if k not in HIDDEN_FINAL}
        lines.append("final: " + "  ".join(f"{k} {num(v)}" for k, v in shown.items()))
    return lines


class _Status:
    """The status a follower last told, to tell only changes (and resumptions)."""

    def __init__(self, job: JobRead) -> None:
        self.job_id = job.id
        self.status: str | None = job.status
        self.attempt = job.attempt

    def line(self, data: Mapping[str, Any]) -> str | None:
        """A line for a ``status`` event worth telling (``None`` for a repeat)."""
        status, attempt = data.get("status"), data.get("attempt") or 0
        changed = status != self.status
        resumed = self.attempt and attempt > self.attempt
        self.status, self.attempt = status, attempt
        if resumed:
            # Its worker was lost, or was stopped and handed the job back: the status
            # reason told when it was queued again says which.
            return (
                f"attempt {attempt}: the job resumes from epoch {data.get('epochs_completed', 0)}"
            )
        if changed:
            reason = f" ({data['status_reason']})" if data.get("status_reason") else ""
            return f"job {self.job_id}: {status}{reason}"
        return None


def follow_job(client: Client, job: JobRead, out: Console) -> JobRead:
    """Show a job's progress from its event stream until it ends; returns the final job.

    On a terminal: a progress bar over epochs with elapsed time, ETA and the latest
    metrics. Otherwise: one line per epoch (and per status change), nothing animated."""
    names = shown_metrics(job)
    status = _Status(job)
    if not out.is_terminal:
        say(out, f"job {job.id}: {job.status}, {job.epochs} {unit(job)}s")
        for event in client.events(job.id):
            data = event.data
            if event.event == "status":
                text = status.line(data)
                # A final status is told by the outcome lines.
                if text is not None and data.get("status") not in JOB_ENDED:
                    say(out, text)
            elif event.event == "epoch":
                row = f"{unit(job)} {data.get('epoch')}/{data.get('epochs', job.epochs)}"
                say(out, f"{row}  {metrics_text(data.get('metrics') or {}, names)}")
            elif event.event == "end":
                break
        return client.job(job.id)
    return _follow_job_live(client, job, out, names, status)


def _follow_job_live(
    client: Client, job: JobRead, out: Console, names: tuple[str, ...], status: _Status
) -> JobRead:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class EpochProgress(Progress):
        """The bar on one line, the latest metrics on the next: on one line they would
        not fit an 80-column terminal."""

        def get_renderables(self):  # noqa: ANN202 - rich's own signature
            yield self.make_tasks_table(self.tasks)
            for task in self.tasks:
                if task.fields.get("metrics"):
                    yield text("  " + task.fields["metrics"], "dim", overflow="ellipsis")

    progress = EpochProgress(
        # A status, never user text; markup=False all the same.
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn(f"{unit(job)}s"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=out,
    )
    with progress:
        bar = progress.add_task(
            job.status, total=job.epochs, completed=job.epochs_completed, metrics=""
        )
        for event in client.events(job.id):
            data = event.data
            if event.event == "status":
                line = status.line(data)
                if line is not None and data.get("attempt", 1) > 1:
                    progress.console.print(text(line))
                progress.update(
                    bar,
                    description=data.get("status") or "",
                    completed=data.get("epochs_completed") or 0,
                    total=data.get("epochs") or job.epochs,
                )
            elif event.event == "epoch":
                progress.update(
                    bar,
                    completed=data.get("epoch") or 0,
                    metrics=metrics_text(data.get("metrics") or {}, names),
                )
            elif event.event == "end":
                progress.update(
                    bar,
                    description=data.get("status") or "",
                    completed=data.get("epochs_completed"),
                )
                break
    return client.job(job.id)


def follow_and_exit(
    as_json: bool,
    follow: Callable[[Console], Ended],
    outcome: Callable[[Ended], list[str]],
    status: Callable[[Ended], str],
    interrupted: str,
) -> None:
    """Run ``follow`` (a job's or a sweep's) to the end, print how it ended (and the final
    object with --json) and exit with its code; on Ctrl-C print ``interrupted`` and exit
    130. With --json the progress goes to stderr, so stdout holds only the JSON."""
    out = console(stderr=as_json)
    try:
        final = follow(out)
    except KeyboardInterrupt:
        err(interrupted)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        print_json(final)
    for line in outcome(final):
        say(out, line)
    raise typer.Exit(EXIT_CODES.get(status(final), EXIT_ERROR))


def follow_job_and_exit(
    client: Client,
    job: JobRead,
    as_json: bool,
    outcome: Callable[[JobRead], list[str]] = outcome_lines,
) -> None:
    """Follow a job to its end; ``outcome`` says how it ended (a lab job adds what it
    found)."""
    follow_and_exit(
        as_json,
        lambda out: follow_job(client, job, out),
        outcome,
        lambda final: final.status,
        f"\nstopped following; job {job.id} keeps running "
        f"(`{command('job cancel')} {job.id}` cancels it, `{command('job follow')} {job.id}` "
        "picks it up again)",
    )
