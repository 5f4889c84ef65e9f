"""Projects, tags and notes without HTTP: find or make a project on first use, list,
rename and delete them, and change a job's or a sweep's labels."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import Conflict, Invalid
from service.jobs.models import Job
from service.owned import get_owned
from service.projects.models import Project
from service.projects.schemas import MAX_TAGS, LabelsUpdate, Organised
from service.spec import FieldError
from service.sweeps.models import Sweep


class Labelled(Protocol):
    """A job or a sweep: what ``PATCH`` changes."""

    project_id: str | None
    tags: dict[str, str] | None
    note: str | None


def find(*, session: Session, owner: str, name: str) -> Project | None:
    return session.scalar(select(Project).where(Project.owner_id == owner, Project.name == name))


def ensure(*, session: Session, owner: str, name: str) -> Project:
    """``owner``'s project ``name``, made now if it does not exist yet. Two requests that
    make the same one at once both get it: the loser of the unique index reads it back."""
    found = find(session=session, owner=owner, name=name)
    if found is not None:
        return found
    project = Project(id=str(uuid.uuid4()), owner_id=owner, name=name)
    try:
        with session.begin_nested():
            session.add(project)
    except IntegrityError:
        found = find(session=session, owner=owner, name=name)
        if found is None:
            raise
        return found
    return project


def organise(*, session: Session, owner: str, row: Labelled, labels: Organised) -> None:
    """Set what a submit body gave beside the spec (``project``, ``tags``, ``note``)."""
    if labels.project is not None:
        row.project_id = ensure(session=session, owner=owner, name=labels.project).id
    row.tags = dict(labels.tags) if labels.tags else None
    row.note = labels.note or None


def relabel(*, session: Session, owner: str, row: Labelled, update: LabelsUpdate) -> None:
    """``PATCH``: ``tags`` replaces them all, then ``merge_tags`` sets (or with null
    removes) some; ``note`` (``""`` clears it) and ``project`` (null: none) as sent."""
    sent = update.model_fields_set
    tags = dict(row.tags or {})
    if "tags" in sent:
        tags = dict(update.tags or {})
    for key, value in (update.merge_tags or {}).items():
        if value is None:
            tags.pop(key, None)
        else:
            tags[key] = value
    if len(tags) > MAX_TAGS:
        message = f"at most {MAX_TAGS} tags; these changes would make {len(tags)}"
        raise Invalid(f"merge_tags: {message}", fields=[FieldError("merge_tags", message)])
    row.tags = tags or None
    if "note" in sent:
        row.note = update.note or None
    if "project" in sent:
        name = update.project
        row.project_id = (
            None if name is None else ensure(session=session, owner=owner, name=name).id
        )


def get(*, session: Session, owner: str, project_id: str) -> Project:
    return get_owned(session, Project, project_id, owner=owner, what="project")


def counts(*, session: Session, ids: list[str]) -> dict[str, tuple[int, int]]:
    """Project id → (jobs, sweeps) in it."""
    out = dict.fromkeys(ids, (0, 0))
    if not ids:
        return out
    jobs = dict(
        session.execute(
            select(Job.project_id, func.count())
            .where(Job.project_id.in_(ids))
            .group_by(Job.project_id)
        ).all()
    )
    sweeps = dict(
        session.execute(
            select(Sweep.project_id, func.count())
            .where(Sweep.project_id.in_(ids))
            .group_by(Sweep.project_id)
        ).all()
    )
    return {i: (int(jobs.get(i, 0)), int(sweeps.get(i, 0))) for i in ids}


def list_projects(
    *, session: Session, owner: str, limit: int, offset: int
) -> tuple[list[Project], int]:
    """``owner``'s projects by name."""
    query = select(Project).where(Project.owner_id == owner)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Project.name, Project.id).limit(limit).offset(offset))
    return list(rows), total


def rename(*, session: Session, owner: str, project_id: str, name: str) -> Project:
    project = get(session=session, owner=owner, project_id=project_id)
    if project.name == name:
        return project
    if find(session=session, owner=owner, name=name) is not None:
        raise Conflict(f"you already have a project named {name!r}")
    project.name = name
    try:
        session.commit()
    except IntegrityError:  # renamed to the same name by another request meanwhile
        session.rollback()
        raise Conflict(f"you already have a project named {name!r}") from None
    return project


def delete(*, session: Session, owner: str, project_id: str) -> None:
    """Delete a project; its jobs and sweeps stay, in no project."""
    project = get(session=session, owner=owner, project_id=project_id)
    for model in (Job, Sweep):
        session.query(model).filter(model.project_id == project.id).update(
            {model.project_id: None}, synchronize_session=False
        )
    session.delete(project)
    session.commit()
