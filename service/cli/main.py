"""The ``descent`` command: its groups, its server commands, and the flat names kept as
hidden aliases (:mod:`service.cli.groups`)."""

from __future__ import annotations

import typer

from service.cli import admin, jobs, lab, organise, server, sweeps
from service.cli.catalog import catalog
from service.cli.fleet import workers
from service.cli.groups import add_flat_alias
from service.cli.predict import predict

app = typer.Typer(
    name="descent",
    help="Descent: train and tune neural networks from declarative job specs. "
    "`descent job`, `sweep` and `lab` talk to the API over HTTP (wherever it runs); "
    "the commands under 'Run the service' run it.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(jobs.app)
app.add_typer(sweeps.app)
app.add_typer(lab.app)
app.add_typer(organise.app)
app.command()(catalog)
app.command()(predict)
app.command(short_help="The workers, what each runs, and the queues (admins only).")(workers)
server.register(app)
admin.register(app, server.SERVER)

# The names the commands had before they were grouped, for the scripts that use them.
for grouped, function in (
    ("job submit", jobs.submit),
    ("job follow", jobs.follow),
    ("job list", jobs.list_jobs),
    ("job show", jobs.show),
    ("job cancel", jobs.cancel),
    ("job metrics", jobs.metrics),
    ("job plot", jobs.plot),
    ("job result", jobs.result),
    ("job tag", organise.tag),
    ("job note", organise.note),
    ("project list", organise.list_projects),
    # `descent sweep SPEC` needs no alias: the `sweep` group hands it to `start`.
    ("sweep compare", sweeps.compare),
    ("sweep list", sweeps.list_sweeps),
    ("sweep follow", sweeps.follow),
    ("sweep show", sweeps.show),
    ("sweep cancel", sweeps.cancel),
    ("sweep plot", sweeps.plot),
    ("lab lr-find", lab.lr_find),
    ("lab landscape", lab.landscape),
    ("lab plot", lab.lab_plot),
):
    add_flat_alias(app, grouped, function)
add_flat_alias(app, "job follow", jobs.follow, name="watch")
