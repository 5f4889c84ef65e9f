"""Following a sweep: what a follower knows of its trials (:class:`SweepBoard`), drawn as
a live table on a terminal or told as one line per trial event when piped, then how the
sweep ended."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service.cli.follow import follow_and_exit
from service.cli.groups import command
from service.cli.output import (
    add_row,
    counts_text,
    num,
    params_inline,
    say,
    table,
    text,
    value_text,
)
from service.client import JOB_ENDED, SWEEP_ENDED, JobStatus, SweepKind

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from service.client import Client
    from service.sweeps.schemas import AutoBounds, SweepRead

#: The order of a live table: what is in progress first, then the finished ones.
_STATE_RANK = {"running": 0, "queued": 1, "complete": 2, "pruned": 3, "failed": 4, "cancelled": 5}


def auto_range_text(auto: AutoBounds) -> str:
    """A sweep's "auto" ends: the range test's job and, once it has ended, what it set."""
    if not auto.bounds:
        return f"waiting for the range test {auto.job_id} ({', '.join(auto.paths)})"
    ends = ", ".join(f"{p} [{lo:g}, {hi:g}]" for p, (lo, hi) in auto.bounds.items())
    return f"{ends} from the range test {auto.job_id}"


def sweep_outcome_lines(sweep: SweepRead) -> list[str]:
    """What a sweep came to: status, trials by state and epochs, the best trial."""
    lines = [
        f"{sweep.kind} {sweep.id} {sweep.status}: {sweep.trials_created}/{sweep.max_trials} "
        f"trials ({counts_text(sweep.counts)}), {sweep.epochs_spent} epochs"
    ]
    if sweep.status_reason:
        lines.append(f"reason: {sweep.status_reason}")
    if sweep.auto_bounds and sweep.auto_bounds.bounds:
        lines.append(f"auto range: {auto_range_text(sweep.auto_bounds)}")
    if best := sweep.best:
        label = f" ({best.label})" if best.label else ""
        params = f"  {params_inline(best.params)}" if best.params else ""
        lines.append(
            f"best: trial {best.number}{label}: {sweep.objective.metric} {num(best.value)}{params}"
        )
    return lines


@dataclass
class _Job:
    id: str | None
    status: str = JobStatus.QUEUED
    epochs: int = 0
    objective: float | None = None


@dataclass
class _Trial:
    number: int
    #: The trial's state as the API names it (``trial_state`` of its events).
    state: str = "queued"
    params: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    jobs: dict[int, _Job] = field(default_factory=dict)


class SweepBoard:
    """What a follower knows of a sweep: the sweep's latest status and counts, and per
    trial its state, params and each of its jobs' status, epochs and objective — kept up
    to date from the events stream."""

    def __init__(self, sweep: SweepRead) -> None:
        self.sweep = sweep
        self.trials: dict[int, _Trial] = {}
        self._told: dict[tuple[int, int], str] = {}

    @property
    def comparison(self) -> bool:
        return self.sweep.kind == SweepKind.COMPARISON

    def _job(self, data: Mapping[str, Any]) -> tuple[_Trial, _Job]:
        number = int(data.get("trial") or 0)
        trial = self.trials.setdefault(number, _Trial(number))
        trial.params = data.get("params") or trial.params
        trial.label = data.get("label") or trial.label
        job = trial.jobs.setdefault(int(data.get("repeat") or 0), _Job(data.get("job_id")))
        job.id = data.get("job_id") or job.id
        return trial, job

    # -- events ----------------------------------------------------------------------

    def on_trial(self, data: Mapping[str, Any]) -> str | None:
        """Take a ``trial`` event; returns its line, or ``None`` for a repeat of what was
        already told (a reconnect sends the current state again)."""
        trial, job = self._job(data)
        trial.state = data.get("trial_state") or trial.state
        job.status = data.get("status") or job.status
        if data.get("epochs_completed") is not None:
            job.epochs = data["epochs_completed"]
        if data.get("objective") is not None:
            job.objective = data["objective"]
        key = (trial.number, int(data.get("repeat") or 0))
        first = key not in self._told
        if self._told.get(key) == job.status:
            return None
        self._told[key] = job.status
        return self.trial_line(trial, key[1], data.get("status_reason"), with_params=first)

    def trial_line(
        self, trial: _Trial, repeat: int, reason: str | None, *, with_params: bool
    ) -> str:
        job = trial.jobs[repeat]
        who = f"trial {trial.number}"
        if self.sweep.repeats > 1:
            who += f" (repeat {repeat})"
        if trial.label:
            who += f" [{trial.label}]"
        line = f"{who}: {job.status}"
        if job.status == JobStatus.PRUNED:
            by = re.match(r"pruned by (\w+)", reason or "")
            if by:  # "pruned by asha at step 2 (epoch): …" says no more than the line
                line += f" by {by.group(1)}"
                reason = None
            line += f" at epoch {job.epochs}"
        elif job.status in JOB_ENDED:
            line += f" after {job.epochs} epochs"
        in_progress = job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        if not in_progress and job.objective is not None:
            line += f", {self.sweep.objective.metric} {num(job.objective)}"
        if reason and not in_progress and job.status != JobStatus.SUCCEEDED:
            line += f" ({reason})"
        if with_params and trial.params and not trial.label:
            line += f"  {params_inline(trial.params)}"
        return line

    def on_epoch(self, data: Mapping[str, Any]) -> None:
        trial, job = self._job(data)
        if job.status == JobStatus.QUEUED:
            job.status = JobStatus.RUNNING
        if trial.state == "queued":
            trial.state = "running"
        job.epochs = max(job.epochs, int(data.get("epoch") or 0))
        value, old = data.get("objective"), job.objective
        if value is None:
            return
        # An epoch event has the objective at that epoch; the job's so far is its best
        # epoch's or its last, as the sweep scores it (trial events then send it as is).
        objective = self.sweep.objective
        if objective.measure == "best" and old is not None:
            value = max(value, old) if objective.direction == "max" else min(value, old)
        job.objective = value

    def on_sweep(self, data: Mapping[str, Any]) -> str | None:
        """Take a ``sweep`` event; returns a line when the status changed."""
        from service.sweeps.schemas import SweepRead

        changed = data.get("status") and data.get("status") != self.sweep.status
        fresh = {k: v for k, v in data.items() if k in SweepRead.model_fields and k != "id"}
        self.sweep = SweepRead.model_validate(self.sweep.model_dump() | fresh)
        if not changed:
            return None
        reason = f" ({data['status_reason']})" if data.get("status_reason") else ""
        return f"sweep {self.sweep.id}: {data['status']}{reason}"

    # -- the table -------------------------------------------------------------------

    def row(self, number: int) -> dict[str, Any]:
        """A trial's state, value (mean objective over its jobs) and epochs."""
        trial = self.trials[number]
        values = [j.objective for j in trial.jobs.values() if j.objective is not None]
        return {
            "number": number,
            "state": trial.state,
            "params": trial.params,
            "label": trial.label,
            "value": sum(values) / len(values) if values else None,
            "epochs": sum(j.epochs for j in trial.jobs.values()),
        }

    def ordered(self) -> list[dict[str, Any]]:
        """Running and queued trials first (by number), then complete ones best first,
        then the others, newest first."""
        rows = [self.row(n) for n in self.trials]
        sign = -1 if self.sweep.objective.direction == "max" else 1

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            rank = _STATE_RANK.get(r["state"], 9)
            if r["state"] == "complete" and r["value"] is not None:
                return (rank, 0, sign * r["value"], r["number"])
            if rank <= 1:
                return (rank, 0, 0, r["number"])
            return (rank, 1, 0, -r["number"])

        return sorted(rows, key=key)

    def header(self) -> str:
        s = self.sweep
        line = f"{s.kind} {s.id}  {s.status}  {s.trials_created}/{s.max_trials} trials"
        counts: Mapping[str, int] = s.counts.model_dump()
        if self.trials:  # the events tell the trials' states before the sweep's counts
            counts = {}
            for r in self.ordered():
                counts[r["state"]] = counts.get(r["state"], 0) + 1
        line += f" ({counts_text(counts)})"
        if s.best:
            line += f"  best: trial {s.best.number} {num(s.best.value)}"
        return line

    def table(self, max_rows: int | None = None) -> tuple[Table, int]:
        rows = self.ordered()
        shown = rows if max_rows is None else rows[: max(max_rows, 1)]
        paths: list[str] = []
        if not self.comparison:
            for r in shown:
                paths += [p for p in r["params"] if p not in paths]
        right = {"justify": "right"}
        out = table(
            ("#", right | {"no_wrap": True}),
            ("STATE", {"no_wrap": True}),
            *(["LABEL"] if self.comparison else []),
            *((p, right) for p in paths),
            (self.sweep.objective.metric, right),
            ("EPOCHS", right),
        )
        for r in shown:
            cells = [str(r["number"]), r["state"]]
            if self.comparison:
                cells.append(r["label"] or "")
            cells += [value_text(r["params"][p]) if p in r["params"] else "" for p in paths]
            add_row(out, [*cells, num(r["value"]), str(r["epochs"])])
        return out, len(rows) - len(shown)

    def render(self, height: int | None = None) -> RenderableType:
        from rich.console import Group

        max_rows = None if height is None else max(height - 4, 3)
        rows, hidden = self.table(max_rows)
        parts: list[RenderableType] = [text(self.header(), "bold", overflow="ellipsis"), rows]
        if hidden:
            parts.append(text(f"… and {hidden} more trials", "dim"))
        return Group(*parts)


