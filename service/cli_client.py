"""The user's ``descent`` commands: submit, follow, jobs, show, cancel, metrics, plot,
catalog, and for sweeps: sweep (compare), sweep-follow, sweeps, sweep-show, sweep-cancel,
sweep-plot.

They talk to the API over HTTP only (:mod:`service.client`), wherever it runs. Data goes to
stdout (``--json``: the API's JSON and nothing else), messages and errors to stderr. Exit
codes: 0 done (a followed job or sweep succeeded), 1 a request failed or the server is
unreachable, 2 a usage error, 3 a followed job or sweep failed, 4 diverged, 5 was
cancelled, 130 interrupted.

httpx, rich and yaml are imported inside the commands so that ``descent --help`` stays
instant.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from service.client import ApiError, Client

#: The exit code of a followed job or sweep, by how it ended.
EXIT_CODES = {"succeeded": 0, "failed": 3, "diverged": 4, "cancelled": 5, "pruned": 5}
EXIT_ERROR = 1
#: Left out of a followed job's final metrics (`descent show` and `metrics` have them).
HIDDEN_FINAL = frozenset({"epoch", "epoch_seconds", "samples_per_second"})
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


# -- plumbing ----------------------------------------------------------------------------


def _err(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _client(url: str | None, token: str | None) -> Iterator[Client]:
    """A configured client; any :class:`DescentError` becomes a message and exit 1."""
    from service.client import ApiError, Client, DescentError

    try:
        with Client.from_config(url=url, token=token) as client:
            yield client
    except ApiError as exc:
        _report(exc)
        raise typer.Exit(EXIT_ERROR) from None
    except DescentError as exc:
        _err(f"error: {exc.message}")
        raise typer.Exit(EXIT_ERROR) from None


def _report(exc: ApiError) -> None:
    """The API's message, then each field it names (once: the message of a refused spec
    is already the list of its fields)."""
    lines = []
    for f in exc.fields:
        line = f"{f.get('field', '?')}: {f.get('message', '')}"
        if f.get("allowed") and "allowed" not in line:
            line += f" (allowed: {', '.join(map(str, f['allowed']))})"
        lines.append(line)
    summary = "; ".join(f"{f.get('field', '?')}: {f.get('message', '')}" for f in exc.fields)
    if len(lines) == 1 and exc.message == summary:
        _err(f"error: {lines[0]}")
        return
    if lines and exc.message == summary:
        _err(f"error: {len(lines)} problems with the request ({exc.code}):")
    else:
        _err(f"error: {exc.message}")
    for line in lines:
        _err(f"  {line}")


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        # Piped: no wrapping of long ids at 80 columns.
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _when(value: str | None) -> str:
    """``2026-11-21T10:00:00.123456Z`` → ``2026-11-21 10:00:00``."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


# -- spec files and --set ----------------------------------------------------------------


