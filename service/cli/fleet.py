"""``descent workers``: the worker fleet and its queues, as ``GET /v1/workers`` (admins
only) tells them (docs/fleet.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.options import JsonOpt, TokenOpt, UrlOpt, connect
from service.cli.output import console, err, num, print_json, table, text

if TYPE_CHECKING:
    from service.fleet.schemas import DeviceRead, FleetRead, QueueRead, WorkerRead

#: How each state stands out in a terminal; the word itself always says it.
STATE_STYLES = {"ready": "green", "starting": "yellow", "stopping": "yellow", "lost": "bold red"}


def age(seconds: float | None) -> str:
    """``4s``, ``3m05s``, ``2h10m``, ``3d4h``: how long ago, to a glance's precision."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def device_text(device: DeviceRead) -> str:
    """``cpu``, or ``cuda NVIDIA H100 80GB HBM3 (79.6 GiB)``."""
    if device.kind == "cpu" and device.name == "cpu":
        return "cpu"
    out = f"{device.kind} {device.name}"
    if device.memory_bytes:
        out += f" ({device.memory_bytes / 2**30:.1f} GiB)"
    return out


def torch_text(worker: WorkerRead) -> str:
    """``2.13.0``, with the CUDA it was built for: ``2.13.0 cu12.4``."""
    out = worker.torch_version or "-"
    return f"{out} cu{worker.cuda_version}" if worker.cuda_version else out


def running_text(worker: WorkerRead) -> str:
    """Each job it runs, ``name (id8) epoch/epochs``, and how many messages it holds."""
    parts = [f"{j.name} ({j.id[:8]}) {j.epoch}/{j.epochs}" for j in worker.running]
    if worker.held:
        parts.append(f"+{len(worker.held)} held")
    return ", ".join(parts) or "-"


def _workers_table(fleet: FleetRead) -> None:
    rows = table(
        ("WORKER", {"no_wrap": True}),
        "STATE",
        "QUEUE",
        "DEVICE",
        "TORCH",
        ("THREADS", {"justify": "right"}),
        ("CONC", {"justify": "right"}),
        "RUNNING",
        ("HEARTBEAT", {"justify": "right"}),
    )
    for w in fleet.workers:
        rows.add_row(
            text(w.id),
            text(w.state, style=STATE_STYLES.get(w.state, "")),
            text(w.queue),
            text(", ".join(device_text(d) for d in w.devices) or "-"),
            text(torch_text(w)),
            text(num(w.torch_threads)),
            text(str(w.concurrency)),
            text(running_text(w)),
            text(age(w.heartbeat_age_seconds) + " ago"),
        )
    console().print(rows)


def _queue_depth(queue: QueueRead) -> str:
    return "?" if queue.depth is None else str(queue.depth)


def _queues_table(fleet: FleetRead) -> None:
    rows = table(
        ("QUEUE", {"no_wrap": True}),
        ("DEPTH", {"justify": "right"}),
        ("QUEUED", {"justify": "right"}),
        ("OLDEST", {"justify": "right"}),
        ("RUNNING", {"justify": "right"}),
        ("WORKERS", {"justify": "right"}),
    )
    for q in fleet.queues:
        rows.add_row(
            text(q.name),
            text(_queue_depth(q)),
            text(str(q.queued)),
            text(age(q.oldest_queued_seconds)),
            text(str(q.running)),
            text(str(q.workers), style="" if q.workers or not q.queued else "bold red"),
        )
    console().print(rows)


def workers(
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="Only workers in these states, comma-separated: starting, ready, stopping, "
            "stopped or lost (however long ago they ended).",
            show_default=False,
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also the workers that ended more than a day ago.")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The worker fleet (admins only): each worker's state, device, torch threads and what
    it runs; then each queue's broker depth, queued jobs (and how long the oldest has
    waited), running jobs and live workers.

    lost: silent for longer than the lease (DESCENT_LEASE_SECONDS), never stopped.

    The reaper has already handed a lost worker's jobs back.

    DEPTH is ? when the broker could not be asked.
    """
    with connect(url, token) as client:
        fleet = client.workers(state, all=show_all)
    if as_json:
        print_json(fleet)
        return
    if fleet.workers:
        _workers_table(fleet)
    else:
        err("no workers have registered" if not state else "no workers in that state")
    if fleet.hidden and not state and not show_all:
        err(f"({fleet.hidden} more not shown: ended over a day ago; --all lists them)")
    typer.echo()
    _queues_table(fleet)
    if not fleet.broker_reachable:
        why = next((q.broker_error for q in fleet.queues if q.broker_error), None)
        err(f"warning: the broker could not be asked for the queues' depths: {why}")
