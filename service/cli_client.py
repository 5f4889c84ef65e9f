"""The user's ``descent`` commands: submit, follow, jobs, show, cancel, metrics, plot, catalog.

They talk to the API over HTTP only (:mod:`service.client`), wherever it runs. Data goes to
stdout (``--json``: the API's JSON and nothing else), messages and errors to stderr. Exit
codes: 0 done (a followed job succeeded), 1 a request failed or the server is unreachable,
2 a usage error, 3 a followed job failed, 4 diverged, 5 was cancelled, 130 interrupted.

httpx, rich and yaml are imported inside the commands so that ``descent --help`` stays
instant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from service.client import ApiError, Client

#: The exit code of a followed job, by how it ended.
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


# -- following a job ---------------------------------------------------------------------


def _quality(task: str | None) -> str:
    return "val_r2" if task == "regression" else "val_accuracy"


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
    line = f"{status} after {done}/{asked} epochs"
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
    names = ("train_loss", "val_loss", _quality(job.get("task")), "lr")
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
        console.print(f"job {job_id}: {job.get('status')}, {total} epochs", soft_wrap=True)
        for event in client.events(job_id):
            if event.event == "status":
                text = status_text(event.data)
                # A final status is told by the outcome lines.
                if text is not None and event.data.get("status") not in TERMINAL_STATUSES:
                    console.print(text, soft_wrap=True)
            elif event.event == "epoch":
                metrics = event.data.get("metrics") or {}
                line = f"epoch {event.data.get('epoch')}/{event.data.get('epochs', total)}"
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
        TextColumn("epochs"),
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


def _follow_and_exit(client: Client, job: dict[str, Any], as_json: bool) -> None:
    """Follow ``job``, report how it ended and exit with its code (130 on Ctrl-C)."""
    console = _console(stderr=as_json)
    try:
        final = follow_job(client, job, console)
    except KeyboardInterrupt:
        _err(
            f"\nstopped following; job {job['id']} keeps running "
            f"(`descent cancel {job['id']}` cancels it, `descent follow {job['id']}` "
            "picks it up again)"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        _print_json(final)
    for line in outcome_lines(final):
        console.print(line, soft_wrap=True)
    raise typer.Exit(EXIT_CODES.get(final["status"], EXIT_ERROR))


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
        if as_json and not follow:
            _print_json(job)
            return
        if not as_json:
            typer.echo(job["id"])
        if follow:
            _follow_and_exit(client, job, as_json)


def follow(
    job_id: JobArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Follow a job until it ends (exit 0 succeeded, 3 failed, 4 diverged, 5 cancelled)."""
    with _client(url, token) as client:
        _follow_and_exit(client, client.job(job_id), as_json)


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
    if job.get("status_reason"):
        rows.append(("reason", job["status_reason"]))
    epochs = f"{job.get('epochs_completed')}/{job.get('epochs')}"
    if job.get("stop_epoch"):
        epochs += f" (early stopping at epoch {job['stop_epoch']})"
    rows.append(("epochs", epochs))
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
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise typer.BadParameter(
            f"{output}: the file must end in .png or .svg", param_hint="'-o' / '--output'"
        )
    with _client(url, token) as client:
        if len(job_ids) == 1:
            data = client.plot(job_ids[0], fmt=fmt, metrics=metric or None, log=log or None)
        else:
            first = metric[0] if metric else "val_loss"
            on = any(v.strip().lower() != "false" for v in log or [])
            data = client.compare_plot(job_ids, metric=first, fmt=fmt, log=on)
    try:
        output.write_bytes(data)
    except OSError as exc:
        _err(f"error: cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from None
    _err(f"wrote {output} ({len(data):,} bytes)")


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