def yaml_value(text: str) -> Any:
    """A --set value parsed as YAML, reading ``1e-3`` as a number (YAML 1.2 does; PyYAML's
    1.1 rules would make it a string)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def load_spec(source: str) -> dict[str, Any]:
    """A job spec from a .json/.yaml/.yml file, or from stdin for ``-``."""
    import yaml

    if source == "-":
        text, name = sys.stdin.read(), "stdin"
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {source}: {exc.strerror or exc}", param_hint="SPEC"
            ) from None
        except UnicodeDecodeError:
            raise typer.BadParameter(f"{source} is not UTF-8 text", param_hint="SPEC") from None
        name = source
    try:
        if name.endswith(".json"):
            spec = json.loads(text)
        else:
            spec = yaml.load(text, Loader=yaml.SafeLoader)  # JSON is YAML too
    except (ValueError, yaml.YAMLError) as exc:
        raise typer.BadParameter(
            f"{name} is not valid JSON or YAML: {exc}", param_hint="SPEC"
        ) from None
    if not isinstance(spec, dict):
        raise typer.BadParameter(
            f"{name} must hold a mapping (a JSON object), not {type(spec).__name__}",
            param_hint="SPEC",
        )
    return spec


def apply_set(spec: dict[str, Any], assignment: str) -> None:
    """Apply ``optimizer.lr=0.01`` to ``spec``: the value is YAML, dicts are created along
    the dotted path, an integer segment indexes an existing list (``model.hidden.0=32``)."""
    import yaml

    path, sep, raw = assignment.partition("=")
    keys = path.strip().split(".")
    if not sep or not all(k.strip() for k in keys):
        raise typer.BadParameter(
            f"{assignment!r}: expected a dotted path, '=' and a value, e.g. optimizer.lr=0.01",
            param_hint="--set",
        )
    keys = [k.strip() for k in keys]
    try:
        value = yaml_value(raw)
    except yaml.YAMLError as exc:
        raise typer.BadParameter(
            f"{assignment!r}: the value is not YAML: {exc}", param_hint="--set"
        ) from None
    node: Any = spec
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[:depth]) or "the spec"
        if isinstance(node, dict):
            if last:
                node[key] = value
            else:
                if key not in node or node[key] is None:
                    node[key] = {}
                node = node[key]
        elif isinstance(node, list):
            try:
                index = int(key)
                node[index]  # noqa: B018 - must exist
            except (ValueError, IndexError):
                raise typer.BadParameter(
                    f"{assignment!r}: {where} is a list of {len(node)}; {key!r} is not an "
                    "index in it",
                    param_hint="--set",
                ) from None
            if last:
                node[index] = value
            else:
                node = node[index]
        else:
            raise typer.BadParameter(
                f"{assignment!r}: {where} is {json.dumps(node)}, not a mapping; cannot set "
                f"{key!r} in it",
                param_hint="--set",
            )


def image_format(output: Path) -> str:
    """``png`` or ``svg``, from the file name a chart is to be written to."""
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise typer.BadParameter(
            f"{output}: the file must end in .png or .svg", param_hint="'-o' / '--output'"
        )
    return fmt


def write_image(output: Path, data: bytes) -> str:
    """Write a chart; what to tell the user (exit 1 when the file cannot be written)."""
    try:
        output.write_bytes(data)
    except OSError as exc:
        _err(f"error: cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from None
    return f"wrote {output} ({len(data):,} bytes)"


# -- following a job ---------------------------------------------------------------------


def _quality(task: str | None) -> str:
    return "val_r2" if task == "regression" else "val_accuracy"


#: What one row of a job is called, by kind: a training epoch, a range test's step, a
#: landscape's grid row.
UNITS = {"train": "epoch", "lr_range_test": "step", "landscape": "row"}


def _shown_metrics(job: dict[str, Any]) -> tuple[str, ...]:
    """The metrics a follower shows per row."""
    kind = job.get("kind") or "train"
    if kind == "lr_range_test":
        return ("lr", "loss", "smoothed_loss")
    if kind == "landscape":
        return ("loss_min", "loss_max")
    return ("train_loss", "val_loss", _quality(job.get("task")), "lr")


def _metrics_text(metrics: dict[str, Any], names: tuple[str, ...]) -> str:
    return "  ".join(
        f"{n} {_num(metrics[n], 3 if n == 'lr' else 4)}" for n in names if n in metrics
    )


def _monitor(job: dict[str, Any]) -> str:
    stopping = (job.get("spec") or {}).get("regularization", {}).get("early_stopping") or {}
    return stopping.get("monitor", "val_loss")


def _duration(job: dict[str, Any]) -> str | None:
    from datetime import datetime

    try:
        start = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    took = max(0.0, (end - start).total_seconds())
    if took < 60:
        return f"{took:.1f}s"
    seconds = round(took)
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}:{minutes:02d}:{seconds % 60:02d}" if hours else f"{minutes}:{seconds % 60:02d}"


def outcome_lines(job: dict[str, Any]) -> list[str]:
    """What a finished job came to: its status line, then its final metrics."""
    status = job["status"]
    done, asked = job.get("epochs_completed"), job.get("epochs")
    line = f"{status} after {done}/{asked} {UNITS.get(job.get('kind') or 'train', 'epoch')}s"
    if took := _duration(job):
        line += f" in {took}"
    if job.get("stop_epoch"):
        line += f" (early stopping at epoch {job['stop_epoch']})"
    if job.get("best_epoch") is not None:
        line += f"; best epoch {job['best_epoch']}: {_monitor(job)} {_num(job.get('best_value'))}"
    lines = [line]
    if job.get("status_reason"):
        lines.append(f"reason: {job['status_reason']}")
    if final := job.get("final_metrics"):
        shown = {k: v for k, v in final.items() if k not in HIDDEN_FINAL}
        lines.append("final: " + "  ".join(f"{k} {_num(v)}" for k, v in shown.items()))
    return lines


def follow_job(client: Client, job: dict[str, Any], console: Console) -> dict[str, Any]:
    """Show a job's progress from its event stream until it ends; returns the final job.

    On a terminal: a progress bar over epochs with elapsed time, ETA and the latest
    metrics. Otherwise: one line per epoch (and per status change), nothing animated."""
    from service.client import TERMINAL_STATUSES

    job_id = job["id"]
    names = _shown_metrics(job)
    unit = UNITS.get(job.get("kind") or "train", "epoch")
    total = job.get("epochs") or (job.get("spec") or {}).get("training", {}).get("epochs")
    live = console.is_terminal
    state = {"status": job.get("status"), "attempt": job.get("attempt")}

    def status_text(data: dict[str, Any]) -> str | None:
        """A line for a status change worth telling (``None`` for a repeat)."""
        changed = data.get("status") != state["status"]
        resumed = (data.get("attempt") or 0) > (state["attempt"] or 0) and state["attempt"]
        state.update(status=data.get("status"), attempt=data.get("attempt"))
        if resumed:
            return (
                f"attempt {data['attempt']}: the job lost its worker and resumes from "
                f"epoch {data.get('epochs_completed', 0)}"
            )
        if changed:
            reason = f" ({data['status_reason']})" if data.get("status_reason") else ""
            return f"job {job_id}: {data.get('status')}{reason}"
        return None

    if not live:
        console.print(f"job {job_id}: {job.get('status')}, {total} {unit}s", soft_wrap=True)
        for event in client.events(job_id):
            if event.event == "status":
                text = status_text(event.data)
                # A final status is told by the outcome lines.
                if text is not None and event.data.get("status") not in TERMINAL_STATUSES:
                    console.print(text, soft_wrap=True)
            elif event.event == "epoch":
                metrics = event.data.get("metrics") or {}
                line = f"{unit} {event.data.get('epoch')}/{event.data.get('epochs', total)}"
                console.print(f"{line}  {_metrics_text(metrics, names)}", soft_wrap=True)
            elif event.event == "end":
                break
        return client.job(job_id)

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class EpochProgress(Progress):
        """The bar on one line, the latest metrics on the next: on one line they would
        not fit an 80-column terminal."""

        def get_renderables(self):  # noqa: ANN202 - rich's own signature
            yield self.make_tasks_table(self.tasks)
            for task in self.tasks:
                if task.fields.get("metrics"):
                    yield Text("  " + task.fields["metrics"], style="dim", overflow="ellipsis")

    progress = EpochProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn(f"{unit}s"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task(
            job.get("status") or "",
            total=total,
            completed=job.get("epochs_completed") or 0,
            metrics="",
        )
        for event in client.events(job_id):
            data = event.data
            if event.event == "status":
                text = status_text(data)
                if text is not None and data.get("attempt", 1) > 1:
                    progress.console.print(text)
                progress.update(
                    bar,
                    description=data.get("status") or "",
                    completed=data.get("epochs_completed") or 0,
                    total=data.get("epochs") or total,
                )
            elif event.event == "epoch":
                progress.update(
                    bar,
                    completed=data.get("epoch") or 0,
                    metrics=_metrics_text(data.get("metrics") or {}, names),
                )
            elif event.event == "end":
                progress.update(
                    bar,
                    description=data.get("status") or "",
                    completed=data.get("epochs_completed"),
                )
                break
    return client.job(job_id)


def _follow_and_exit(
    as_json: bool,
    follow: Callable[[Console], dict[str, Any]],
    outcome: Callable[[dict[str, Any]], list[str]],
    interrupted: str,
) -> None:
    """Run ``follow`` (a job's or a sweep's) to the end, print how it ended (and the final
    object with --json) and exit with its code; on Ctrl-C print ``interrupted`` and exit
    130. With --json the progress goes to stderr, so stdout holds only the JSON."""
    console = _console(stderr=as_json)
    try:
        final = follow(console)
    except KeyboardInterrupt:
        _err(interrupted)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        _print_json(final)
    for line in outcome(final):
        console.print(line, soft_wrap=True)
    raise typer.Exit(EXIT_CODES.get(final["status"], EXIT_ERROR))


def _print_created(created: dict[str, Any], *, as_json: bool, follow: bool) -> None:
    """What a new job or sweep prints: its id; with --json its JSON, or with --json and
    --follow nothing yet (the final JSON is printed when it ends)."""
    if not as_json:
        typer.echo(created["id"])
    elif not follow:
        _print_json(created)


def _follow_job_and_exit(
    client: Client,
    job: dict[str, Any],
    as_json: bool,
    outcome: Callable[[dict[str, Any]], list[str]] = outcome_lines,
) -> None:
    """Follow a job to its end; ``outcome`` says how it ended (a lab job adds what it
    found)."""
    _follow_and_exit(
        as_json,
        lambda console: follow_job(client, job, console),
        outcome,
        f"\nstopped following; job {job['id']} keeps running "
        f"(`descent cancel {job['id']}` cancels it, `descent follow {job['id']}` "
        "picks it up again)",
    )


# -- commands ----------------------------------------------------------------------------


def submit(
    spec: Annotated[
        str, typer.Argument(help="A job spec: a .json, .yaml or .yml file, or - for stdin.")
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a field: a dotted path and a YAML value, e.g. optimizer.lr=0.01 "
            "or model.hidden=[64,32] (repeatable).",
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
    for assignment in set_ or []:
        apply_set(doc, assignment)
    if name is not None:
        doc["name"] = name
    with _client(url, token) as client:
        job = client.submit(doc)
        _print_created(job, as_json=as_json, follow=follow)
        if follow:
            _follow_job_and_exit(client, job, as_json)


def follow(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Follow a job until it ends (exit 0 succeeded, 3 failed, 4 diverged, 5 cancelled)."""
    with _client(url, token) as client:
        _follow_job_and_exit(client, client.job(job_id), as_json)