def follow_sweep(client: Client, sweep: SweepRead, out: Console) -> SweepRead:
    """Show a sweep's trials from its events stream until it ends; returns the final sweep.

    On a terminal: a live table of the trials (number, state, params, objective, epochs).
    Otherwise: one line per trial event (a trial's job queued, running, pruned, ended …;
    the stream first tells every job so far) and per change of the sweep's status."""
    board = SweepBoard(sweep)
    if not out.is_terminal:
        say(
            out,
            f"{sweep.kind} {sweep.id}: {sweep.status}, {sweep.max_trials} trials, "
            f"{sweep.parallelism} at once",
        )
        for event in client.sweep_events(sweep.id):
            line = None
            if event.event == "trial":
                line = board.on_trial(event.data)
            elif event.event == "epoch":
                board.on_epoch(event.data)
            elif event.event == "sweep":
                line = board.on_sweep(event.data)
                if event.data.get("status") in SWEEP_ENDED:
                    line = None  # told by the outcome lines
            if line:
                say(out, line)
            if event.event == "end":
                break
        return client.sweep(sweep.id)

    from rich.live import Live

    with Live(board.render(out.height), console=out, refresh_per_second=4) as live:
        for event in client.sweep_events(sweep.id):
            if event.event == "trial":
                board.on_trial(event.data)
            elif event.event == "epoch":
                board.on_epoch(event.data)
            elif event.event == "sweep":
                board.on_sweep(event.data)
            live.update(board.render(out.height))
            if event.event == "end":
                break
    return client.sweep(sweep.id)


def follow_sweep_and_exit(client: Client, sweep: SweepRead, as_json: bool) -> None:
    follow_and_exit(
        as_json,
        lambda out: follow_sweep(client, sweep, out),
        sweep_outcome_lines,
        lambda final: final.status,
        f"\nstopped following; sweep {sweep.id} keeps running "
        f"(`{command('sweep cancel')} {sweep.id}` cancels it, "
        f"`{command('sweep follow')} {sweep.id}` picks it up again)",
    )
