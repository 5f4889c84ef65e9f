"""``descent job tag``, ``descent job note`` and ``descent project …``: label jobs, and
list, rename and delete projects (docs/search.md). ``descent job list --project P
--filter '…' --tag k=v`` searches (service/cli/jobs.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.options import JobArg, JsonOpt, TokenOpt, UrlOpt, connect
from service.cli.output import add_row, console, echo, err, print_json, table, when

app = typer.Typer(
    name="project",
    help="List, rename and delete your projects (a job joins one with --project).",
    no_args_is_help=True,
)


def parse_tags(pairs: list[str], *, hint: str) -> dict[str, str | None]:
    """``["stage=baseline", "draft="]`` → ``{"stage": "baseline", "draft": None}``: an
    empty value removes that tag."""
    out: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(
                f"{pair!r}: expected KEY=VALUE, e.g. stage=baseline", param_hint=hint
            )
        out[key.strip()] = value or None
    return out


def quoted(value: str) -> str:
    """A string literal of the filter language."""
    return "'" + value.replace("'", "''") + "'"


def tag_clauses(pairs: list[str]) -> list[str]:
    """``--tag k=v`` options as filter clauses (``tags.k = 'v'``; ``k=``: no tag k)."""
    clauses = []
    for key, value in parse_tags(pairs, hint="--tag").items():
        clauses.append(f"tags.{key} is null" if value is None else f"tags.{key} = {quoted(value)}")
    return clauses


def tag(
    job_id: JobArg,
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            help="KEY=VALUE tags to set; KEY= (nothing after '=') removes that tag.",
            show_default=False,
        ),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", help="A tag key to remove (repeatable).", show_default=False),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set or remove a job's tags; the others stay. Prints its tags."""
    changes = parse_tags(pairs or [], hint="KEY=VALUE")
    changes.update(dict.fromkeys(remove or []))
    if not changes:
        raise typer.BadParameter("give KEY=VALUE tags or --remove KEY", param_hint="KEY=VALUE")
    with connect(url, token) as client:
        job = client.update_job(job_id, merge_tags=changes)
    if as_json:
        print_json(job)
        return
    shown = "  ".join(f"{k}={v}" for k, v in sorted(job.tags.items()))
    echo(f"{job.id}: {shown or 'no tags'}")


def note(
    job_id: JobArg,
    text: Annotated[str, typer.Argument(help='The note; "" clears it.', show_default=False)],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a job's note (replacing the one it had)."""
    with connect(url, token) as client:
        job = client.update_job(job_id, note=text)
    if as_json:
        print_json(job)
    else:
        echo(f"{job.id}: {'note cleared' if job.note is None else 'note saved'}")


@app.command("list")
def list_projects(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Your projects, with how many jobs and sweeps are in each."""
    with connect(url, token) as client:
        page = client.projects()
    if as_json:
        print_json(page)
        return
    if not page.items:
        err('no projects; submit a job with --project NAME (or "project" in its spec)')
        return
    rows = table(
        "NAME",
        ("JOBS", {"justify": "right"}),
        ("SWEEPS", {"justify": "right"}),
        "CREATED",
        ("ID", {"no_wrap": True}),
    )
    for p in page.items:
        add_row(rows, [p.name, str(p.jobs), str(p.sweeps), when(p.created_at), p.id])
    console().print(rows)


@app.command()
def rename(
    project: Annotated[str, typer.Argument(help="The project's name (or id).", show_default=False)],
    new_name: Annotated[str, typer.Argument(help="Its new name.", show_default=False)],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a project (its jobs and sweeps follow)."""
    with connect(url, token) as client:
        renamed = client.rename_project(client.project(project).id, new_name)
    if as_json:
        print_json(renamed)
    else:
        echo(f"renamed {project!r} to {renamed.name!r}")


@app.command()
def delete(
    project: Annotated[str, typer.Argument(help="The project's name (or id).", show_default=False)],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete a project; its jobs and sweeps stay, in no project."""
    with connect(url, token) as client:
        found = client.project(project)
        client.delete_project(found.id)
    echo(f"deleted project {found.name!r} ({found.jobs} jobs, {found.sweeps} sweeps kept)")