def jobs(
    status: Annotated[
        str | None,
        typer.Option(help="Comma-separated statuses, e.g. running,queued.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List your jobs, newest first."""
    with _client(url, token) as client:
        page = client.jobs(status=status, limit=limit)
    if as_json:
        _print_json(page)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "STATUS", "EPOCHS", "BEST", "CREATED"):
        table.add_column(column, no_wrap=column in ("ID", "CREATED"))
    for job in page["items"]:
        table.add_row(
            job["id"],
            job.get("name") or "",
            job["status"],
            f"{job.get('epochs_completed', 0)}/{job.get('epochs', '?')}",
            _num(job.get("best_value")),
            _when(job.get("created_at")),
        )
    console = _console()
    if page["items"]:
        console.print(table)
    if page["total"] > len(page["items"]):
        _err(f"{len(page['items'])} of {page['total']} jobs; --limit shows more")
    elif not page["items"]:
        _err("no jobs")


def _spec_summary(spec: dict[str, Any]) -> str:
    ds, model = spec.get("dataset") or {}, spec.get("model") or {}
    opt, sched = spec.get("optimizer") or {}, spec.get("schedule") or {}
    training = spec.get("training") or {}
    parts = [ds.get("name") or "?"]
    arch = model.get("kind") or "?"
    if model.get("hidden"):
        arch += f" {model['hidden']}"
    if model.get("activation"):
        arch += f" {model['activation']}"
    parts.append(arch)
    parts.append(f"{opt.get('name', '?')} lr={_num(opt.get('lr'))}")
    if sched.get("name") and sched["name"] != "constant":
        parts.append(sched["name"])
    parts.append(f"{training.get('epochs', '?')} epochs x batch {training.get('batch_size', '?')}")
    return " · ".join(parts)


def show(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """One job's key facts: status, epochs, best epoch, final metrics, spec."""
    with _client(url, token) as client:
        job = client.job(job_id)
    if as_json:
        _print_json(job)
        return
    from service.client import TERMINAL_STATUSES

    pending_cancel = job.get("cancel_requested") and job["status"] not in TERMINAL_STATUSES
    rows = [
        ("id", job["id"]),
        ("name", job.get("name") or ""),
        ("status", job["status"] + (" (cancel requested)" if pending_cancel else "")),
    ]
    kind = job.get("kind") or "train"
    if kind != "train":
        rows.append(
            ("kind", kind + (f" of job {job['source_job_id']}" if job.get("source_job_id") else ""))
        )
    if job.get("status_reason"):
        rows.append(("reason", job["status_reason"]))
    epochs = f"{job.get('epochs_completed')}/{job.get('epochs')}"
    if job.get("stop_epoch"):
        epochs += f" (early stopping at epoch {job['stop_epoch']})"
    rows.append((f"{UNITS.get(kind, 'epoch')}s", epochs))
    if auto := job.get("auto_lr"):
        fields = ", ".join(auto.get("fields") or [])
        rows.append(("auto lr", f"{fields} = {_num(auto.get('value'))} ({auto.get('rule')} rule)"))
    if job.get("best_epoch") is not None:
        rows.append(
            ("best", f"epoch {job['best_epoch']}: {_monitor(job)} {_num(job.get('best_value'))}")
        )
    if final := job.get("final_metrics"):
        shown = {k: v for k, v in final.items() if k != "epoch"}
        rows.append(("final", "  ".join(f"{k} {_num(v)}" for k, v in shown.items())))
    rows += [
        ("task", job.get("task") or ""),
        ("parameters", f"{job.get('n_parameters', 0):,}"),
        ("attempts", str(job.get("attempt", 0))),
        ("device", job.get("device") or "-"),
        ("created", _when(job.get("created_at"))),
        ("started", _when(job.get("started_at"))),
        ("finished", _when(job.get("finished_at"))),
        ("spec", _spec_summary(job.get("spec") or {})),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key.ljust(width)}  {value}")


def cancel(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Cancel a job: a queued one never starts, a running one stops at the next batch."""
    with _client(url, token) as client:
        job = client.cancel(job_id)
    if as_json:
        _print_json(job)
        return
    if job["status"] == "cancelled":
        typer.echo(f"cancelled {job['id']}")
    else:
        typer.echo(f"cancel requested: {job['id']} ({job['status']}) stops at its next batch")


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
    with _client(url, token) as client:
        if csv:
            sys.stdout.write(client.metrics_csv(job_id, names=names))
            return
        doc = client.metrics(job_id, names=names)
    if as_json:
        _print_json(doc)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in doc["names"]:
        table.add_column(column, justify="right", no_wrap=True)
    for row in doc["epochs"]:
        table.add_row(*(_num(row.get(c)) for c in doc["names"]))
    if doc["epochs"]:
        _console().print(table)
    else:
        _err(f"no epochs recorded yet (job {doc['status']})")


def plot(
    job_ids: Annotated[
        list[str], typer.Argument(help="One job id, or several to compare.", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Where to write the chart: a .png or .svg file.",
            show_default=False,
        ),
    ],
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
    with _client(url, token) as client:
        if len(job_ids) == 1:
            data = client.plot(job_ids[0], fmt=fmt, metrics=metric or None, log=log or None)
        else:
            first = metric[0] if metric else "val_loss"
            on = any(v.strip().lower() != "false" for v in log or [])
            data = client.compare_plot(job_ids, metric=first, fmt=fmt, log=on)
    _err(write_image(output, data))


def _params_text(params: list[dict[str, Any]] | None, skip: tuple[str, ...] = ()) -> str:
    out = []
    for p in params or []:
        if p.get("name") in skip:
            continue
        default = p.get("default")
        out.append(p["name"] if default is None else f"{p['name']}={json.dumps(default)}")
    return ", ".join(out)


def catalog(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """What a job spec accepts: datasets, models, optimizers and schedules."""
    with _client(url, token) as client:
        doc = client.catalog()
    if as_json:
        _print_json(doc)
        return
    from rich.table import Table

    console = _console()
    common = ("val_fraction", "scaling", "target_scaling", "split_seed")
    sections = [
        (
            "datasets",
            "name",
            lambda d: d.get("task") or "-",
            lambda d: _params_text(d.get("params"), common),
        ),
        ("models", "kind", lambda d: "", lambda d: _params_text(d.get("params"))),
        ("optimizers", "name", lambda d: "", lambda d: _params_text(d.get("params"))),
        (
            "schedules",
            "name",
            lambda d: d.get("stepped") or "",
            lambda d: _params_text(d.get("params"), ("warmup_epochs",)),
        ),
    ]
    for title, key, extra, params in sections:
        table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
        table.add_column(key.upper(), no_wrap=True)
        if title in ("datasets", "schedules"):
            table.add_column("TASK" if title == "datasets" else "STEPPED")
        table.add_column("DESCRIPTION", ratio=3)
        table.add_column("PARAMETERS (defaults)", ratio=2)
        for item in doc.get(title) or []:
            row = [str(item.get(key, ""))]
            if title in ("datasets", "schedules"):
                row.append(extra(item))
            row += [(item.get("description") or "").split("\n")[0], params(item)]
            table.add_row(*row)
        console.print(table)
    if limits := doc.get("limits"):
        console.print("limits: " + ", ".join(f"{k} {_num(v)}" for k, v in limits.items()))
    console.print(
        "every dataset also takes " + ", ".join(common) + "; every schedule warmup_epochs. "
        "`descent catalog --json` has each parameter's bounds and the update rules."
    )


# -- sweeps ------------------------------------------------------------------------------

SweepArg = Annotated[str, typer.Argument(help="The sweep's id.", show_default=False)]
#: Trial states, in the order the counts are told.
TRIAL_STATES = ("queued", "running", "complete", "pruned", "failed", "cancelled")
#: The order of a live table: what is in progress first, then the finished ones.
_STATE_RANK = {"running": 0, "queued": 1, "complete": 2, "pruned": 3, "failed": 4, "cancelled": 5}


def _value_text(value: Any) -> str:
    """A parameter's value: numbers to four significant digits, strings as they are."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | list | dict):
        return json.dumps(value)
    return _num(value)


def _params_inline(params: dict[str, Any] | None) -> str:
    return "  ".join(f"{k}={_value_text(v)}" for k, v in (params or {}).items())


def _objective(sweep: dict[str, Any]) -> dict[str, Any]:
    """``{"metric", "direction", "measure"}`` of a sweep (from the stored spec if the
    answer lacks it)."""
    if sweep.get("objective"):
        return sweep["objective"]
    return (sweep.get("spec") or {}).get("objective") or {"metric": "objective"}


def _counts_text(counts: dict[str, Any] | None) -> str:
    counts = counts or {}
    parts = [f"{counts[s]} {s}" for s in TRIAL_STATES if counts.get(s)]
    return ", ".join(parts) or "none yet"


def trial_state(statuses: list[str]) -> str:
    """A trial's state from its jobs' statuses, as the API counts them: ``queued`` while
    every job waits, ``running`` while any is queued or running, then ``pruned``,
    ``complete`` (every seed succeeded), ``cancelled`` or ``failed``."""
    if not statuses or all(s == "queued" for s in statuses):
        return "queued"
    if any(s in ("queued", "running") for s in statuses):
        return "running"
    if "pruned" in statuses:
        return "pruned"
    if all(s == "succeeded" for s in statuses):
        return "complete"
    if "cancelled" in statuses:
        return "cancelled"
    return "failed"


def apply_sweep_set(spec: dict[str, Any], assignment: str) -> None:
    """``--set`` for a sweep spec: as :func:`apply_set`, except that the keys of ``space``
    and of a configuration's ``set`` are dotted paths themselves, so everything after
    ``space.`` (or ``configurations.N.set.``) is one key: ``space.optimizer.lr={uniform:
    [0, 1]}``. A null value there removes the entry."""
    import yaml

    path, sep, raw = assignment.partition("=")
    path = path.strip()
    match = re.fullmatch(r"space\.(.+)|configurations\.(\d+)\.set\.(.+)", path)
    if not sep or match is None:
        apply_set(spec, assignment)
        return
    try:
        value = yaml_value(raw)
    except yaml.YAMLError as exc:
        raise typer.BadParameter(
            f"{assignment!r}: the value is not YAML: {exc}", param_hint="--set"
        ) from None
    if match.group(1) is not None:
        key, where = match.group(1).strip(), spec.get("space")
        if where is None:
            where = spec["space"] = {}
        name = "space"
    else:
        index, key = int(match.group(2)), match.group(3).strip()
        configurations = spec.get("configurations")
        if not isinstance(configurations, list) or index >= len(configurations):
            count = len(configurations) if isinstance(configurations, list) else 0
            raise typer.BadParameter(
                f"{assignment!r}: configurations is a list of {count}; {index} is not an "
                "index in it",
                param_hint="--set",
            )
        config = configurations[index]
        if not isinstance(config, dict):
            raise typer.BadParameter(
                f"{assignment!r}: configurations.{index} is not a mapping", param_hint="--set"
            )
        where = config.setdefault("set", {})
        name = f"configurations.{index}.set"
    if not isinstance(where, dict):
        raise typer.BadParameter(f"{assignment!r}: {name} is not a mapping", param_hint="--set")
    if value is None:
        where.pop(key, None)
    else:
        where[key] = value


def auto_range_text(auto: dict[str, Any]) -> str:
    """A sweep's "auto" ends: the range test's job and, once it has ended, what it set."""
    if not auto.get("bounds"):
        return f"waiting for the range test {auto.get('job_id')} ({', '.join(auto['paths'])})"
    ends = ", ".join(f"{p} [{lo:g}, {hi:g}]" for p, (lo, hi) in auto["bounds"].items())
    return f"{ends} from the range test {auto.get('job_id')}"


def sweep_outcome_lines(sweep: dict[str, Any]) -> list[str]:
    """What a sweep came to: status, trials by state and epochs, the best trial."""
    objective = _objective(sweep)
    created, asked = sweep.get("trials_created"), sweep.get("max_trials")
    lines = [
        f"{sweep.get('kind', 'sweep')} {sweep['id']} {sweep['status']}: {created}/{asked} "
        f"trials ({_counts_text(sweep.get('counts'))}), {sweep.get('epochs_spent', 0)} epochs"
    ]
    if sweep.get("status_reason"):
        lines.append(f"reason: {sweep['status_reason']}")
    if (sweep.get("auto_bounds") or {}).get("bounds"):
        lines.append(f"auto range: {auto_range_text(sweep['auto_bounds'])}")
    best = sweep.get("best")
    if best:
        label = f" ({best['label']})" if best.get("label") else ""
        lines.append(
            f"best: trial {best['number']}{label}: {objective.get('metric')} "
            f"{_num(best.get('value'))}"
            + (f"  {_params_inline(best.get('params'))}" if best.get("params") else "")
        )
    return lines


class SweepBoard:
    """What a follower knows of a sweep: the sweep's latest status and counts, and per
    trial its params and each of its jobs' status, epochs and objective — kept up to date
    from the events stream."""

    def __init__(self, sweep: dict[str, Any]) -> None:
        self.sweep = dict(sweep)
        self.objective = _objective(sweep)
        self.comparison = sweep.get("kind") == "comparison"
        configurations = (sweep.get("spec") or {}).get("configurations") or []
        self._labels = [c.get("label") if isinstance(c, dict) else None for c in configurations]
        self.trials: dict[int, dict[str, Any]] = {}
        self._told: dict[tuple[int, int], str] = {}

    def _trial(
        self, number: int, params: dict[str, Any] | None = None, label: str | None = None
    ) -> dict[str, Any]:
        if label is None and 0 <= number < len(self._labels):
            label = self._labels[number]
        row = self.trials.setdefault(number, {"params": {}, "label": None, "jobs": {}})
        if params:
            row["params"] = params
        if label:
            row["label"] = label
        return row

    def _job(self, data: dict[str, Any]) -> dict[str, Any]:
        row = self._trial(int(data.get("trial") or 0), data.get("params"), data.get("label"))
        return row["jobs"].setdefault(
            data.get("repeat") or 0,
            {"id": data.get("job_id"), "status": "queued", "epochs": 0, "objective": None},
        )

    @property
    def repeats(self) -> int:
        return int(self.sweep.get("repeats") or (self.sweep.get("spec") or {}).get("repeats") or 1)

    # -- events ----------------------------------------------------------------------

    def on_trial(self, data: dict[str, Any]) -> str | None:
        """Take a ``trial`` event; returns its line, or ``None`` for a repeat of what was
        already told (a reconnect sends the current state again)."""
        job = self._job(data)
        job["status"] = data.get("status") or job["status"]
        if data.get("job_id"):
            job["id"] = data["job_id"]
        if data.get("epochs_completed") is not None:
            job["epochs"] = data["epochs_completed"]
        if data.get("objective") is not None:
            job["objective"] = data["objective"]
        number, repeat = int(data.get("trial") or 0), data.get("repeat") or 0
        first = (number, repeat) not in self._told
        if self._told.get((number, repeat)) == job["status"]:
            return None
        self._told[(number, repeat)] = job["status"]
        return self.trial_line(number, repeat, data, with_params=first)

    def trial_line(
        self, number: int, repeat: int, data: dict[str, Any], *, with_params: bool
    ) -> str:
        row, job = self.trials[number], self.trials[number]["jobs"][repeat]
        who = f"trial {number}"
        if self.repeats > 1:
            who += f" (repeat {repeat})"
        if row.get("label"):
            who += f" [{row['label']}]"
        status = job["status"]
        line = f"{who}: {status}"
        metric = self.objective.get("metric")
        reason = data.get("status_reason")
        if status == "pruned":
            by = re.match(r"pruned by (\w+)", reason or "")
            if by:  # "pruned by asha at step 2 (epoch): …" says no more than the line
                line += f" by {by.group(1)}"
                reason = None
            line += f" at epoch {job['epochs']}"
        elif status in ("succeeded", "failed", "diverged", "cancelled"):
            line += f" after {job['epochs']} epochs"
        if status not in ("queued", "running") and job.get("objective") is not None:
            line += f", {metric} {_num(job['objective'])}"
        if reason and status not in ("queued", "running", "succeeded"):
            line += f" ({reason})"
        if with_params and row["params"] and not row.get("label"):
            line += f"  {_params_inline(row['params'])}"
        return line

    def on_epoch(self, data: dict[str, Any]) -> None:
        job = self._job(data)
        if job["status"] == "queued":
            job["status"] = "running"
        if data.get("job_id"):
            job["id"] = data["job_id"]
        job["epochs"] = max(job["epochs"], int(data.get("epoch") or 0))
        value, old = data.get("objective"), job.get("objective")
        if value is None:
            return
        if self.objective.get("measure") == "best" and old is not None:
            value = max(value, old) if self.objective.get("direction") == "max" else min(value, old)
        job["objective"] = value

    def on_sweep(self, data: dict[str, Any]) -> str | None:
        """Take a ``sweep`` event; returns a line when the status changed."""
        changed = data.get("status") and data.get("status") != self.sweep.get("status")
        self.sweep.update({k: v for k, v in data.items() if k != "sweep_id"})
        if not changed:
            return None
        reason = f" ({data['status_reason']})" if data.get("status_reason") else ""
        return f"sweep {self.sweep.get('id')}: {data['status']}{reason}"

    # -- the table -------------------------------------------------------------------

    def row(self, number: int) -> dict[str, Any]:
        """A trial's state, value (mean objective over its jobs) and epochs."""
        trial = self.trials[number]
        jobs = list(trial["jobs"].values())
        values = [j["objective"] for j in jobs if j.get("objective") is not None]
        return {
            "number": number,
            "state": trial_state([j["status"] for j in jobs]),
            "params": trial["params"],
            "label": trial.get("label"),
            "value": sum(values) / len(values) if values else None,
            "epochs": sum(j["epochs"] or 0 for j in jobs),
        }

    def ordered(self) -> list[dict[str, Any]]:
        """Running and queued trials first (by number), then complete ones best first,
        then the others, newest first."""
        rows = [self.row(n) for n in self.trials]
        sign = -1 if self.objective.get("direction") == "max" else 1

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
        text = (
            f"{s.get('kind', 'sweep')} {s.get('id')}  {s.get('status')}  "
            f"{s.get('trials_created', len(self.trials))}/{s.get('max_trials', '?')} trials"
        )
        counts = s.get("counts")
        if self.trials:  # the events tell the trials' states before the sweep's counts
            counts = {}
            for r in self.ordered():
                counts[r["state"]] = counts.get(r["state"], 0) + 1
        if counts:
            text += f" ({_counts_text(counts)})"
        best = s.get("best")
        if best:
            text += f"  best: trial {best['number']} {_num(best.get('value'))}"
        return text

    def table(self, max_rows: int | None = None) -> Any:
        from rich.table import Table

        rows = self.ordered()
        shown = rows if max_rows is None else rows[: max(max_rows, 1)]
        paths: list[str] = []
        if not self.comparison:
            for r in shown:
                paths += [p for p in r["params"] if p not in paths]
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("STATE", no_wrap=True)
        if self.comparison:
            table.add_column("LABEL")
        for p in paths:
            table.add_column(p, justify="right")
        table.add_column(str(self.objective.get("metric", "OBJECTIVE")), justify="right")
        table.add_column("EPOCHS", justify="right")
        for r in shown:
            cells = [str(r["number"]), r["state"]]
            if self.comparison:
                cells.append(r.get("label") or "")
            cells += [_value_text(r["params"][p]) if p in r["params"] else "" for p in paths]
            cells += [_num(r["value"]), str(r["epochs"])]
            table.add_row(*cells)
        return table, len(rows) - len(shown)

    def render(self, height: int | None = None) -> Any:
        from rich.console import Group
        from rich.text import Text

        max_rows = None if height is None else max(height - 4, 3)
        table, hidden = self.table(max_rows)
        parts: list[Any] = [Text(self.header(), style="bold", overflow="ellipsis"), table]
        if hidden:
            parts.append(Text(f"… and {hidden} more trials", style="dim"))
        return Group(*parts)


def follow_sweep(client: Client, sweep: dict[str, Any], console: Console) -> dict[str, Any]:
    """Show a sweep's trials from its events stream until it ends; returns the final sweep.

    On a terminal: a live table of the trials (number, state, params, objective, epochs).
    Otherwise: one line per trial event (a trial's job queued, running, pruned, ended …;
    the stream first tells every job so far) and per change of the sweep's status."""
    from service.client import SWEEP_TERMINAL_STATUSES

    sweep_id = sweep["id"]
    board = SweepBoard(sweep)

    if not console.is_terminal:
        console.print(
            f"{sweep.get('kind', 'sweep')} {sweep_id}: {sweep.get('status')}, "
            f"{sweep.get('max_trials', '?')} trials, {sweep.get('parallelism', '?')} at once",
            soft_wrap=True,
        )
        for event in client.sweep_events(sweep_id):
            line = None
            if event.event == "trial":
                line = board.on_trial(event.data)
            elif event.event == "epoch":
                board.on_epoch(event.data)
            elif event.event == "sweep":
                line = board.on_sweep(event.data)
                if event.data.get("status") in SWEEP_TERMINAL_STATUSES:
                    line = None  # told by the outcome lines
            if line:
                console.print(line, soft_wrap=True)
            if event.event == "end":
                break
        return client.sweep(sweep_id)

    from rich.live import Live

    with Live(
        board.render(console.height), console=console, refresh_per_second=4, transient=False
    ) as live:
        for event in client.sweep_events(sweep_id):
            if event.event == "trial":
                board.on_trial(event.data)
            elif event.event == "epoch":
                board.on_epoch(event.data)
            elif event.event == "sweep":
                board.on_sweep(event.data)
            live.update(board.render(console.height))
            if event.event == "end":
                break
    return client.sweep(sweep_id)


def _follow_sweep_and_exit(client: Client, sweep: dict[str, Any], as_json: bool) -> None:
    _follow_and_exit(
        as_json,
        lambda console: follow_sweep(client, sweep, console),
        sweep_outcome_lines,
        f"\nstopped following; sweep {sweep['id']} keeps running "
        f"(`descent sweep-cancel {sweep['id']}` cancels it, "
        f"`descent sweep-follow {sweep['id']}` picks it up again)",
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


def _start_sweep(
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
    for assignment in set_ or []:
        apply_sweep_set(doc, assignment)
    if name is not None:
        doc["name"] = name
    if comparison and "configurations" not in doc:
        raise typer.BadParameter(
            f"{spec}: a comparison needs `configurations` (a list of {{label, set}}); "
            "`descent sweep` starts a search over a space",
            param_hint="SPEC",
        )
    with _client(url, token) as client:
        created = client.create_sweep(doc)
        _print_created(created, as_json=as_json, follow=follow)
        if created.get("auto_bounds") and not as_json:
            # stderr: stdout stays the id alone, for scripts.
            typer.echo(f"auto range: {auto_range_text(created['auto_bounds'])}", err=True)
        if follow:
            _follow_sweep_and_exit(client, created, as_json)


def sweep(
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
    _start_sweep(spec, set_, name, follow, url, token, as_json)


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

    The same as `descent sweep` with a spec that has `configurations`, but refuses one that
    has none. `descent sweep-show ID` then has mean ± std, 95% CIs and paired tests.

    Exit codes with --follow: 0 succeeded, 3 failed, 5 cancelled, 130 Ctrl-C."""
    _start_sweep(spec, set_, name, follow, url, token, as_json, comparison=True)


def sweep_follow(
    sweep_id: SweepArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Follow a sweep until it ends (exit 0 succeeded, 3 failed, 5 cancelled)."""
    with _client(url, token) as client:
        _follow_sweep_and_exit(client, client.sweep(sweep_id), as_json)


def sweeps(
    status: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated statuses: running, succeeded, failed, cancelled.",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="sweep or comparison.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many, newest first.")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List your sweeps and comparisons, newest first."""
    with _client(url, token) as client:
        page = client.sweeps(status=status, kind=kind, limit=limit)
    if as_json:
        _print_json(page)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "KIND", "STATUS", "TRIALS", "EPOCHS", "BEST", "CREATED"):
        table.add_column(column, no_wrap=column in ("ID", "CREATED"))
    for s in page["items"]:
        best = s.get("best") or {}
        objective = _objective(s)
        table.add_row(
            s["id"],
            s.get("name") or "",
            s.get("kind") or "sweep",
            s["status"],
            f"{s.get('trials_created', 0)}/{s.get('max_trials', '?')}",
            str(s.get("epochs_spent", 0)),
            f"{objective.get('metric')} {_num(best['value'])}" if best else "-",
            _when(s.get("created_at")),
        )
    if page["items"]:
        _console().print(table)
    if page["total"] > len(page["items"]):
        _err(f"{len(page['items'])} of {page['total']} sweeps; --limit shows more")
    elif not page["items"]:
        _err("no sweeps")


def _leaderboard(sweep: dict[str, Any], trials: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    objective = _objective(sweep)
    comparison = sweep.get("kind") == "comparison"
    paths: list[str] = []
    if not comparison:
        for t in trials:
            paths += [p for p in t.get("params") or {} if p not in paths]
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    if comparison:
        table.add_column("LABEL")
    for p in paths:
        table.add_column(p, justify="right")
    table.add_column(str(objective.get("metric")), justify="right", no_wrap=True)
    table.add_column("EPOCHS", justify="right", no_wrap=True)
    for t in trials:
        params = t.get("params") or {}
        cells = [str(t["number"]), t.get("state") or ""]
        if comparison:
            cells.append(t.get("label") or "")
        cells += [_value_text(params[p]) if p in params else "" for p in paths]
        cells += [_num(t.get("value")), str(t.get("epochs", 0))]
        table.add_row(*cells)
    return table


def _p_text(p: Any) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _comparison_table(doc: dict[str, Any]) -> Any:
    """Per configuration: n, mean ± std, 95% CI; and for each other than the best, its
    paired tests against the best."""
    from rich.table import Table

    tests = {t["other"]: t for t in doc.get("tests") or []}
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("#", "CONFIGURATION", "N", "MEAN ± STD", "95% CI", "BEST − THIS", "p (t)",
                   "p (wilcoxon)", "p (holm)"):  # fmt: skip
        table.add_column(column, justify="left" if column == "CONFIGURATION" else "right")
    for c in doc.get("configurations") or []:
        mean = _num(c.get("mean"))
        if c.get("std") is not None:
            mean += f" ± {_num(c['std'])}"
        ci = c.get("ci95")
        ci_text = f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "-"
        label = c.get("label") or _params_inline(c.get("params"))
        if c["number"] == doc.get("best"):
            label += " (best)"
        test = tests.get(c["number"])
        if test:
            extra = [
                _num(test.get("mean_difference")),
                _p_text(test.get("p_value")),
                _p_text(test.get("wilcoxon_p")),
                _p_text(test.get("holm_p")),
            ]
        else:
            extra = ["", "", "", ""]
        table.add_row(str(c["number"]), label, str(c.get("n", 0)), mean, ci_text, *extra)
    return table


def sweep_show(
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
    from service.client import ApiError

    with _client(url, token) as client:
        doc = client.sweep(sweep_id)
        page = client.trials(sweep_id, limit=trials) if trials else None
        stats = None
        if (doc.get("repeats") or 1) >= 2:
            try:
                stats = client.comparison(sweep_id)
            except ApiError as exc:
                if exc.status != 409:
                    raise
    if as_json:
        _print_json({"sweep": doc, "trials": page, "comparison": stats})
        return
    objective = _objective(doc)
    pending_cancel = doc.get("cancel_requested") and doc["status"] == "running"
    rows = [
        ("id", doc["id"]),
        ("name", doc.get("name") or ""),
        ("kind", doc.get("kind") or "sweep"),
        ("status", doc["status"] + (" (cancel requested)" if pending_cancel else "")),
    ]
    if doc.get("status_reason"):
        rows.append(("reason", doc["status_reason"]))
    rows += [
        (
            "trials",
            f"{doc.get('trials_created')}/{doc.get('max_trials')} "
            f"({_counts_text(doc.get('counts'))})",
        ),  # fmt: skip
        ("epochs spent", f"{doc.get('epochs_spent', 0):,}"),
        (
            "objective",
            f"{objective.get('metric')} ({objective.get('direction')}, "
            f"{objective.get('measure', 'best')} epoch)",
        ),
    ]
    spec = doc.get("spec") or {}
    if doc.get("kind") != "comparison":
        sampler, pruner = spec.get("sampler") or {}, spec.get("pruner") or {}
        how = f"sampler {sampler.get('name', '?')}"
        if sampler.get("seed") is not None:
            how += f" (seed {sampler['seed']})"
        how += f" · pruner {pruner.get('name', 'none')}"
        if pruner.get("name") not in (None, "none"):
            how += f" (grace {pruner.get('grace')}, per {pruner.get('measure')})"
        rows.append(("search", how))
    if auto := doc.get("auto_bounds"):
        rows.append(("auto range", auto_range_text(auto)))
    rows.append(
        (
            "runs",
            f"{doc.get('parallelism', '?')} trials at once × {doc.get('repeats', 1)} "
            f"seed{'s' if (doc.get('repeats') or 1) > 1 else ''}",
        )
    )
    best = doc.get("best")
    if best:
        label = f" ({best['label']})" if best.get("label") else ""
        rows.append(("best", f"trial {best['number']}{label}: {_num(best.get('value'))}"))
        for path, value in (best.get("params") or {}).items():
            rows.append(("", f"  {path} = {_value_text(value)}"))
    else:
        rows.append(("best", "-"))
    rows += [
        ("task", doc.get("task") or ""),
        ("created", _when(doc.get("created_at"))),
        ("finished", _when(doc.get("finished_at"))),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key.ljust(width)}  {value}")
    console = _console()
    if page and page["items"]:
        typer.echo("")
        shown = len(page["items"])
        typer.echo(
            f"trials (best first, {shown} of {page['total']}):"
            if page["total"] > shown
            else "trials (best first):"
        )
        console.print(_leaderboard(doc, page["items"]))
    if stats:
        typer.echo("")
        seeds = ", ".join(str(s) for s in stats.get("seeds") or [])
        typer.echo(
            f"comparison of {stats.get('metric')} ({stats.get('direction')}) over seeds "
            f"{seeds}; tests: the best against each, paired by seed:"
        )
        console.print(_comparison_table(stats))


def sweep_cancel(
    sweep_id: SweepArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Cancel a sweep: no new trial starts, queued ones never run, running ones stop."""
    with _client(url, token) as client:
        doc = client.cancel_sweep(sweep_id)
    if as_json:
        _print_json(doc)
        return
    if doc["status"] == "cancelled":
        line = (
            f"cancelled {doc['id']} after {doc.get('trials_created', 0)} trials "
            f"({_counts_text(doc.get('counts'))})"
        )
        running = (doc.get("counts") or {}).get("running") or 0
        if running:
            trials = "trials stop at their" if running > 1 else "trial stops at its"
            line += f"; {running} running {trials} next batch"
        typer.echo(line)
    else:
        typer.echo(f"cancel requested: {doc['id']} ({doc['status']}); its trials stop shortly")


def sweep_plot(
    sweep_id: SweepArg,
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Where to write the chart: a .png or .svg file.",
            show_default=False,
        ),
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            "-k",
            help="history (objective by trial, running best), parallel (parallel "
            "coordinates), intermediate (every trial's curve, pruned ones marked), "
            "importance, or comparison (mean curves with 95% bands; repeats ≥ 2).",
        ),
    ] = "history",
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Draw a sweep's chart."""
    from service.client import SWEEP_PLOTS

    if kind not in SWEEP_PLOTS:
        raise typer.BadParameter(
            f"{kind!r}: choose one of {', '.join(SWEEP_PLOTS)}", param_hint="'--kind'"
        )
    fmt = image_format(output)
    with _client(url, token) as client:
        data = client.sweep_plot(sweep_id, kind=kind, fmt=fmt)
    _err(write_image(output, data))


def register(app: typer.Typer) -> None:
    """Add the commands to the ``descent`` app."""
    app.command()(submit)
    app.command()(follow)
    app.command("watch", hidden=True)(follow)
    app.command()(jobs)
    app.command()(show)
    app.command()(cancel)
    app.command()(metrics)
    app.command()(plot)
    app.command()(catalog)
    app.command()(sweep)
    app.command()(compare)
    app.command("sweep-follow")(sweep_follow)
    app.command()(sweeps)
    app.command("sweep-show")(sweep_show)
    app.command("sweep-cancel")(sweep_cancel)
    app.command("sweep-plot")(sweep_plot)
